//! The lostcancel check: Go's `go vet lostcancel`, at compile time, for the
//! body of a `#[ctx]`, `#[ctx::main]` or `#[ctx::test]` function.
//!
//! A derivation (`with_cancel`, `with_deadline`, `with_timeout` and their
//! `_cause` variants, and `signal::notify`) returns a context and the
//! `CancelGuard` that cancels it on drop. Dropping the guard at once leaves a
//! context that is canceled before anything uses it. The visitor looks for
//! the four ways to write that:
//!
//! | written                               | span of the error |
//! | ------------------------------------- | ----------------- |
//! | `let (c, _) = x.with_cancel();`       | the `_` (also `..`) |
//! | `let _ = x.with_timeout(d);`          | the `_`           |
//! | `x.with_deadline(t);`                 | the statement     |
//! | `(c, _) = ...;`, `_ = ...;`           | the `_`           |
//! | `let c = x.with_cancel().0;`          | the `.0`          |
//!
//! It walks nested blocks, closures and async blocks, but not nested items
//! (`fn`, `impl`, `mod`): those are other functions, checked by their own
//! `#[ctx]` if they have one. What it cannot see is listed in the crate docs.

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit::{self, Visit};
use syn::{Expr, ExprAssign, Item, Local, Member, Pat, Stmt};

use crate::errors::Errors;

/// Reports every discarded guard in `stmts`, in the order written.
pub(crate) fn lostcancel(stmts: &[Stmt]) -> syn::Result<()> {
    let mut visitor = LostCancel {
        errors: Errors::default(),
    };
    for stmt in stmts {
        visitor.visit_stmt(stmt);
    }
    visitor.errors.finish()
}

struct LostCancel {
    errors: Errors,
}

/// The derivations, with the number of arguments each takes as a method.
/// Matching the count keeps unrelated methods of the same name with another
/// arity out.
const DERIVATIONS: &[(&str, usize)] = &[
    ("with_cancel", 0),
    ("with_deadline", 1),
    ("with_timeout", 1),
    ("with_deadline_cause", 2),
    ("with_timeout_cause", 2),
];

impl<'ast> Visit<'ast> for LostCancel {
    fn visit_item(&mut self, _: &'ast Item) {
        // A nested item is another function: not part of this body.
    }

    fn visit_local(&mut self, local: &'ast Local) {
        if let Some(init) = &local.init {
            if let Some(name) = derivation(&init.expr) {
                self.pattern(&local.pat, &name);
            } else if let Some((name, dot_zero)) = first_field(&init.expr) {
                self.push(
                    dot_zero,
                    format!(
                        "`.0` keeps the context from `{name}` and drops its cancel guard at once, \
                         so the context is already canceled; bind both \
                         (`let (ctx, _cancel) = ...`) and keep the guard until the work ends"
                    ),
                );
            }
        }
        visit::visit_local(self, local);
    }

