//! The item an attribute is put on, as written: a function, a method, or a
//! trait method declaration.
//!
//! The body is kept as statements when it parses, and as raw tokens when it
//! does not (an edit in progress): the raw body is emitted unchanged, so rustc
//! reports the real syntax error and an IDE still sees the signature with
//! `ctx` in it.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::parse::{Parse, ParseStream, Parser};
use syn::spanned::Spanned;
use syn::token::Brace;
use syn::{braced, Attribute, Block, Item, Signature, Stmt, Token, TraitItem, Visibility};

/// `#[attrs] vis sig body`.
pub(crate) struct Func {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    /// `{ #![inner] stmts }`, parsed.
    Block {
        brace: Brace,
        inner: Vec<Attribute>,
        stmts: Vec<Stmt>,
    },
    /// A body that does not parse, kept for rustc to report.
    Raw { brace: Brace, tokens: TokenStream },
    /// `;`: a trait method declaration.
    Semi(Token![;]),
}

impl Parse for Func {
    fn parse(input: ParseStream) -> syn::Result<Func> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body = if input.peek(Token![;]) {
            Body::Semi(input.parse()?)
        } else {
            let content;
            let brace = braced!(content in input);
            let tokens: TokenStream = content.parse()?;
            let statements = |input: ParseStream| {
                let inner = input.call(Attribute::parse_inner)?;
                let stmts = input.call(Block::parse_within)?;
                Ok((inner, stmts))
            };
            match statements.parse2(tokens.clone()) {
                Ok((inner, stmts)) => Body::Block {
                    brace,
                    inner,
                    stmts,
                },
                Err(_) => Body::Raw { brace, tokens },
            }
        };
        Ok(Func {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

impl Func {
    /// Parses `item`, or says what it is instead, spanned on its keyword.
    pub(crate) fn parse_item(item: TokenStream, macro_name: &str) -> syn::Result<Func> {
        match syn::parse2::<Func>(item.clone()) {
            Ok(func) => Ok(func),
            Err(error) => match what_instead(item) {
                Some((what, span, hint)) => Err(syn::Error::new(
                    span,
                    format!("`{macro_name}` goes on a function or method, not on {what}{hint}"),
                )),
                None => Err(error),
            },
        }
    }

    /// Emits the function with `body` in place of the user's statements
    /// (`None` keeps them), reusing the user's brace so the body's span stays
    /// theirs.
    pub(crate) fn to_tokens_with(&self, sig: &Signature, body: Option<TokenStream>) -> TokenStream {
        let Func { attrs, vis, .. } = self;
        let block = match (&self.body, body) {
            (Body::Semi(semi), _) => semi.to_token_stream(),
            (Body::Raw { brace, tokens }, _) => braces(brace, tokens.clone()),
            (Body::Block { brace, inner, .. }, Some(body)) => {
                braces(brace, quote!(#(#inner)* #body))
            }
            (
                Body::Block {
                    brace,
                    inner,
                    stmts,
                },
                None,
            ) => braces(brace, quote!(#(#inner)* #(#stmts)*)),
        };
        quote!(#(#attrs)* #vis #sig #block)
    }

    /// The user's statements, as written.
    pub(crate) fn stmts(&self) -> Option<&[Stmt]> {
        match &self.body {
            Body::Block { stmts, .. } => Some(stmts),
            Body::Raw { .. } | Body::Semi(_) => None,
        }
    }
}

fn braces(brace: &Brace, tokens: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    brace.surround(&mut out, |out| out.extend(tokens));
    out
}

/// What a non-function item is ("a struct"), where its keyword is, and a
/// hint for the common case of a struct.
fn what_instead(item: TokenStream) -> Option<(&'static str, Span, &'static str)> {
    const STORED: &str =
        ": a context is passed to each call, not stored; put `#[ctx]` on the methods that need one";
    if let Ok(item) = syn::parse2::<Item>(item.clone()) {
        return Some(match item {
            Item::Struct(s) => ("a struct", s.struct_token.span, STORED),
            Item::Enum(e) => ("an enum", e.enum_token.span, STORED),
            Item::Union(u) => ("a union", u.union_token.span, STORED),
            Item::Trait(t) => (
                "a trait",
                t.trait_token.span,
                "; put it on each method that needs a context",
            ),
            Item::Impl(i) => (
                "an impl block",
                i.impl_token.span,
                "; put it on each method that needs a context",
            ),
            Item::Mod(m) => ("a module", m.mod_token.span, ""),
            Item::Const(c) => ("a const", c.const_token.span, ""),
            Item::Static(s) => ("a static", s.static_token.span, ""),
            Item::Type(t) => ("a type alias", t.type_token.span, ""),
            Item::Use(u) => ("a use declaration", u.use_token.span, ""),
            Item::ExternCrate(e) => ("an extern crate", e.extern_token.span, ""),
            Item::ForeignMod(f) => ("an extern block", f.abi.extern_token.span, ""),
            Item::Macro(m) => ("a macro", m.mac.path.span(), ""),
            Item::TraitAlias(t) => ("a trait alias", t.trait_token.span, ""),
            Item::Fn(_) | Item::Verbatim(_) => return None,
            _ => return None,
        });
    }
    match syn::parse2::<TraitItem>(item).ok()? {
        TraitItem::Const(c) => Some(("an associated const", c.const_token.span, "")),
        TraitItem::Type(t) => Some(("an associated type", t.type_token.span, "")),
        _ => None,
    }
}
