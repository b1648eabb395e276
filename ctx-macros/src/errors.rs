//! Collects every problem found in one attribute, so the user sees them all
//! in one build instead of one per fix.
//!
//! Each step (parse, validate, check) returns a `syn::Result`; the driver
//! adds each failure here and goes on, then emits every error with the
//! function.

use proc_macro2::TokenStream;
use quote::ToTokens;

/// Every error found so far, combined into one `syn::Error`.
#[derive(Default)]
pub(crate) struct Errors(Option<syn::Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Keeps the errors of a step that failed.
    pub(crate) fn add(&mut self, result: syn::Result<()>) {
        if let Err(error) = result {
            self.push(error);
        }
    }

    /// `Ok` if nothing was pushed, else every error, in the order found.
    pub(crate) fn finish(self) -> syn::Result<()> {
        match self.0 {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

impl ToTokens for Errors {
    /// One `compile_error!` per problem, each with its own span.
    fn to_tokens(&self, tokens: &mut TokenStream) {
        if let Some(error) = &self.0 {
            tokens.extend(error.to_compile_error());
        }
    }
}
