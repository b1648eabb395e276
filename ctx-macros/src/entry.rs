//! `#[ctx::main]` and `#[ctx::test]`: a tokio runtime around an `async fn`
//! whose body has `ctx` in scope.
//!
//! As in `#[ctx]`, every problem is reported at once and the function is
//! still emitted (as a sync `fn` with a runtime), so a typo in an option does
//! not also turn every use of `ctx` in the body into an error.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Signature};

use crate::args::{self, Args, Flavor, Macro};
use crate::check;
use crate::errors::Errors;
use crate::expand::{bind_and_return, local, nameable_output, timeout_duration};
use crate::func::{Body, Func};

/// Input:
///
/// ```text
/// #[ctx::main]
/// async fn main() -> R { BODY }
/// ```
///
/// Output:
///
/// ```text
/// fn main() -> R {
///     let __ctx_body = async move {
///         let (__ctx_root, __ctx_stop) = ::ctx::__private::main_context(); // signal::notify
///         let ctx: &::ctx::Context = &__ctx_root;
///         let __ctx_out: R = { BODY };
///         return __ctx_out;
///     };
///     tokio::runtime::Builder::new_multi_thread().enable_all().build()
///         .expect(..).block_on(__ctx_body)
/// }
/// ```
pub(crate) fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Macro::Main, attr, item)
}

/// Input:
///
/// ```text
/// #[ctx::test(timeout = D)]
/// async fn name() -> R { BODY }
/// ```
///
/// Output:
///
/// ```text
/// #[::core::prelude::v1::test]
/// fn name() -> R {
///     let __ctx_body = async move {
///         let __ctx_timeout = D;
///         let (__ctx_root, __ctx_guard) = Context::background().with_timeout(__ctx_timeout);
///         // panics, naming the timeout, if the deadline passes first
///         ::ctx::__private::test_within(&__ctx_root, __ctx_timeout, "D", async {
///             let ctx = &__ctx_root;
///             let __ctx_out: R = { BODY };
///             return __ctx_out;
///         }).await
///     };
///     tokio::runtime::Builder::new_current_thread().enable_all().build()
///         .expect(..).block_on(__ctx_body)
/// }
/// ```
///
/// Without `timeout`, `__ctx_root` comes from `with_cancel` and the body is
/// not raced.
pub(crate) fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Macro::Test, attr, item)
}

fn entry(mac: Macro, attr: TokenStream, item: TokenStream) -> TokenStream {
    let name = match mac {
        Macro::Main => "#[ctx::main]",
        Macro::Test | Macro::Ctx => "#[ctx::test]",
    };
    let mut errors = Errors::default();
    let args = args::parse(mac, attr, &mut errors);
    let mut func = match Func::parse_item(item.clone(), name) {
        Ok(func) => func,
        Err(error) => {
            errors.push(error);
            return quote!(#errors #item);
        }
    };
    validate(mac, name, &func, &mut errors);
    if let Some(stmts) = func.stmts() {
        check::lostcancel(stmts, &mut errors);
    }

    if let Macro::Test = mac {
        // A `#[test]` of the user's is reported above; emitting it as well
        // would only add a duplicate-attribute warning.
        func.attrs.retain(|attr| !is_test_attr(attr));
    }
    let Body::Block { .. } = &func.body else {
        // A declaration (an error above) or a body that does not parse
        // (rustc reports it): emit what there is.
        let out = func.to_tokens_with(&func.sig, None);
        return quote!(#errors #out);
    };
    let sig = Signature {
        asyncness: None,
        ..func.sig.clone()
    };
    let body = body(mac, &func, &args);
    let mut out = func.to_tokens_with(&sig, Some(body));
    if let Macro::Test = mac {
        out = quote!(#[::core::prelude::v1::test] #out);
    }
    quote!(#errors #out)
}

fn validate(mac: Macro, name: &str, func: &Func, errors: &mut Errors) {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("`{name}` needs an `async fn`; add `async` before `fn`"),
        ));
    }
    if !sig.inputs.is_empty() {
        let message = match mac {
            Macro::Main => {
                "`main` takes no parameters: read arguments with `std::env::args()`; \
                 `ctx` is in scope in the body without one"
            }
            Macro::Test | Macro::Ctx => {
                "a test takes no parameters; `ctx` is in scope in the body without one"
            }
        };
        errors.push(syn::Error::new_spanned(&sig.inputs, message));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            format!("`{name}` cannot go on a generic function"),
        ));
    }
    if let Body::Semi(semi) = &func.body {
        errors.push(syn::Error::new(
            semi.span,
            format!("`{name}` needs a function body"),
        ));
    }
    if let Macro::Test = mac {
        if let Some(attr) = func.attrs.iter().find(|attr| is_test_attr(attr)) {
            errors.push(syn::Error::new_spanned(
                attr,
                "`#[ctx::test]` already makes this a test; remove this `#[test]`",
            ));
        }
    }
}

