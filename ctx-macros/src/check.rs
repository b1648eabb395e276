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
//! [`never_returns`]), and, where the value is moved (a tuple element, a
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

use proc_macro2::{Literal, Span, TokenStream, TokenTree};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprCall, ExprMatch, Ident, Item, Local, Member, Pat, Stmt, Type};

use crate::args::{self, Macro};
use crate::errors::Errors;
use crate::func::{Body, Func};

/// Wraps every discarded value in the body of `func` in its check.
/// `krate` is the path the ctx crate is known by.
pub(crate) fn lostcancel(func: &mut Func, krate: &TokenStream) {
    if let Body::Block { stmts, .. } = &mut func.body {
        body(stmts, krate);
    }
}

/// [`lostcancel`] for the statements of one body.
pub(crate) fn body(stmts: &mut [Stmt], krate: &TokenStream) {
    let mut visitor = LostCancel {
        krate,
        borrowed: false,
    };
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

struct LostCancel<'a> {
    krate: &'a TokenStream,
    /// The expression visited next is a borrowed place (see
    /// [`LostCancel::visit_operands`]): set by its parent just before,
    /// taken (and reset) by the expression.
    borrowed: bool,
}

/// The derivations, by the name the messages use.
const DERIVATIONS: &[&str] = &[
    "with_cancel",
    "with_deadline",
    "with_timeout",
    "with_deadline_cause",
    "with_timeout_cause",
];

/// How the code discards: picks the message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    /// `let _ = v;`, `_ = v;`
    Wild,
    /// A `_` in a tuple pattern or assignee.
    Tuple,
    /// A `..` in a tuple pattern or assignee.
    Rest,
    /// `v.0`, anywhere.
    Field0,
    /// `v;`
    Stmt,
    /// `mem::forget(v)`
    Forget,
}

/// One step into a tuple, toward the part of the value a discard drops.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    /// Element `n`, from the front.
    Front(usize),
    /// Element `n`, from the back (`0` is the last).
    Back(usize),
    /// The elements under a `..` that has `before` elements before it and
    /// `after` after it in its pattern.
    Rest { before: usize, after: usize },
}

impl Step {
    /// Whether this step picks element `index` of a tuple of `len`.
    fn picks(self, index: usize, len: usize) -> bool {
        match self {
            Step::Front(n) => n == index,
            Step::Back(n) => n + 1 + index == len,
            Step::Rest { before, after } => before <= index && index + after < len,
        }
    }

    /// The one element the traits in `__private::lostcancel` check for this
    /// step, when the tuple's length is not known: for a `..`, the one
    /// nearest to it from the side with no other elements (the guard of a
    /// pair under `(c, ..)` or `(.., g)`). A `..` between elements
    /// (`(c, .., g)`) may cover nothing, so it names none.
    fn element(self) -> Option<Step> {
        let step = match self {
            Step::Rest { before, after: 0 } => Step::Front(before),
            Step::Rest { before: 0, after } => Step::Back(after),
            Step::Rest { .. } => return None,
            step => step,
        };
        match step {
            Step::Front(n) | Step::Back(n) if n < MAX_ARITY => Some(step),
            _ => None,
        }
    }
}

/// One check to make on a value: what is dropped, and where to report it.
#[derive(Clone)]
struct Probe {
    /// The part of the value that is dropped: the steps into nested tuples
    /// down to it, none for the whole value. `let ((c, _), n) = v;` drops
    /// `[Front(0), Front(1)]`.
    path: Vec<Step>,
    shape: Shape,
    /// The first and last token of the discarding code.
    start: Span,
    end: Span,
}

impl Probe {
    fn new(path: Vec<Step>, shape: Shape, tokens: impl ToTokens) -> Probe {
        let (start, end) = first_and_last(tokens.into_token_stream());
        Probe {
            path,
            shape,
            start,
            end,
        }
    }

    /// The same check, one step further in: `step` first, then this path.
    fn under(self, step: Step) -> Probe {
        let mut path = vec![step];
        path.extend(self.path);
        Probe { path, ..self }
    }
}

/// The tuples whose elements have impls in `__private::lostcancel`.
const MAX_ARITY: usize = 4;

