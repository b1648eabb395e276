//! The lostcancel check: Go's `go vet lostcancel`, at compile time, for the
//! bodies of `#[ctx]`, `#[ctx::main]`, `#[ctx::test]` and `#[ctx::check]`
//! items.
//!
//! A derivation (`with_cancel`, `with_deadline`, `with_timeout` and their
//! `_cause` variants, and `signal::notify`) returns a context and the
//! `CancelGuard` that cancels it on drop. Dropping the guard at once leaves a
//! context that is canceled before anything uses it.
//!
//! A macro sees tokens, not types: it cannot tell a guard from a builder
//! whose method is also called `with_cancel`. So this step finds the places
//! where a body discards a value, and wraps that value, where it stands, in a
//! call that asks rustc about its type (`ctx::__private::lostcancel`, whose
//! docs explain the trick):
//!
//! ```text
//! let (c, _) = x.with_cancel();
//! // becomes
//! let (c, _) = ::ctx::__private::lostcancel::TupleWithCancel::front::<1, _>(x.with_cancel())
//!     .__lostcancel(0);
//! ```
//!
//! The trait (`TupleWithCancel`) carries the message: the shape of the
//! discard and the derivation's name, read from the syntax. The path is
//! spanned on the discarding code (`_` here), which is where rustc reports
//! it.
//!
//! The call returns the value unchanged, so it is dropped where it was; it
//! fails to compile, with the message of its trait, only when what is dropped
//! is a cancel guard. The places, with where the error points:
//!
//! | written                                   | checked                 | span      |
//! | ----------------------------------------- | ----------------------- | --------- |
//! | `let (c, _) = v;` (any tuple, up to four) | the element under `_`   | the `_`   |
//! | `let (c, ..) = v;`, `let (.., c) = v;`    | the nearest under `..`  | the `..`  |
//! | `let ((c, _), n) = (v, 1);`, any depth    | as above, in `v`        | as above  |
//! | `let _ = v;`                              | the whole value         | the `_`   |
//! | `(c, _) = v;`, `_ = v;`                   | as for `let`            | as above  |
//! | `v.0` (argument, field, receiver, return) | element 1 of the pair   | the `.0`  |
//! | `x.with_cancel();` (a derivation's name)  | the whole value         | statement |
//! | `mem::forget(v)` (any path to `forget`)   | the whole value         | the path  |
//! | `match v { (c, _) => c }`, `if let`       | as for `let`, when the arm lets `c` out | the `_` |
//!
//! Only values that a discard really drops are wrapped: a call, a method
//! call, `?`, `.await` (but not std's calls that never return, see
//! [`never_returns`](wrap::never_returns)), and, where the value is moved (a tuple element, a
//! block's tail), a place. A place at the top (`let (c, _) = pair;`) is not
//! moved, so nothing is dropped and nothing is wrapped. A tuple, a block, an
//! `if` or a `match` is looked through to the values it is made of, so
//! temporary lifetime extension (`let (r, _) = (&make(), x);`) is kept.
//!
//! A tuple literal is where a pattern meets each value it takes apart: a
//! nested pattern (`let ((c, _), n) = (x.with_cancel(), 1);`) checks the
//! element of `x.with_cancel()` under its `_`, a `_` past the fourth element
//! or a `..` between two names (`(c, .., g)`) checks each value it drops.
//! Elsewhere the traits name one element of one tuple, so these are not
//! checked: a `_` or `..` in a nested pattern over a value that is not a
//! tuple literal (`let ((c, _), n) = make();`), a `_` past the fourth
//! element, and a `..` between two names (over a pair it covers nothing;
//! the nearest element is the one bound after it).
//!
//! A `.0` is checked wherever it stands (`spawn(v.0)`, `Worker { ctx: v.0 }`,
//! `v.0.clone()`, `v.0;`, `return v.0`): the rest of the pair is dropped
//! with the statement, while the context goes on. Not under `&` (`f(&v.0)`,
//! `let c = &v.0;`): the borrow cannot outlive the pair, so the guard is
//! alive wherever the context is used (see [`LostCancel::visit_operands`]).
//!
//! It walks nested blocks, closures and async blocks, but not nested items
//! (`fn`, `impl`, `mod`): those are other functions, checked by their own
//! attribute if they have one. Nor const contexts: a `const fn` body, an
//! inline `const { .. }`, an array length, a const generic argument. The
//! check's calls are not `const` (E0015 there), and a guard cannot be made
//! in a const context anyway. A value already wrapped (by an outer
//! `#[ctx::check]`) is left as it is.