/// `#[test]` or `#[core::prelude::v1::test]`, but not `#[ctx::test]` or
/// `#[tokio::test]`, which are other macros.
fn is_test_attr(attr: &Attribute) -> bool {
    let path = attr.path();
    path.is_ident("test")
        || path
            .segments
            .iter()
            .map(|segment| segment.ident.to_string())
            .eq(["core", "prelude", "v1", "test"])
}

fn body(mac: Macro, func: &Func, args: &Args) -> TokenStream {
    let krate = args.krate();
    let stmts = func.stmts().unwrap_or_default();
    let ctx = syn::Ident::new("ctx", Span::call_site());
    let out = local("__ctx_out");
    let root = local("__ctx_root");
    let guard = local("__ctx_guard");
    let body_future = local("__ctx_body");
    let timeout = local("__ctx_timeout");
    let user = match nameable_output(&func.sig) {
        Some(output) => bind_and_return(quote!(: #output), stmts),
        None => quote!(#(#stmts)*),
    };

    let inner = match (mac, &args.timeout) {
        (Macro::Main, _) => quote! {
            let (#root, #guard) = #krate::__private::main_context();
            let #ctx: &#krate::Context = &#root;
            #user
        },
        (_, None) => quote! {
            let (#root, #guard) = #krate::Context::with_cancel(&#krate::Context::background());
            let #ctx: &#krate::Context = &#root;
            #user
        },
        (_, Some((_, expr))) => {
            let duration = timeout_duration(&krate, expr);
            let shown = quote!(#expr).to_string();
            quote! {
                #duration
                let (#root, #guard) =
                    #krate::Context::with_timeout(&#krate::Context::background(), #timeout);
                let #out = #krate::__private::test_within(&#root, #timeout, #shown, async {
                    let #ctx: &#krate::Context = &#root;
                    #user
                }).await;
                #out
            }
        }
    };

    let flavor = match (&args.flavor, &args.worker_threads, mac) {
        (Some((_, flavor)), _, _) => *flavor,
        // `worker_threads` alone asks for threads.
        (None, Some(_), _) => Flavor::MultiThread,
        (None, None, Macro::Main) => Flavor::MultiThread,
        (None, None, Macro::Test | Macro::Ctx) => Flavor::CurrentThread,
    };
    let builder = match flavor {
        Flavor::CurrentThread => quote!(new_current_thread()),
        Flavor::MultiThread => quote!(new_multi_thread()),
    };
    let workers = args
        .worker_threads
        .as_ref()
        .map(|(_, expr)| quote_spanned!(expr.span()=> .worker_threads(#expr)));
    let what = match mac {
        Macro::Main => "ctx::main",
        Macro::Test | Macro::Ctx => "ctx::test",
    };
    let failed = format!("{what}: failed to build the tokio runtime");
    quote! {
        let #body_future = async move { #inner };
        #krate::__private::tokio::runtime::Builder::#builder
            #workers
            .enable_all()
            .build()
            .expect(#failed)
            .block_on(#body_future)
    }
}
