//! `#[ctx]`: parse, validate, check, expand.
//!
//! Each step returns a `syn::Result`; the failures go to one [`Errors`], and
//! the function is emitted in every case but two (an item that is not a
//! function, a function that already has a `ctx`), with `ctx` injected, so a
//! mistake in the options does not also bury the body under "cannot find
//! value `ctx`" errors.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::{FnArg, Pat, Signature, Token};

use crate::args::{self, Args, Macro};
use crate::check;
use crate::codegen::{
    bind_and_return, bind_ctx, ctx_ident, derive_with_timeout, error_type_span, local, pinned_body,
    respan, returns_result,
};
use crate::errors::Errors;
use crate::func::{Body, Func};
use crate::lifetimes;

pub(crate) fn ctx(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (args, parsed) = args::parse(Macro::Ctx, attr);
    errors.add(parsed);
    let mut func = match Func::parse_item(item.clone(), "#[ctx]") {
        Ok(func) => func,
        Err(error) => {
            // Not a function: leave the item as it was.
            errors.push(error);
            return quote!(#errors #item);
        }
    };
    if let Err(error) = no_ctx_param(&func.sig) {
        // The function as written already has its `ctx`: injecting a second
        // one would only add a duplicate-parameter error.
        errors.push(error);
        return quote!(#errors #item);
    }
    errors.add(validate(&func, &args));
    let krate = args.krate();
    check::lostcancel(&mut func, &krate);

    let sig = inject(&func.sig, &krate);
    let body = if func.sig.constness.is_none() {
        body(&func, &args, &krate)
    } else {
        // Keep the body as written: the error above says what to fix, and
        // the generated checks, not being `const`, would add more.
        None
    };
    let out = func.to_tokens_with(&sig, body);
    quote!(#errors #out)
}

/// Rejects a `ctx` parameter the user already wrote.
fn no_ctx_param(sig: &Signature) -> syn::Result<()> {
    let existing = sig.inputs.iter().find_map(|input| match input {
        FnArg::Typed(typed) => match &*typed.pat {
            Pat::Ident(pat) if pat.ident == "ctx" => Some(&pat.ident),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    });
    match existing {
        Some(existing) => Err(syn::Error::new(
            existing.span(),
            "this function already has a `ctx` parameter; remove it: `#[ctx]` adds \
             `ctx: &ctx::Context` itself",
        )),
        None => Ok(()),
    }
}

/// Rules about the function and the options together.
fn validate(func: &Func, args: &Args) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Some(constness) = &func.sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            "a `const fn` cannot look at a context; remove `const`, or take \
             `ctx: &ctx::Context` by hand",
        ));
    }
    if let Body::Semi(_) = func.body {
        for key in [
            args.timeout.as_ref().map(|(key, _)| key),
            args.cooperative.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            errors.push(syn::Error::new(
                key.span(),
                format!(
                    "`{key}` changes the body, and this declaration has none; \
                     put it on the implementations"
                ),
            ));
        }
        return errors.finish();
    }
    if let Some(key) = &args.cooperative {
        if func.sig.asyncness.is_none() {
            errors.push(syn::Error::new(
                key.span(),
                "`cooperative` only changes `async` functions: a sync body is never \
                 interrupted; remove it",
            ));
        } else if !returns_result(&func.sig) {
            errors.push(syn::Error::new(
                key.span(),
                "`cooperative` only changes functions that return `Result`: others are \
                 never interrupted; remove it",
            ));
        }
    }
    errors.finish()
}

/// Adds `ctx: &ctx::Context` after the receiver, if any.
///
/// ```text
/// fn get(&self, id: u64)  →  fn get(&self, ctx: &::ctx::Context, id: u64)
/// ```
fn inject(sig: &Signature, krate: &TokenStream) -> Signature {
    let mut sig = sig.clone();
    lifetimes::name_elided(&mut sig);
    let ctx = ctx_ident();
    let param: FnArg = syn::parse_quote! {
        // A trait impl may have no use for it; it is still part of the
        // signature.
        #[allow(unused_variables)]
        #ctx: &#krate::Context
    };
    let mut inputs: Punctuated<FnArg, Token![,]> = Punctuated::new();
    let mut rest = sig.inputs.clone().into_pairs().peekable();
    if let Some(pair) = rest.next_if(|pair| matches!(pair.value(), FnArg::Receiver(_))) {
        inputs.push(pair.into_value());
    }
    inputs.push(param);
    for pair in rest {
        let (arg, comma) = pair.into_tuple();
        inputs.push_punct(comma.unwrap_or_default());
        inputs.push_value(arg);
    }
    Signature { inputs, ..sig }
}

/// The new body of a function with a body, or `None` to keep it as written.
///
/// Sketch, for `async fn f(..) -> Result<T, E>` with `timeout = D`:
///
/// ```text
/// {
///     let __ctx_timeout = D;
///     let (__ctx_child, __ctx_guard) = ctx.with_timeout(__ctx_timeout);
///     let ctx = &__ctx_child;
///     let __ctx_out = match race(ctx, async move { let __ctx_out: R = { BODY }; return __ctx_out; }).await {
///         Ok(out) => out,
///         Err(e) => Err(E::from(e)),
///     };
///     __ctx_out
/// }
/// ```
///
/// Without `timeout` the first three lines go; with `cooperative`, or on a
/// sync function, the race is replaced by an entry check
/// (`if let Some(e) = ctx.err() { return Err(E::from(e)) }`) and the body
/// runs as is. A function whose return type is not a `Result` keeps its body,
/// under the child context if there is a `timeout`.
fn body(func: &Func, args: &Args, krate: &TokenStream) -> Option<TokenStream> {
    let stmts = func.stmts()?;
    let result = returns_result(&func.sig);
    let race = result && func.sig.asyncness.is_some() && args.cooperative.is_none();
    if !result && args.timeout.is_none() {
        return None;
    }

    let ctx = ctx_ident();
    let out = local("__ctx_out");
    let err = local("__ctx_err");
    // The conversion to the user's error type is spanned on that type, so a
    // missing `From<ctx::Error>` is reported on it.
    let error_span = error_type_span(&func.sig);
    let convert = {
        let krate = respan(krate, error_span);
        quote_spanned!(error_span=> #krate::__private::err(#err))
    };

    let entry_check = (result && !race).then(|| {
        quote! {
            if let ::core::option::Option::Some(#err) = #krate::Context::err(#ctx) {
                return #convert;
            }
        }
    });
    let child = args.timeout.as_ref().map(|(_, expr)| {
        let child = local("__ctx_child");
        let derive = derive_with_timeout(krate, expr, quote!(#ctx), &child);
        let bind = bind_ctx(krate, &child);
        quote! {
            #derive
            #bind
        }
    });
    let run = if race {
        let pinned = pinned_body(&func.sig, stmts);
        quote! {
            let #out = match #krate::__private::race(#ctx, async move { #pinned }).await {
                ::core::result::Result::Ok(#out) => #out,
                ::core::result::Result::Err(#err) => #convert,
            };
            #out
        }
    } else if child.is_some() {
        bind_and_return(TokenStream::new(), stmts)
    } else {
        quote!(#(#stmts)*)
    };
    Some(quote! {
        #entry_check
        #child
        #run
    })
}
