//! Keeps lifetime elision working once `ctx: &Context` is added.
//!
//! `fn first(xs: &[u8]) -> &u8` borrows its output from its only borrowed
//! input. With a second borrowed input, `ctx`, elision no longer knows which
//! one, and rustc rejects the signature. So when the inputs (without `ctx`)
//! have exactly one lifetime and the output elides one, that lifetime is
//! named and written into the output, which is what elision meant:
//!
//! ```text
//! fn first(xs: &[u8]) -> &u8
//!     →  fn first<'__ctx_elided>(ctx: &Context, xs: &'__ctx_elided [u8]) -> &'__ctx_elided u8
//! ```
//!
//! Methods with `&self` need nothing: elision takes `self`'s lifetime. A
//! lifetime hidden in a path (`Ref` for `Ref<'a>`) cannot be seen; such a
//! signature must name its lifetimes, as rustc's error then says.

use proc_macro2::Span;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{
    FnArg, GenericParam, Lifetime, LifetimeParam, ParenthesizedGenericArguments, ReturnType,
    Signature, TypeBareFn, TypeReference,
};

/// Rewrites `sig` (before `ctx` is added) so that its output keeps the
/// lifetime elision gave it.
pub(crate) fn name_elided(sig: &mut Signature) {
    let ReturnType::Type(_, output) = &mut sig.output else {
        return;
    };
    if sig
        .inputs
        .iter()
        .any(|arg| matches!(arg, FnArg::Receiver(_)))
    {
        return;
    }
    let mut in_output = Lifetimes::default();
    in_output.visit_type(output);
    if in_output.elided == 0 {
        return;
    }
    let mut in_inputs = Lifetimes::default();
    for input in &sig.inputs {
        in_inputs.visit_fn_arg(input);
    }
    let name = match (in_inputs.elided, in_inputs.named.as_slice()) {
        (1, []) => {
            let name = Lifetime::new("'__ctx_elided", Span::call_site());
            for input in &mut sig.inputs {
                Name(&name).visit_fn_arg_mut(input);
            }
            sig.generics
                .params
                .insert(0, GenericParam::Lifetime(LifetimeParam::new(name.clone())));
            name
        }
        (0, [named]) => named.clone(),
        // None, or several: elision failed before `ctx` too.
        _ => return,
    };
    Name(&name).visit_type_mut(output);
}

/// Counts elided lifetimes and lists named ones, outside nested elision
/// scopes (`fn(&T) -> &U`, `Fn(&T) -> &U`).
#[derive(Default)]
struct Lifetimes {
    elided: usize,
    named: Vec<Lifetime>,
}

impl<'ast> Visit<'ast> for Lifetimes {
    fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
        if reference.lifetime.is_none() {
            self.elided += 1;
        }
        visit::visit_type_reference(self, reference);
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident == "_" {
            self.elided += 1;
        } else if lifetime.ident != "static" && !self.named.contains(lifetime) {
            self.named.push(lifetime.clone());
        }
    }

    fn visit_type_bare_fn(&mut self, _: &'ast TypeBareFn) {}

    fn visit_parenthesized_generic_arguments(&mut self, _: &'ast ParenthesizedGenericArguments) {}
}

/// Writes `self.0` in place of every elided lifetime, outside nested
/// elision scopes.
struct Name<'a>(&'a Lifetime);

impl VisitMut for Name<'_> {
    fn visit_type_reference_mut(&mut self, reference: &mut TypeReference) {
        if reference.lifetime.is_none() {
            let mut name = self.0.clone();
            name.set_span(reference.and_token.span);
            reference.lifetime = Some(name);
        }
        visit_mut::visit_type_reference_mut(self, reference);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        if lifetime.ident == "_" {
            let mut name = self.0.clone();
            name.set_span(lifetime.span());
            *lifetime = name;
        }
    }

    fn visit_type_bare_fn_mut(&mut self, _: &mut TypeBareFn) {}

    fn visit_parenthesized_generic_arguments_mut(&mut self, _: &mut ParenthesizedGenericArguments) {
    }
}
