//! The walk over a body: finds each place that discards a value (a `let`,
//! an assignment, a statement, a `match` or `if let`, a `.0`, a `forget`)
//! and hands the value to [`wrap`] with the probes the discard makes.
//! Nested items and const contexts are skipped; a borrowed `.0` is told
//! apart from a moved one.

use proc_macro2::TokenStream;
use quote::quote;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, ExprMatch, Item, Local, Pat, Stmt, Type};

use super::pattern::{
    binds_by_ref, element_type, escaping_discards, field0, forget, peel_expr, peel_pat,
    tuple_probes, Elem, Probe, Shape,
};
use super::wrap::{derivation, is_probe, never_returns, wrap};

/// The visitor of one body: wraps each value it discards in its check.
pub(super) struct LostCancel<'a> {
    krate: &'a TokenStream,
    /// The expression visited next is a borrowed place (see
    /// [`LostCancel::visit_operands`]): set by its parent just before,
    /// taken (and reset) by the expression.
    borrowed: bool,
}

impl<'a> LostCancel<'a> {
    /// A visitor for a body of the crate known as `krate`.
    pub(super) fn new(krate: &'a TokenStream) -> Self {
        LostCancel {
            krate,
            borrowed: false,
        }
    }
}

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
            Expr::Path(_) | Expr::Field(_) | Expr::Index(_) if moved => {
                wrap(self.krate, expr, probes, ty)
            }
            Expr::Unary(unary) if moved && matches!(unary.op, syn::UnOp::Deref(_)) => {
                wrap(self.krate, expr, probes, ty)
            }
            Expr::Call(_) | Expr::MethodCall(_) | Expr::Try(_) | Expr::Await(_)
                if !is_probe(expr) && !never_returns(expr) =>
            {
                wrap(self.krate, expr, probes, ty)
            }
            // A reference, a literal, a closure, a macro (whose tokens are
            // not parsed), a diverging `return`: never a guard, or not seen.
            _ => {}
        }
    }
}
