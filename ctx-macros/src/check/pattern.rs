//! What a discard drops: the shapes of discarding code, the steps into
//! nested tuples down to the dropped part (tuple patterns and assignees,
//! `_` and `..`, `.0`, `forget`), and the probes that carry them with the
//! span to report on.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::{Expr, ExprCall, Ident, Member, Pat, Stmt, Type};

use super::wrap::{first_and_last, path_segments};

/// How the code discards: picks the message.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Shape {
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
pub(super) enum Step {
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
    pub(super) fn picks(self, index: usize, len: usize) -> bool {
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
    pub(super) fn element(self) -> Option<Step> {
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
pub(super) struct Probe {
    /// The part of the value that is dropped: the steps into nested tuples
    /// down to it, none for the whole value. `let ((c, _), n) = v;` drops
    /// `[Front(0), Front(1)]`.
    pub(super) path: Vec<Step>,
    pub(super) shape: Shape,
    /// The first and last token of the discarding code.
    pub(super) start: Span,
    pub(super) end: Span,
}

impl Probe {
    pub(super) fn new(path: Vec<Step>, shape: Shape, tokens: impl ToTokens) -> Probe {
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

/// One element of a tuple pattern, or of a tuple on the left of `=`.
pub(super) enum Elem {
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
    pub(super) fn of_pat(pat: &Pat) -> Elem {
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

    pub(super) fn of_expr(expr: &Expr) -> Elem {
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
pub(super) fn tuple_probes(elems: &[Elem]) -> Vec<Probe> {
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
pub(super) fn escaping_discards(pat: &Pat, body: &Expr) -> Vec<Probe> {
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
pub(super) fn field0(field: &syn::ExprField) -> Option<Probe> {
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
pub(super) fn binds_by_ref(pat: &Pat) -> bool {
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
pub(super) fn forget(call: &ExprCall) -> Option<Probe> {
    let segments = path_segments(&call.func)?;
    (segments.last().map(String::as_str) == Some("forget") && call.args.len() == 1)
        .then(|| Probe::new(Vec::new(), Shape::Forget, &call.func))
}

/// `let PAT: TY` and `(PAT)`, down to the pattern; with `TY` if written.
pub(super) fn peel_pat(pat: &Pat) -> (&Pat, Option<&Type>) {
    match pat {
        Pat::Type(typed) => (peel_pat(&typed.pat).0, Some(&typed.ty)),
        Pat::Paren(paren) => peel_pat(&paren.pat),
        _ => (pat, None),
    }
}

pub(super) fn peel_expr(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(paren) => peel_expr(&paren.expr),
        Expr::Group(group) => peel_expr(&group.expr),
        _ => expr,
    }
}

/// The written type of element `index` of a tuple of `len` elements, when
/// the whole tuple's type is written as a tuple.
pub(super) fn element_type(ty: Option<&Type>, index: usize, len: usize) -> Option<&Type> {
    match ty? {
        Type::Tuple(tuple) if tuple.elems.len() == len => tuple.elems.iter().nth(index),
        Type::Paren(paren) => element_type(Some(&paren.elem), index, len),
        _ => None,
    }
}
