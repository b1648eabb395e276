//! The wrapping of a discarded value in its check, and the naming it
//! needs: which derivation a value comes from, which message trait of
//! `__private::lostcancel` fits, which calls are left alone, and the spans
//! the check is reported on.

use proc_macro2::{Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::{Expr, Ident, Type};

use super::pattern::{Probe, Shape, Step};

/// The derivations, by the name the messages use.
pub(super) const DERIVATIONS: &[&str] = &[
    "with_cancel",
    "with_deadline",
    "with_timeout",
    "with_deadline_cause",
    "with_timeout_cause",
];

/// `expr` becomes, for each probe,
/// `KRATE::__private::lostcancel::TRAIT::METHOD::<..>(expr).__lostcancel(0)`.
///
/// The path carries the span of the discarding code: rustc reports the
/// unmet bound there. The rest is spanned at the same place but resolved
/// as the macro's own code, so lints that skip macro output (clippy's
/// `unit_arg` for a discarded `()`) skip it.
///
/// A probe whose part the traits cannot name is left out: one more than
/// a step deep (a nested pattern over a value that is not a tuple
/// literal), past the fourth element, or a `..` between elements (see
/// [`Step::element`]).
pub(super) fn wrap(krate: &TokenStream, expr: &mut Expr, probes: &[Probe], ty: Option<&Type>) {
    let probes: Vec<(&Probe, Option<Step>)> = probes
        .iter()
        .filter_map(|probe| match probe.path.as_slice() {
            [] => Some((probe, None)),
            [step] => Some((probe, Some(step.element()?))),
            _ => None,
        })
        .collect();
    if probes.is_empty() {
        return;
    }
    let name = derivation(expr);
    let mut tokens = expr.to_token_stream();
    let ty = match ty {
        Some(ty) => ty.to_token_stream(),
        None => quote!(_),
    };
    for (probe, step) in probes {
        let message = message_trait(probe.shape, name);
        let (method, index) = match step {
            None => (quote!(whole), None),
            Some(Step::Front(n)) => (quote!(front), Some(Literal::usize_unsuffixed(n))),
            Some(Step::Back(n)) => (quote!(back), Some(Literal::usize_unsuffixed(n))),
            Some(Step::Rest { .. }) => unreachable!("ctx: internal error: `element` names one"),
        };
        let index = index.map(|index| quote!(#index,));
        let path = with_span_range(
            quote!(#krate::__private::lostcancel::#message::#method::<#index #ty>),
            probe.start,
            probe.end,
        );
        let own = probe.end;
        tokens = quote_spanned!(own=> #path(#tokens).__lostcancel(0));
    }
    *expr = syn::parse2(tokens).expect("ctx: internal error: a lostcancel probe parses");
}

/// Whether `expr` calls a function of std that never returns
/// (`process::exit`, `process::abort`, `panic::panic_any`,
/// `panic::resume_unwind`).
///
/// A value of type `!` given to the check becomes an inference variable
/// that rustc resolves in the same step as the check's verdict, which then
/// reads as a guard; and the wrapping call after it is unreachable code.
/// Such a call drops nothing, so it is left alone. A function of the user's
/// that returns `!` cannot be told by name: written as a statement it is
/// never wrapped, as the value of a `_` it is reported (the docs say so).
pub(super) fn never_returns(expr: &Expr) -> bool {
    let Expr::Call(call) = expr else {
        return false;
    };
    path_segments(&call.func).is_some_and(|segments| {
        matches!(
            segments.last().map(String::as_str),
            Some("exit" | "abort" | "panic_any" | "resume_unwind")
        )
    })
}

/// Whether `expr` is a check this step, or an outer `#[ctx::check]`, made.
pub(super) fn is_probe(expr: &Expr) -> bool {
    matches!(expr, Expr::MethodCall(call) if call.method == "__lostcancel")
}

/// The derivation `expr` calls, by its name in the messages:
/// `x.with_cancel()`, `Context::with_timeout(&x, d)`,
/// `ctx::signal::notify(&x)?` and the like. Only the messages and the bare
/// statement use it; the type decides what is reported.
pub(super) fn derivation(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Paren(paren) => derivation(&paren.expr),
        Expr::Group(group) => derivation(&group.expr),
        Expr::MethodCall(call) => {
            let method = call.method.to_string();
            match DERIVATIONS.iter().find(|name| **name == method) {
                Some(name) => Some(name),
                // `signal::notify(&x).unwrap()` and `.expect("..")`.
                None if method == "unwrap" || method == "expect" => notify(&call.receiver),
                None => None,
            }
        }
        Expr::Call(call) => {
            let segments = path_segments(&call.func)?;
            match segments.as_slice() {
                // `Context::with_cancel(&x)`: the receiver is an argument.
                [.., _, method] => DERIVATIONS
                    .iter()
                    .find(|name| *name == method)
                    .copied()
                    .or_else(|| notify(expr)),
                _ => None,
            }
        }
        // `signal::notify(&x)?`: it returns `io::Result<(Context, CancelGuard)>`.
        Expr::Try(try_expr) => notify(&try_expr.expr),
        _ => None,
    }
}

/// `signal::notify(&x)` (any path ending so).
fn notify(expr: &Expr) -> Option<&'static str> {
    let Expr::Call(call) = expr else {
        return None;
    };
    let segments = path_segments(&call.func)?;
    match segments.as_slice() {
        [.., module, function] if module == "signal" && function == "notify" => {
            Some("signal::notify")
        }
        _ => None,
    }
}

/// The identifiers of a path expression: `["Context", "with_cancel"]`.
pub(super) fn path_segments(expr: &Expr) -> Option<Vec<String>> {
    match expr {
        Expr::Path(path) if path.qself.is_none() => Some(
            path.path
                .segments
                .iter()
                .map(|segment| segment.ident.to_string())
                .collect(),
        ),
        _ => None,
    }
}

/// The trait in `__private::lostcancel` whose message fits: the shape, then
/// the derivation in CamelCase (`TupleWithCancel`), or the shape alone when
/// the value does not come from a derivation by name (`Tuple`).
pub(super) fn message_trait(shape: Shape, name: Option<&str>) -> Ident {
    let shape = match shape {
        Shape::Forget => return format_ident!("Forget"),
        Shape::Wild => "Wild",
        Shape::Tuple => "Tuple",
        Shape::Rest => "Rest",
        Shape::Field0 => "Field0",
        Shape::Stmt => "Stmt",
    };
    let name: String = name
        .unwrap_or("")
        .split(['_', ':'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect();
    format_ident!("{shape}{name}")
}

/// The spans of the first and last token of `tokens`.
pub(super) fn first_and_last(tokens: TokenStream) -> (Span, Span) {
    let mut iter = tokens.into_iter();
    let first = iter
        .next()
        .map_or_else(Span::call_site, |token| token.span());
    let last = iter.last().map_or(first, |token| match token {
        TokenTree::Group(group) => group.span_close(),
        other => other.span(),
    });
    (first, last)
}

/// `tokens` spanned from `start` to `end`: rustc reports an expression made
/// of them on that range. Groups inside (a written type) keep their spans.
fn with_span_range(tokens: TokenStream, start: Span, end: Span) -> TokenStream {
    let mut tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let last = tokens.len().saturating_sub(1);
    for (index, token) in tokens.iter_mut().enumerate() {
        if !matches!(token, TokenTree::Group(_)) {
            token.set_span(if index == last { end } else { start });
        }
    }
    tokens.into_iter().collect()
}