    fn visit_stmt(&mut self, stmt: &'ast Stmt) {
        if let Stmt::Expr(expr, Some(semi)) = stmt {
            if let Some(name) = derivation(expr) {
                self.push(
                    quote!(#expr #semi),
                    format!(
                        "the context and cancel guard from `{name}` are dropped at once, \
                         so the context is canceled before anything uses it; bind both \
                         (`let (ctx, _cancel) = ...`) and keep the guard until the work ends"
                    ),
                );
            }
        }
        visit::visit_stmt(self, stmt);
    }

    fn visit_expr_assign(&mut self, assign: &'ast ExprAssign) {
        if let Some(name) = derivation(&assign.right) {
            self.assignee(&assign.left, &name);
        }
        visit::visit_expr_assign(self, assign);
    }
}

impl LostCancel {
    fn push(&mut self, tokens: impl quote::ToTokens, message: String) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    /// `let PAT = x.with_...(..);`
    fn pattern(&mut self, pat: &Pat, name: &str) {
        match pat {
            Pat::Wild(wild) => self.push(wild, whole_pair(name)),
            Pat::Type(typed) => self.pattern(&typed.pat, name),
            Pat::Paren(paren) => self.pattern(&paren.pat, name),
            Pat::Tuple(tuple) => {
                // The guard is the second element: a `_` there, or a `..`
                // that covers it, drops it.
                let elems: Vec<&Pat> = tuple.elems.iter().collect();
                match elems.as_slice() {
                    [_, Pat::Wild(wild)] => self.push(wild, guard_only("_", name)),
                    [Pat::Rest(rest)] | [_, Pat::Rest(rest)] => {
                        self.push(rest, guard_only("..", name))
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// `PLACE = x.with_...(..);`, a destructuring assignment.
    fn assignee(&mut self, left: &Expr, name: &str) {
        match left {
            Expr::Infer(infer) => self.push(infer, whole_pair(name)),
            Expr::Paren(paren) => self.assignee(&paren.expr, name),
            Expr::Tuple(tuple) => {
                let elems: Vec<&Expr> = tuple.elems.iter().collect();
                match elems.as_slice() {
                    [_, Expr::Infer(infer)] => self.push(infer, guard_only("_", name)),
                    [Expr::Range(rest)] | [_, Expr::Range(rest)]
                        if rest.start.is_none() && rest.end.is_none() =>
                    {
                        self.push(rest, guard_only("..", name))
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
}

fn guard_only(discard: &str, name: &str) -> String {
    format!(
        "this `{discard}` drops the cancel guard from `{name}` at once, so the context is already \
         canceled; bind it (`_cancel`) and keep it until the work ends"
    )
}

fn whole_pair(name: &str) -> String {
    format!(
        "this `_` drops the context and cancel guard from `{name}` at once, so the context \
         is canceled before anything uses it; bind both (`let (ctx, _cancel) = ...`) and \
         keep the guard until the work ends"
    )
}

/// The derivation `expr` calls, if it is one: `x.with_cancel()`,
/// `Context::with_timeout(&x, d)`, `ctx::signal::notify(&x)?` and the like.
fn derivation(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Paren(paren) => derivation(&paren.expr),
        Expr::Group(group) => derivation(&group.expr),
        Expr::MethodCall(call) => match arity(&call.method.to_string()) {
            Some(arity) => (call.args.len() == arity && call.turbofish.is_none())
                .then(|| call.method.to_string()),
            // `signal::notify(&x).unwrap()` and `.expect("..")`.
            None if (call.method == "unwrap" && call.args.is_empty())
                || (call.method == "expect" && call.args.len() == 1) =>
            {
                notify(&call.receiver)
            }
            None => None,
        },
        Expr::Call(call) => {
            let segments = path_segments(&call.func)?;
            match segments.as_slice() {
                // `Context::with_cancel(&x)`: the receiver is an argument.
                [.., _, method] if arity(method).map(|n| n + 1) == Some(call.args.len()) => {
                    Some(method.clone())
                }
                _ => None,
            }
        }
        // `signal::notify(&x)?`: it returns `io::Result<(Context, CancelGuard)>`.
        Expr::Try(try_expr) => notify(&try_expr.expr),
        _ => None,
    }
}

/// `signal::notify(&x)` (any path ending so) with one argument.
fn notify(expr: &Expr) -> Option<String> {
    let Expr::Call(call) = expr else {
        return None;
    };
    let segments = path_segments(&call.func)?;
    match segments.as_slice() {
        [.., module, function]
            if module == "signal" && function == "notify" && call.args.len() == 1 =>
        {
            Some("signal::notify".to_owned())
        }
        _ => None,
    }
}

/// The identifiers of a path expression: `["Context", "with_cancel"]`.
fn path_segments(expr: &Expr) -> Option<Vec<String>> {
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

fn arity(method: &str) -> Option<usize> {
    DERIVATIONS
        .iter()
        .find(|(name, _)| *name == method)
        .map(|(_, arity)| *arity)
}

/// `x.with_cancel().0`: the derivation and the `.0`.
fn first_field(expr: &Expr) -> Option<(String, TokenStream)> {
    match expr {
        Expr::Paren(paren) => first_field(&paren.expr),
        Expr::Field(field) => match &field.member {
            Member::Unnamed(index) if index.index == 0 => {
                let name = derivation(&field.base)?;
                let dot = field.dot_token;
                let member = &field.member;
                Some((name, quote!(#dot #member)))
            }
            _ => None,
        },
        _ => None,
    }
}
