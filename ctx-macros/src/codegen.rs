//! What the `#[ctx]` expansion (`expand.rs`) and the `#[ctx::main]` and
//! `#[ctx::test]` expansions (`entry.rs`) share: generated names, spans,
//! what the declared return type says, and the statements that derive a
//! context, bind `ctx` to it and return the body's value.
//!
//! Paths start from `krate` (`::ctx`, or the path given by `crate = ...`),
//! never from a bare `ctx::`, so neither a renamed dependency nor the user's
//! own `Context`, `Error` or `Result` gets in the way.

use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::{Ident, ReturnType, Signature, Stmt, Type};

// Names and spans.

/// The `ctx` the user's code sees: located at the attribute (where errors
/// about the added parameter point), but resolved with the hygiene of the
/// user's own tokens, so the body can name it.
///
/// The attribute's own tokens are not enough: a `macro_rules!` that
/// re-emits the function (`$(#[$m:meta])* $v:vis async fn $($rest:tt)*`)
/// gives the attribute, and so `Span::call_site()`, the wrapper's hygiene,
/// and the body's `ctx` would then name the crate (rust-lang/rust#134882).
/// The first `ctx` the body uses as a value is what must resolve, so its
/// hygiene is taken; without one (a declaration, a body that never uses
/// `ctx`), the function's name stands in for the user.
///
/// Code with the user's hygiene is linted as the user's: every binding of
/// this name carries `#[allow(unused_variables)]`.
pub(crate) fn ctx_ident(sig: &Signature, stmts: Option<&[Stmt]>) -> Ident {
    let user = stmts
        .and_then(|stmts| first_ctx_value(quote!(#(#stmts)*)))
        .unwrap_or_else(|| sig.ident.span());
    Ident::new("ctx", Span::call_site().resolved_at(user))
}

/// The span of the first `ctx` in `tokens` that is a value: not a path
/// segment (`ctx::Error`), a field (`self.ctx`) or a macro (`ctx!`).
fn first_ctx_value(tokens: TokenStream) -> Option<Span> {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    for (i, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Group(group) => {
                if let Some(span) = first_ctx_value(group.stream()) {
                    return Some(span);
                }
            }
            TokenTree::Ident(ident) if ident == "ctx" => {
                let punct = |at: Option<&TokenTree>, ch: char| matches!(at, Some(TokenTree::Punct(p)) if p.as_char() == ch);
                let after = tokens.get(i + 1);
                let before = i.checked_sub(1).and_then(|i| tokens.get(i));
                let path_or_macro = punct(after, ':') || punct(after, '!');
                let field_or_segment = punct(before, '.') || punct(before, ':');
                if !path_or_macro && !field_or_segment {
                    return Some(ident.span());
                }
            }
            _ => {}
        }
    }
    None
}

/// A local only generated code can name.
pub(crate) fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

/// `tokens` with every span set to `span`: a path built from them is then
/// reported where the user's code is, not on the attribute.
pub(crate) fn respan(tokens: &TokenStream, span: Span) -> TokenStream {
    tokens
        .clone()
        .into_iter()
        .map(|mut token| {
            if let proc_macro2::TokenTree::Group(group) = &token {
                let mut inner =
                    proc_macro2::Group::new(group.delimiter(), respan(&group.stream(), span));
                inner.set_span(span);
                token = proc_macro2::TokenTree::Group(inner);
            } else {
                token.set_span(span);
            }
            token
        })
        .collect()
}

// The declared return type.

/// Whether the type is spelled `Result<..>` (any path that ends in
/// `Result`: `io::Result<T>`, a crate's own `Result<T>` alias).
pub(crate) fn is_result(ty: &Type) -> bool {
    match ty {
        Type::Path(path) if path.qself.is_none() => path
            .path
            .segments
            .last()
            .is_some_and(|segment| segment.ident == "Result"),
        Type::Group(group) => is_result(&group.elem),
        Type::Paren(paren) => is_result(&paren.elem),
        _ => false,
    }
}

/// The declared return type; `None` for `()`.
pub(crate) fn declared_output(sig: &Signature) -> Option<&Type> {
    match &sig.output {
        ReturnType::Type(_, ty) => Some(ty),
        ReturnType::Default => None,
    }
}

/// Where a missing `From<ctx::Error>` is reported: on `E` in `Result<T, E>`,
/// on the whole type when the error type is not written out
/// (`io::Result<T>`), on the attribute when there is no return type.
pub(crate) fn error_type_span(output: Option<&Type>) -> Span {
    let Some(ty) = output else {
        return Span::call_site();
    };
    if let Type::Path(path) = ty {
        if let Some(syn::PathSegment {
            arguments: syn::PathArguments::AngleBracketed(generics),
            ..
        }) = path.path.segments.last()
        {
            let types: Vec<&Type> = generics
                .args
                .iter()
                .filter_map(|arg| match arg {
                    syn::GenericArgument::Type(ty) => Some(ty),
                    _ => None,
                })
                .collect();
            if let [_, error] = types.as_slice() {
                return error.span();
            }
        }
    }
    ty.span()
}

/// The output type, as a type the body can name to pin what its tail must
/// be; `None` when it cannot be named there (`impl Trait`).
fn nameable_output(output: Option<&Type>) -> Option<TokenStream> {
    match output {
        None => Some(quote!(())),
        Some(ty) => {
            let mut finder = FindImpl(false);
            finder.visit_type(ty);
            (!finder.0).then(|| ty.to_token_stream())
        }
    }
}

struct FindImpl(bool);

impl<'ast> Visit<'ast> for FindImpl {
    fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
        self.0 = true;
    }
}

// Statements.

/// `let (NAME, __ctx_guard) = DERIVATION;`: the guard lives to the end of
/// the generated block, so the context stays alive as long as the body.
pub(crate) fn derive(name: &Ident, derivation: TokenStream) -> TokenStream {
    let guard = local("__ctx_guard");
    quote! {
        let (#name, #guard) = #derivation;
    }
}

/// The local holding the duration of `timeout = EXPR`, declared by
/// [`timeout_duration`].
pub(crate) fn timeout_local() -> Ident {
    local("__ctx_timeout")
}

/// `timeout = EXPR`, read once: `let __ctx_timeout: Duration =
/// ::ctx::__private::timeout(EXPR);`, spanned on the user's expression so a
/// wrong type is reported there.
pub(crate) fn timeout_duration(krate: &TokenStream, expr: &syn::Expr) -> TokenStream {
    let timeout = timeout_local();
    let span = expr.span();
    let krate = respan(krate, span);
    quote_spanned! {span=>
        let #timeout: ::core::time::Duration = #krate::__private::timeout(#expr);
    }
}

/// The child under the timeout, once `__ctx_timeout` is bound.
pub(crate) fn derive_timeout_child(
    krate: &TokenStream,
    parent: TokenStream,
    name: &Ident,
) -> TokenStream {
    let timeout = timeout_local();
    derive(
        name,
        quote!(#krate::Context::with_timeout(#parent, #timeout)),
    )
}

/// `let ctx: &::ctx::Context = &NAME;`: from here on, `ctx` in the body is
/// `NAME`. `ctx` is the [`ctx_ident`] of the function.
pub(crate) fn bind_ctx(krate: &TokenStream, name: &Ident, ctx: &Ident) -> TokenStream {
    quote! {
        #[allow(unused_variables)]
        let #ctx: &#krate::Context = &#name;
    }
}

/// `let __ctx_out: R = { BODY }; return __ctx_out;`
///
/// Binding the body's value first drops the temporaries of its tail
/// expression before the generated locals it may borrow (the child context).
/// `R`, when given, pins the type, so a wrong tail is reported on the user's
/// tail and return type. A body that never returns (a panic, `loop {}`)
/// makes the `return` unreachable, and that warning would point at the
/// attribute: it is silenced on that one generated statement only.
pub(crate) fn bind_and_return(ty: TokenStream, stmts: &[syn::Stmt]) -> TokenStream {
    let out = local("__ctx_out");
    quote! {
        let #out #ty = { #(#stmts)* };
        #[allow(unreachable_code)]
        return #out;
    }
}

/// The body for an `async` block that stands in for the function:
/// [`bind_and_return`] pinned to the declared return type, or the statements
/// as written when that type cannot be named there (`impl Trait`).
pub(crate) fn pinned_body(sig: &Signature, stmts: &[syn::Stmt]) -> TokenStream {
    pinned_body_as(declared_output(sig), stmts)
}

/// [`pinned_body`] for a body whose value has type `output` (`None`: `()`).
pub(crate) fn pinned_body_as(output: Option<&Type>, stmts: &[syn::Stmt]) -> TokenStream {
    match nameable_output(output) {
        Some(output) => bind_and_return(quote!(: #output), stmts),
        None => quote!(#(#stmts)*),
    }
}
