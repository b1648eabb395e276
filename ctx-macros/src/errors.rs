//! Collects every problem found in one attribute, so the user sees them all
//! in one build instead of one per fix.

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
}

impl ToTokens for Errors {
    /// One `compile_error!` per problem, each with its own span.
    fn to_tokens(&self, tokens: &mut TokenStream) {
        if let Some(error) = &self.0 {
            tokens.extend(error.to_compile_error());
        }
    }
}