mod pattern;
#[cfg(test)]
mod tests;
mod visit;
mod wrap;

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::VisitMut;
use syn::{Item, Stmt};

use crate::args::{self, Macro};
use crate::errors::Errors;
use crate::func::{Body, Func};
use visit::LostCancel;
use wrap::first_and_last;

/// Wraps every discarded value in the body of `func` in its check.
/// `krate` is the path the ctx crate is known by.
pub(crate) fn lostcancel(func: &mut Func, krate: &TokenStream) {
    if let Body::Block { stmts, .. } = &mut func.body {
        body(stmts, krate);
    }
}

/// [`lostcancel`] for the statements of one body.
pub(crate) fn body(stmts: &mut [Stmt], krate: &TokenStream) {
    let mut visitor = LostCancel::new(krate);
    for stmt in stmts {
        visitor.visit_stmt_mut(stmt);
    }
}

/// `#[ctx::check]`: the check alone, for code that takes its context by
/// hand. On a function, an `impl` block, a trait or an inline `mod { ... }`,
/// every function body inside (nested items included, `const fn`s and
/// `const`/`static` initializers not) is checked as a `#[ctx]` body is;
/// nothing else changes.
pub(crate) fn attribute(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (args, parsed) = args::parse(Macro::Check, attr);
    errors.add(parsed);
    let mut parsed: Item = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(error) => {
            errors.push(error);
            return quote!(#errors #item);
        }
    };
    match &parsed {
        Item::Fn(_)
        | Item::Impl(_)
        | Item::Trait(_)
        | Item::Mod(syn::ItemMod {
            content: Some(_), ..
        }) => {
            let krate = args.krate();
            Bodies { krate: &krate }.visit_item_mut(&mut parsed);
            quote!(#errors #parsed)
        }
        other => {
            let (what, tokens) = match other {
                Item::Mod(module) => ("a module declared in another file", quote!(#module)),
                other => ("this item", quote!(#other)),
            };
            let (start, _) = first_and_last(tokens);
            errors.push(syn::Error::new(
                start,
                format!(
                    "`#[ctx::check]` checks function bodies, and {what} has none here: put it on a \
                     function, an `impl` block, a trait or an inline `mod {{ ... }}`"
                ),
            ));
            quote!(#errors #item)
        }
    }
}

/// Every function body in an item, nested items included.
struct Bodies<'a> {
    krate: &'a TokenStream,
}

impl VisitMut for Bodies<'_> {
    fn visit_block_mut(&mut self, _: &mut syn::Block) {
        // Blocks outside a function body (a `const` initializer) are not
        // bodies; the ones inside one are walked by `body` itself.
    }

    fn visit_item_fn_mut(&mut self, func: &mut syn::ItemFn) {
        self.function(&func.sig, &mut func.block);
    }

    fn visit_impl_item_fn_mut(&mut self, func: &mut syn::ImplItemFn) {
        self.function(&func.sig, &mut func.block);
    }

    fn visit_trait_item_fn_mut(&mut self, func: &mut syn::TraitItemFn) {
        if let Some(block) = &mut func.default {
            self.function(&func.sig, block);
        }
    }
}

impl Bodies<'_> {
    /// Checks the body of one function, then the items nested in it.
    ///
    /// A `const fn` body is left as written: the check's calls are not
    /// `const`, so wrapping a value there breaks the function (E0015), and a
    /// guard cannot be made in a const context anyway. The items nested in
    /// it are other functions, and are checked.
    fn function(&mut self, sig: &syn::Signature, block: &mut syn::Block) {
        if sig.constness.is_none() {
            body(&mut block.stmts, self.krate);
        }
        Nested(self).visit_block_mut(block);
    }
}

/// The items nested in a body, each given to [`Bodies`].
struct Nested<'a, 'b>(&'a mut Bodies<'b>);

impl VisitMut for Nested<'_, '_> {
    fn visit_item_mut(&mut self, item: &mut Item) {
        self.0.visit_item_mut(item);
    }
}
