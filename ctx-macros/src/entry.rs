//! `#[ctx::main]` and `#[ctx::test]`: a tokio runtime around an `async fn`
//! whose body has `ctx` in scope. Parse, validate, check, expand, as in
//! `#[ctx]`.
//!
//! As in `#[ctx]`, every problem is reported at once and the function is
//! still emitted (as a sync `fn` with a runtime), so a typo in an option does
//! not also turn every use of `ctx` in the body into an error. The expansion
//! sketches are in the user docs (`lib.rs`), which a test below checks
//! against the real output.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, Signature, Stmt};

use crate::args::{self, Args, Flavor, Macro};
use crate::check;
use crate::codegen::{bind_ctx, ctx_ident, derive, local, pinned_body, respan, timeout_local};
use crate::errors::Errors;
use crate::func::{Body, Func};

/// The entry point being expanded.
#[derive(Clone, Copy)]
enum Entry {
    Main,
    Test,
}

impl Entry {
    /// The attribute, as errors name it.
    fn name(self) -> &'static str {
        match self {
            Entry::Main => "#[ctx::main]",
            Entry::Test => "#[ctx::test]",
        }
    }

    /// The options it takes.
    fn options(self) -> Macro {
        match self {
            Entry::Main => Macro::Main,
            Entry::Test => Macro::Test,
        }
    }

    /// The runtime without `flavor` or `worker_threads`: tokio's default
    /// for `#[tokio::main]` and for `#[tokio::test]`.
    fn default_flavor(self) -> Flavor {
        match self {
            Entry::Main => Flavor::MultiThread,
            Entry::Test => Flavor::CurrentThread,
        }
    }

    /// The panic message when tokio cannot build the runtime.
    fn runtime_failed(self) -> &'static str {
        match self {
            Entry::Main => "ctx::main: failed to build the tokio runtime",
            Entry::Test => "ctx::test: failed to build the tokio runtime",
        }
    }
}

pub(crate) fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Entry::Main, attr, item)
}

pub(crate) fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    entry(Entry::Test, attr, item)
}