impl VisitMut for LostCancel<'_> {
    fn visit_item_mut(&mut self, _: &mut Item) {
        // A nested item is another function: not part of this body.
    }

    // Const contexts inside a body: an inline `const { .. }` block, an
    // array length (`[v; N]`, `[T; N]`) and a const generic argument
    // (`f::<{ N }>()`). The check's calls are not `const` (E0015), and no
    // guard can be made there.
    fn visit_expr_const_mut(&mut self, _: &mut syn::ExprConst) {}

    fn visit_expr_repeat_mut(&mut self, repeat: &mut syn::ExprRepeat) {
        self.visit_expr_mut(&mut repeat.expr);
    }

    fn visit_type_mut(&mut self, _: &mut Type) {}

    fn visit_generic_argument_mut(&mut self, _: &mut syn::GenericArgument) {}

    fn visit_local_mut(&mut self, local: &mut Local) {
        // The pattern and the written type hold no values to check.
        let Some(init) = &mut local.init else {
            return;
        };
        self.visit_at(&mut init.expr, binds_by_ref(&local.pat));
        if let Some((_, diverge)) = &mut init.diverge {
            self.visit_expr_mut(diverge);
        }
        let (pat, ty) = peel_pat(&local.pat);
        let probes = match pat {
            Pat::Wild(wild) => vec![Probe::new(Vec::new(), Shape::Wild, wild)],
            Pat::Tuple(tuple) => {
                tuple_probes(&tuple.elems.iter().map(Elem::of_pat).collect::<Vec<_>>())
            }
            _ => Vec::new(),
        };
        self.probe_value(&mut init.expr, &probes, ty, false);
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        visit_mut::visit_stmt_mut(self, stmt);
        if let Stmt::Expr(expr, Some(semi)) = stmt {
            if derivation(expr).is_some() {
                let probe = Probe::new(Vec::new(), Shape::Stmt, quote!(#expr #semi));
                self.probe_value(expr, &[probe], None, true);
            }
        }
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        let borrowed = std::mem::take(&mut self.borrowed);
        self.visit_operands(expr, borrowed);
        match expr {
            Expr::Assign(assign) => {
                let probes = match peel_expr(&assign.left) {
                    Expr::Infer(infer) => vec![Probe::new(Vec::new(), Shape::Wild, infer)],
                    Expr::Tuple(tuple) => {
                        tuple_probes(&tuple.elems.iter().map(Elem::of_expr).collect::<Vec<_>>())
                    }
                    _ => Vec::new(),
                };
                self.probe_value(&mut assign.right, &probes, None, false);
            }
            Expr::Call(call) => {
                if let Some(probe) = forget(call) {
                    if let Some(arg) = call.args.first_mut() {
                        self.probe_value(arg, &[probe], None, true);
                    }
                }
            }
            Expr::Match(ExprMatch { expr, arms, .. }) => {
                let probes: Vec<Probe> = arms
                    .iter()
                    .flat_map(|arm| escaping_discards(&arm.pat, &arm.body))
                    .collect();
                self.probe_value(expr, &probes, None, false);
            }
            Expr::If(if_expr) => {
                if let Expr::Let(let_expr) = &mut *if_expr.cond {
                    let body = Expr::Block(syn::ExprBlock {
                        attrs: Vec::new(),
                        label: None,
                        block: if_expr.then_branch.clone(),
                    });
                    let probes = escaping_discards(&let_expr.pat, &body);
                    self.probe_value(&mut let_expr.expr, &probes, None, false);
                }
            }
            // `v.0` keeps element 0 and drops the rest of the pair with the
            // statement: as an argument, a field, a receiver, a statement,
            // a returned value alike.
            Expr::Field(field) if !borrowed => {
                if let Some(probe) = field0(field) {
                    self.probe_value(&mut field.base, &[probe], None, false);
                }
            }
            _ => {}
        }
    }
}

impl LostCancel<'_> {
    /// Visits the operands of `expr`, telling each whether it is a
    /// borrowed place.
    ///
    /// A `.0` that is borrowed (`f(&v.0)`, `let c = &v.0;`, `&v.0.field`,
    /// and the initializer of a `let` that binds by `ref`) moves nothing out
    /// of the pair: the guard lives as long as the borrow can be used, to
    /// the end of the statement, or of the block where a `let` extends the
    /// pair's life. So it is not reported, as a match arm that only uses
    /// its context inside is not. A method called on `.0` (`v.0.clone()`)
    /// borrows it too, but is reported: what it returns (a clone, a child)
    /// outlives the statement.
    fn visit_operands(&mut self, expr: &mut Expr, borrowed: bool) {
        match expr {
            Expr::Reference(reference) => self.visit_at(&mut reference.expr, true),
            Expr::Paren(paren) => self.visit_at(&mut paren.expr, borrowed),
            Expr::Group(group) => self.visit_at(&mut group.expr, borrowed),
            Expr::Field(field) if borrowed => self.visit_at(&mut field.base, true),
            Expr::Index(index) if borrowed => {
                self.visit_at(&mut index.expr, true);
                self.visit_expr_mut(&mut index.index);
            }
            Expr::Unary(unary) if borrowed && matches!(unary.op, syn::UnOp::Deref(_)) => {
                self.visit_at(&mut unary.expr, true)
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_at(&mut self, expr: &mut Expr, borrowed: bool) {
        self.borrowed = borrowed;
        self.visit_expr_mut(expr);
    }

    /// Wraps the parts of `expr` that `probes` say are dropped. `ty` is the
    /// type written for `expr` (`let PAT: TY = ...`), passed on so that
    /// inference still sees it; `moved` says whether a place here is moved
    /// (a tuple element, a block's tail) or only named (`let (c, _) = p;`).
    fn probe_value(&self, expr: &mut Expr, probes: &[Probe], ty: Option<&Type>, moved: bool) {
        if probes.is_empty() {
            return;
        }
        match expr {
            Expr::Paren(paren) => self.probe_value(&mut paren.expr, probes, ty, moved),
            Expr::Group(group) => self.probe_value(&mut group.expr, probes, ty, moved),
            Expr::Tuple(tuple) => {
                // Each element is a value of its own: look at the one each
                // probe drops (all of them for a whole `_`), with the rest
                // of the probe's path, so that a nested pattern reaches the
                // element it drops (`let ((c, _), n) = (v, 1);`).
                let len = tuple.elems.len();
                for (index, elem) in tuple.elems.iter_mut().enumerate() {
                    let here: Vec<Probe> = probes
                        .iter()
                        .filter_map(|probe| match probe.path.split_first() {
                            None => Some(probe.clone()),
                            Some((step, rest)) if step.picks(index, len) => Some(Probe {
                                path: rest.to_vec(),
                                ..probe.clone()
                            }),
                            Some(_) => None,
                        })
                        .collect();
                    self.probe_value(elem, &here, element_type(ty, index, len), true);
                }
            }
            Expr::Block(block) if block.label.is_none() => {
                if let Some(Stmt::Expr(tail, None)) = block.block.stmts.last_mut() {
                    self.probe_value(tail, probes, ty, true);
                }
            }
            Expr::Unsafe(block) => {
                if let Some(Stmt::Expr(tail, None)) = block.block.stmts.last_mut() {
                    self.probe_value(tail, probes, ty, true);
                }
            }
            Expr::If(if_expr) => {
                if let Some((_, otherwise)) = &mut if_expr.else_branch {
                    if let Some(Stmt::Expr(tail, None)) = if_expr.then_branch.stmts.last_mut() {
                        self.probe_value(tail, probes, ty, true);
                    }
                    self.probe_value(otherwise, probes, ty, true);
                }
            }
            Expr::Match(match_expr) => {
                for arm in &mut match_expr.arms {
                    self.probe_value(&mut arm.body, probes, ty, true);
                }
            }
            Expr::Path(_) | Expr::Field(_) | Expr::Index(_) if moved => self.wrap(expr, probes, ty),
            Expr::Unary(unary) if moved && matches!(unary.op, syn::UnOp::Deref(_)) => {
                self.wrap(expr, probes, ty)
            }
            Expr::Call(_) | Expr::MethodCall(_) | Expr::Try(_) | Expr::Await(_)
                if !is_probe(expr) && !never_returns(expr) =>
            {
                self.wrap(expr, probes, ty)
            }
            // A reference, a literal, a closure, a macro (whose tokens are
            // not parsed), a diverging `return`: never a guard, or not seen.
            _ => {}
        }
    }

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
    fn wrap(&self, expr: &mut Expr, probes: &[Probe], ty: Option<&Type>) {
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
            let krate = self.krate;
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
}

/// One element of a tuple pattern, or of a tuple on the left of `=`.
enum Elem {
    /// `_`
    Wild(TokenStream),
    /// `..`
    Rest(TokenStream),
    /// A name the element is moved into.
    Bind(Ident),
    /// A tuple pattern nested in this one: `(c, _)` in `((c, _), n)`.
    Tuple(Vec<Elem>),
    Other,
}

impl Elem {
    fn of_pat(pat: &Pat) -> Elem {
        match pat {
            Pat::Wild(wild) => Elem::Wild(wild.to_token_stream()),
            Pat::Rest(rest) => Elem::Rest(rest.to_token_stream()),
            Pat::Ident(ident) if ident.by_ref.is_none() && ident.subpat.is_none() => {
                Elem::Bind(ident.ident.clone())
            }
            Pat::Tuple(tuple) => Elem::Tuple(tuple.elems.iter().map(Elem::of_pat).collect()),
            Pat::Paren(paren) => Elem::of_pat(&paren.pat),
            _ => Elem::Other,
        }
    }

    fn of_expr(expr: &Expr) -> Elem {
        match expr {
            Expr::Infer(infer) => Elem::Wild(infer.to_token_stream()),
            Expr::Range(range) if range.start.is_none() && range.end.is_none() => {
                Elem::Rest(range.to_token_stream())
            }
            Expr::Tuple(tuple) => Elem::Tuple(tuple.elems.iter().map(Elem::of_expr).collect()),
            Expr::Paren(paren) => Elem::of_expr(&paren.expr),
            _ => Elem::Other,
        }
    }

    /// The names bound by this element, at any depth.
    fn names(&self) -> Vec<&Ident> {
        match self {
            Elem::Bind(name) => vec![name],
            Elem::Tuple(elems) => elems.iter().flat_map(Elem::names).collect(),
            Elem::Wild(_) | Elem::Rest(_) | Elem::Other => Vec::new(),
        }
    }
}

/// The probes for a tuple pattern: each `_` and `..`, at any depth of
/// nested tuple patterns.
fn tuple_probes(elems: &[Elem]) -> Vec<Probe> {
    let len = elems.len();
    let rest = elems.iter().position(|elem| matches!(elem, Elem::Rest(_)));
    // An element after a `..` is counted from the back.
    let step = |index: usize| match rest {
        Some(rest) if index > rest => Step::Back(len - 1 - index),
        _ => Step::Front(index),
    };
    let mut probes = Vec::new();
    for (index, elem) in elems.iter().enumerate() {
        match elem {
            Elem::Wild(tokens) => probes.push(Probe::new(vec![step(index)], Shape::Tuple, tokens)),
            // `(..)` alone drops the whole value.
            Elem::Rest(tokens) if len == 1 => {
                probes.push(Probe::new(Vec::new(), Shape::Rest, tokens))
            }
            Elem::Rest(tokens) => {
                let step = Step::Rest {
                    before: index,
                    after: len - 1 - index,
                };
                probes.push(Probe::new(vec![step], Shape::Rest, tokens));
            }
            Elem::Tuple(inner) => probes.extend(
                tuple_probes(inner)
                    .into_iter()
                    .map(|probe| probe.under(step(index))),
            ),
            Elem::Bind(_) | Elem::Other => {}
        }
    }
    probes
}

/// The probes for a match arm (or `if let`) that discards part of a tuple
/// while a name it binds leaves the arm: `(c, _) => c` hands out a context
/// whose guard is dropped at the end of the statement. An arm that only uses
/// `c` inside runs while the guard is still alive, and is fine.
fn escaping_discards(pat: &Pat, body: &Expr) -> Vec<Probe> {
    let (Pat::Tuple(tuple), _) = peel_pat(pat) else {
        return Vec::new();
    };
    let elems: Vec<Elem> = tuple.elems.iter().map(Elem::of_pat).collect();
    let escapes = elems
        .iter()
        .flat_map(Elem::names)
        .any(|name| escapes(body, name));
    if escapes {
        tuple_probes(&elems)
    } else {
        Vec::new()
    }
}

/// Whether the value of `expr` is, or holds, the binding `name`: the arm's
/// result carries it out (`c`, `Some(c)`, `Worker { ctx: c }`,
/// `c.clone()`, `return c`).
fn escapes(expr: &Expr, name: &Ident) -> bool {
    match expr {
        Expr::Path(path) => path.qself.is_none() && path.path.is_ident(name),
        Expr::Paren(paren) => escapes(&paren.expr, name),
        Expr::Group(group) => escapes(&group.expr, name),
        Expr::Block(block) => block.block.stmts.iter().any(|stmt| match stmt {
            Stmt::Expr(tail, None) => escapes(tail, name),
            Stmt::Expr(Expr::Return(ret), _) => {
                ret.expr.as_deref().is_some_and(|e| escapes(e, name))
            }
            _ => false,
        }),
        Expr::Tuple(tuple) => tuple.elems.iter().any(|elem| escapes(elem, name)),
        Expr::Array(array) => array.elems.iter().any(|elem| escapes(elem, name)),
        Expr::Struct(init) => init.fields.iter().any(|field| escapes(&field.expr, name)),
        Expr::Call(call) => call.args.iter().any(|arg| escapes(arg, name)),
        Expr::MethodCall(call) => call.method == "clone" && escapes(&call.receiver, name),
        Expr::Return(ret) => ret.expr.as_deref().is_some_and(|e| escapes(e, name)),
        Expr::Break(brk) => brk.expr.as_deref().is_some_and(|e| escapes(e, name)),
        Expr::If(if_expr) => {
            if_expr.then_branch.stmts.iter().any(|stmt| match stmt {
                Stmt::Expr(tail, None) => escapes(tail, name),
                _ => false,
            }) || if_expr
                .else_branch
                .as_ref()
                .is_some_and(|(_, otherwise)| escapes(otherwise, name))
        }
        Expr::Match(match_expr) => match_expr.arms.iter().any(|arm| escapes(&arm.body, name)),
        _ => false,
    }
}

/// The probe on the `.0` of `v.0`: the pair's guard (element 1) is dropped
/// with the statement when `v` is a value rather than a place.
fn field0(field: &syn::ExprField) -> Option<Probe> {
    match &field.member {
        Member::Unnamed(index) if index.index == 0 => {
            let dot = field.dot_token;
            let member = &field.member;
            Some(Probe::new(
                vec![Step::Front(1)],
                Shape::Field0,
                quote!(#dot #member),
            ))
        }
        _ => None,
    }
}

/// Whether a `let` with this pattern binds by `ref`, directly or through
/// tuple, struct or slice patterns: it borrows its initializer, which then
/// lives to the end of the block (the Reference's "extending pattern").
fn binds_by_ref(pat: &Pat) -> bool {
    match pat {
        Pat::Ident(ident) => ident.by_ref.is_some(),
        Pat::Type(typed) => binds_by_ref(&typed.pat),
        Pat::Paren(paren) => binds_by_ref(&paren.pat),
        Pat::Tuple(tuple) => tuple.elems.iter().any(binds_by_ref),
        Pat::TupleStruct(tuple) => tuple.elems.iter().any(binds_by_ref),
        Pat::Slice(slice) => slice.elems.iter().any(binds_by_ref),
        Pat::Struct(init) => init.fields.iter().any(|field| binds_by_ref(&field.pat)),
        _ => false,
    }
}

/// `forget(v)` through any path ending in `forget` (`std::mem::forget`,
/// `mem::forget`, an imported `forget`): the probe on its path.
fn forget(call: &ExprCall) -> Option<Probe> {
    let segments = path_segments(&call.func)?;
    (segments.last().map(String::as_str) == Some("forget") && call.args.len() == 1)
        .then(|| Probe::new(Vec::new(), Shape::Forget, &call.func))
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
fn never_returns(expr: &Expr) -> bool {
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
fn is_probe(expr: &Expr) -> bool {
    matches!(expr, Expr::MethodCall(call) if call.method == "__lostcancel")
}

/// The derivation `expr` calls, by its name in the messages:
/// `x.with_cancel()`, `Context::with_timeout(&x, d)`,
/// `ctx::signal::notify(&x)?` and the like. Only the messages and the bare
/// statement use it; the type decides what is reported.
fn derivation(expr: &Expr) -> Option<&'static str> {
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

/// The trait in `__private::lostcancel` whose message fits: the shape, then
/// the derivation in CamelCase (`TupleWithCancel`), or the shape alone when
/// the value does not come from a derivation by name (`Tuple`).
fn message_trait(shape: Shape, name: Option<&str>) -> Ident {
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

/// `let PAT: TY` and `(PAT)`, down to the pattern; with `TY` if written.
fn peel_pat(pat: &Pat) -> (&Pat, Option<&Type>) {
    match pat {
        Pat::Type(typed) => (peel_pat(&typed.pat).0, Some(&typed.ty)),
        Pat::Paren(paren) => peel_pat(&paren.pat),
        _ => (pat, None),
    }
}

fn peel_expr(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => peel_expr(&paren.expr),
        Expr::Group(group) => peel_expr(&group.expr),
        _ => expr,
    }
}

/// The written type of element `index` of a tuple of `len` elements, when
/// the whole tuple's type is written as a tuple.
fn element_type(ty: Option<&Type>, index: usize, len: usize) -> Option<&Type> {
    match ty? {
        Type::Tuple(tuple) if tuple.elems.len() == len => tuple.elems.iter().nth(index),
        Type::Paren(paren) => element_type(Some(&paren.elem), index, len),
        _ => None,
    }
}

/// The spans of the first and last token of `tokens`.
fn first_and_last(tokens: TokenStream) -> (Span, Span) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message trait this step can name exists in `ctx::__private`.
    #[test]
    fn every_message_trait_exists() {
        let private = include_str!("../../ctx/src/private.rs");
        let names = DERIVATIONS
            .iter()
            .copied()
            .chain(["signal::notify"])
            .map(Some)
            .chain([None]);
        for name in names {
            for shape in [
                Shape::Wild,
                Shape::Tuple,
                Shape::Rest,
                Shape::Field0,
                Shape::Forget,
            ]
            .into_iter()
            .chain(name.map(|_| Shape::Stmt))
            {
                let ident = message_trait(shape, name);
                assert!(
                    private.contains(&format!("        {ident}:\n")),
                    "no message trait `{ident}` in ctx/src/private.rs"
                );
            }
        }
    }

    #[test]
    fn message_traits_are_named_after_shape_and_derivation() {
        assert_eq!(
            message_trait(Shape::Tuple, Some("with_cancel")),
            "TupleWithCancel"
        );
        assert_eq!(
            message_trait(Shape::Wild, Some("signal::notify")),
            "WildSignalNotify"
        );
        assert_eq!(message_trait(Shape::Rest, None), "Rest");
    }

    fn probes(pat: &str) -> Vec<Vec<Step>> {
        let pat = Pat::parse_single.parse_str(pat).unwrap();
        let Pat::Tuple(tuple) = pat else { panic!() };
        tuple_probes(&tuple.elems.iter().map(Elem::of_pat).collect::<Vec<_>>())
            .into_iter()
            .map(|probe| probe.path)
            .collect()
    }

    use syn::parse::Parser;
    use Step::{Back, Front};

    fn rest(before: usize, after: usize) -> Step {
        Step::Rest { before, after }
    }

    #[test]
    fn tuple_patterns_check_what_they_drop() {
        assert_eq!(probes("(c, _)"), [[Front(1)]]);
        assert_eq!(probes("(_, g)"), [[Front(0)]]);
        assert_eq!(probes("(c, ..)"), [[rest(1, 0)]]);
        assert_eq!(probes("(.., g)"), [[rest(0, 1)]]);
        assert_eq!(probes("(..)"), [[]]);
        assert_eq!(
            probes("(a, _, .., _)"),
            [[Front(1)], [rest(2, 1)], [Back(0)]]
        );
        assert_eq!(probes("(a, b, c, d, _)"), [[Front(4)]]);
    }

    #[test]
    fn nested_tuple_patterns_check_what_they_drop() {
        assert_eq!(probes("((c, _), n)"), [[Front(0), Front(1)]]);
        assert_eq!(probes("(n, (c, ..))"), [[Front(1), rest(1, 0)]]);
        assert_eq!(
            probes("(.., (_, g))"),
            [vec![rest(0, 1)], vec![Back(0), Front(0)]]
        );
        assert_eq!(probes("((..), _)"), vec![vec![Front(0)], vec![Front(1)]]);
        assert_eq!(probes("(((_, c), d), e)"), [[Front(0), Front(0), Front(0)]]);
    }

    #[test]
    fn a_rest_names_the_element_nearest_to_it_from_an_open_side() {
        assert_eq!(rest(1, 0).element(), Some(Front(1)));
        assert_eq!(rest(0, 1).element(), Some(Back(1)));
        // `(c, .., g)` over a pair covers nothing.
        assert_eq!(rest(1, 1).element(), None);
        assert_eq!(rest(4, 0).element(), None);
        assert!(rest(1, 1).picks(1, 3));
        assert!(!rest(1, 1).picks(1, 2));
        assert!(rest(1, 0).picks(3, 4));
    }
}