fn entry(entry: Entry, attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (args, parsed) = args::parse(entry.options(), attr);
    errors.add(parsed);
    let mut func = match Func::parse_item(item.clone(), entry.name()) {
        Ok(func) => func,
        Err(error) => {
            errors.push(error);
            return quote!(#errors #item);
        }
    };
    errors.add(validate(entry, &func));
    check::lostcancel(&mut func, &args.krate());

    if let Entry::Test = entry {
        // A `#[test]` of the user's is reported above; emitting it as well
        // would only add a duplicate-attribute warning.
        func.attrs.retain(|attr| !is_test_attr(attr));
    }
    let Body::Block { stmts, .. } = &func.body else {
        // A declaration (an error above) or a body that does not parse
        // (rustc reports it): emit what there is.
        let out = func.to_tokens_with(&func.sig, None);
        return quote!(#errors #out);
    };
    let mut sig = Signature {
        asyncness: None,
        ..func.sig.clone()
    };
    if let (Entry::Test, Some(_)) = (entry, &args.timeout) {
        if returns_value(&func.sig) {
            // The body runs on a thread of its own, and what it returns may
            // not be `Send` (`Box<dyn Error>`): that thread reports it, as
            // the test harness would, and hands over the exit code.
            sig.output = syn::parse_quote!(-> ::std::process::ExitCode);
        }
    }
    let body = body(entry, &func.sig, stmts, &args);
    let mut out = func.to_tokens_with(&sig, Some(body));
    if let Entry::Test = entry {
        out = quote!(#[::core::prelude::v1::test] #out);
    }
    quote!(#errors #out)
}

fn validate(entry: Entry, func: &Func) -> syn::Result<()> {
    let name = entry.name();
    let sig = &func.sig;
    let mut errors = Errors::default();
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            format!("`{name}` needs an `async fn`; add `async` before `fn`"),
        ));
    }
    if !sig.inputs.is_empty() {
        let message = match entry {
            Entry::Main => {
                "`main` takes no parameters: read arguments with `std::env::args()`; \
                 `ctx` is in scope in the body without one"
            }
            Entry::Test => "a test takes no parameters; `ctx` is in scope in the body without one",
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
    if let Entry::Test = entry {
        if let Some(attr) = func.attrs.iter().find(|attr| is_test_attr(attr)) {
            errors.push(syn::Error::new_spanned(
                attr,
                "`#[ctx::test]` already makes this a test; remove this `#[test]`",
            ));
        }
    }
    errors.finish()
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

/// The body of the sync function: the user's body, under its root context,
/// in an `async` block that a new runtime blocks on. `sig` is the user's
/// signature, still `async`.
fn body(entry: Entry, sig: &Signature, stmts: &[Stmt], args: &Args) -> TokenStream {
    let krate = args.krate();
    let root = local("__ctx_root");
    let user = pinned_body(sig, stmts);
    let bind = bind_ctx(&krate, &root, &ctx_ident(sig, Some(stmts)));
    // Calls spanned on the test's name, so their `#[track_caller]` panics
    // point at the test, not at a line of ctx or at the attribute.
    let name = &sig.ident;
    let at_name = respan(&krate, name.span());
    let timeout = timeout_local();
    // The panic quotes the option as written.
    let shown = args
        .timeout
        .as_ref()
        .map(|(_, expr)| quote!(#expr).to_string());
    let timed_out =
        quote_spanned!(name.span()=> #at_name::__private::test_timed_out(#timeout, #shown));

    let inner = match (entry, &args.timeout) {
        (Entry::Main, _) => {
            let derive = derive(&root, quote!(#krate::__private::main_context()));
            quote! {
                #derive
                #bind
                #user
            }
        }
        (Entry::Test, None) => {
            let derive = derive(
                &root,
                quote!(#krate::Context::with_cancel(&#krate::Context::background())),
            );
            quote! {
                #derive
                #bind
                #user
            }
        }
        (Entry::Test, Some(_)) => {
            let out = local("__ctx_out");
            quote! {
                let #out = #krate::__private::test_within(&#root, async {
                    #bind
                    #user
                }).await;
                match #out {
                    ::core::option::Option::Some(#out) => #out,
                    ::core::option::Option::None => #timed_out,
                }
            }
        }
    };

    let flavor = match (&args.flavor, &args.worker_threads) {
        (Some((_, flavor)), _) => *flavor,
        // `worker_threads` alone asks for threads.
        (None, Some(_)) => Flavor::MultiThread,
        (None, None) => entry.default_flavor(),
    };
    let builder = match flavor {
        Flavor::CurrentThread => quote!(new_current_thread()),
        Flavor::MultiThread => quote!(new_multi_thread()),
    };
    let workers = args
        .worker_threads
        .as_ref()
        .map(|(_, expr)| quote_spanned!(expr.span()=> .worker_threads(#expr)));
    let failed = entry.runtime_failed();
    let body_future = local("__ctx_body");
    let run = quote! {
        let #body_future = async move { #inner };
        #krate::__private::tokio::runtime::Builder::#builder
            #workers
            .enable_all()
            .build()
            .expect(#failed)
            .block_on(#body_future)
    };
    let (Entry::Test, Some((_, expr))) = (entry, &args.timeout) else {
        return run;
    };

    // The runtime and the body run on a thread of their own, under a root
    // context made here, outside any runtime, so that its deadline and the
    // watchdog are on the real clock even when tokio's is paused.
    let duration = timeout_duration(&krate, expr);
    let run = if returns_value(sig) {
        let out = local("__ctx_out");
        quote! {
            let #out = { #run };
            ::std::process::Termination::report(#out)
        }
    } else {
        run
    };
    let name_shown = name.to_string();
    let watchdog = quote_spanned! {name.span()=>
        #at_name::__private::test_watchdog(
            #timeout,
            #shown,
            #name_shown,
            move |#root: #krate::Context| { #run },
        )
    };
    quote! {
        #duration
        #watchdog
    }
}

/// `let __ctx_timeout: Duration = ::ctx::__private::timeout(EXPR);`, spanned
/// on the user's expression, so a wrong type is reported there.
fn timeout_duration(krate: &TokenStream, expr: &syn::Expr) -> TokenStream {
    let timeout = timeout_local();
    let span = expr.span();
    let krate = respan(krate, span);
    quote_spanned! {span=>
        let #timeout: ::core::time::Duration = #krate::__private::timeout(#expr);
    }
}

/// Whether the test returns something other than `()`.
fn returns_value(sig: &Signature) -> bool {
    match &sig.output {
        syn::ReturnType::Default => false,
        syn::ReturnType::Type(_, ty) => {
            !matches!(&**ty, syn::Type::Tuple(tuple) if tuple.elems.is_empty())
        }
    }
}

#[cfg(test)]
mod tests {
    use proc_macro2::{Delimiter, TokenStream, TokenTree};

    /// The `text` blocks in the docs of `pub fn NAME` in `lib.rs`, in order.
    fn sketches(name: &str) -> Vec<String> {
        let lib = include_str!("lib.rs");
        let end = lib
            .find(&format!("pub fn {name}("))
            .unwrap_or_else(|| panic!("no `pub fn {name}` in lib.rs"));
        let mut docs: Vec<&str> = lib[..end]
            .lines()
            .rev()
            .map(str::trim_start)
            .skip_while(|line| !line.starts_with("///"))
            .take_while(|line| line.starts_with("///"))
            .map(|line| line.trim_start_matches("///"))
            .collect();
        docs.reverse();

        let mut blocks = Vec::new();
        let mut open: Option<String> = None;
        for line in docs {
            match (&mut open, line.trim()) {
                (None, "```text") => open = Some(String::new()),
                (Some(_), "```") => blocks.extend(open.take()),
                (Some(block), _) => {
                    block.push_str(line);
                    block.push('\n');
                }
                (None, _) => {}
            }
        }
        blocks
    }

    /// The tokens, spacing left out: `&::ctx` written in the docs and
    /// `& :: ctx` generated by `quote!` compare equal.
    fn flat(tokens: TokenStream) -> Vec<String> {
        let mut out = Vec::new();
        for token in tokens {
            match token {
                TokenTree::Group(group) => {
                    let (open, close) = match group.delimiter() {
                        Delimiter::Parenthesis => ("(", ")"),
                        Delimiter::Brace => ("{", "}"),
                        Delimiter::Bracket => ("[", "]"),
                        Delimiter::None => ("", ""),
                    };
                    out.push(open.to_owned());
                    out.extend(flat(group.stream()));
                    out.push(close.to_owned());
                }
                TokenTree::Punct(punct) => out.push(punct.as_char().to_string()),
                other => out.push(other.to_string()),
            }
        }
        out
    }

    /// The "becomes" sketch in the docs of `pub fn NAME` is what the
    /// attribute in the sketch before it really expands to.
    fn sketch_matches(name: &str, expand: fn(TokenStream, TokenStream) -> TokenStream) {
        let blocks = sketches(name);
        let [input, output] = blocks.as_slice() else {
            panic!(
                "expected an input and an output sketch in the docs of `{name}`, found {blocks:?}"
            );
        };
        let mut item: syn::ItemFn = syn::parse_str(input).expect("the input sketch parses");
        let attr = item.attrs.remove(0);
        let args = match attr.meta {
            syn::Meta::List(list) => list.tokens,
            _ => TokenStream::new(),
        };
        let real = expand(args, quote::ToTokens::into_token_stream(item));
        let documented: TokenStream = output.parse().expect("the output sketch lexes");
        assert_eq!(
            flat(documented),
            flat(real.clone()),
            "the expansion sketch in the docs of `{name}` is out of date; the real one is:\n{real}"
        );
    }

    #[test]
    fn main_expands_as_its_docs_say() {
        sketch_matches("main", super::main);
    }

    #[test]
    fn test_expands_as_its_docs_say() {
        sketch_matches("test", super::test);
    }

    /// A test body is only compiled by `cargo test`, never by the ui tests'
    /// `cargo check`, so this is where the check is seen to reach it.
    #[test]
    fn test_and_main_bodies_are_checked_for_lost_guards() {
        let body: TokenStream = "async fn runs() { let (child, _) = ctx.with_cancel(); }"
            .parse()
            .unwrap();
        for (expand, attr) in [
            (
                super::test as fn(TokenStream, TokenStream) -> TokenStream,
                "",
            ),
            (super::test, "timeout = Duration::from_secs(1)"),
            (super::main, ""),
        ] {
            let out = expand(attr.parse().unwrap(), body.clone()).to_string();
            assert!(
                out.contains("lostcancel :: TupleWithCancel :: front :: < 1 , _ >"),
                "no lostcancel check in {out}"
            );
        }
    }
}
