//! Functions that return a future instead of being `async`: what
//! `#[async_trait]` makes of an `async fn`, and hand-written ones.
//!
//! `#[async_trait]` sits on the trait or impl, so it expands before the
//! `#[ctx]` on a method, and `#[ctx]` sees async-trait 0.1's output:
//!
//! ```text
//! #[ctx]
//! fn get<'life0, 'async_trait>(&'life0 self, id: u32)
//!     -> Pin<Box<dyn Future<Output = Result<u32, E>> + Send + 'async_trait>>
//! where
//!     'life0: 'async_trait,
//!     Self: 'async_trait,
//! {
//!     Box::pin(async move { /* the user's body */ })
//! }
//! ```
//!
//! The body runs in the async block, so that is where the entry check, the
//! race and the timeout go. As tracing-attributes does (`AsyncInfo::from_fn`,
//! tokio-rs/tracing#399), the function is recognised by its shape, not by a
//! marker: not `async`, declared to return a future whose `Output` is written
//! out ([`FutureFn`]), with a body that ends in an async block, pinned or not
//! ([`Tail`]). The lifetime `'async_trait` among its generics says that
//! async-trait wrote it: the future may then borrow `ctx` for that lifetime,
//! as it borrows every other reference parameter.

use proc_macro2::TokenStream;
use quote::{quote, ToTokens};
use syn::{
    Expr, ExprAsync, ExprCall, ExprMethodCall, GenericArgument, GenericParam, Lifetime,
    PathArguments, ReturnType, Signature, Stmt, Type, TypeParamBound,
};

/// A `fn` declared to return a future.
pub(crate) struct FutureFn<'a> {
    /// `O` in `Future<Output = O>`: what the body's async block yields.
    pub(crate) output: &'a Type,
    /// `'async_trait`, when `#[async_trait]` wrote the function.
    pub(crate) async_trait: Option<&'a Lifetime>,
}

impl FutureFn<'_> {
    /// `sig` if it is a plain `fn` returning `Pin<Box<dyn Future<Output = O>
    /// ..>>`, `BoxFuture<'_, O>`, `LocalBoxFuture<'_, O>` or `impl
    /// Future<Output = O> ..`.
    pub(crate) fn of(sig: &Signature) -> Option<FutureFn<'_>> {
        if sig.asyncness.is_some() {
            return None;
        }
        let ReturnType::Type(_, ty) = &sig.output else {
            return None;
        };
        let output = future_output(ty)?;
        let async_trait = sig.generics.params.iter().find_map(|param| match param {
            GenericParam::Lifetime(param) if param.lifetime.ident == "async_trait" => {
                Some(&param.lifetime)
            }
            _ => None,
        });
        Some(FutureFn {
            output,
            async_trait,
        })
    }
}

/// `O` of a future type, as listed on [`FutureFn::of`].
fn future_output(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Group(group) => future_output(&group.elem),
        Type::Paren(paren) => future_output(&paren.elem),
        Type::ImplTrait(impl_trait) => output_of_bounds(impl_trait.bounds.iter()),
        Type::Path(_) => {
            let (name, args) = generic(ty)?;
            match (name.as_str(), args.as_slice()) {
                // `Pin<Box<dyn Future<..> ..>>`
                ("Pin", [pinned]) => {
                    let (name, args) = generic(pinned)?;
                    match (name.as_str(), args.as_slice()) {
                        ("Box", [Type::TraitObject(object)]) => {
                            output_of_bounds(object.bounds.iter())
                        }
                        _ => None,
                    }
                }
                // futures' `BoxFuture<'a, O>`
                ("BoxFuture" | "LocalBoxFuture", [output]) => Some(*output),
                _ => None,
            }
        }
        _ => None,
    }
}

/// `("Pin", [T])` for `std::pin::Pin<T>`: the last segment of a path type
/// and its type arguments.
fn generic(ty: &Type) -> Option<(String, Vec<&Type>)> {
    let Type::Path(path) = ty else {
        return None;
    };
    if path.qself.is_some() {
        return None;
    }
    let last = path.path.segments.last()?;
    let PathArguments::AngleBracketed(generics) = &last.arguments else {
        return None;
    };
    let types = generics
        .args
        .iter()
        .filter_map(|arg| match arg {
            GenericArgument::Type(ty) => Some(ty),
            _ => None,
        })
        .collect();
    Some((last.ident.to_string(), types))
}

/// `O` of the `Future<Output = O>` among `bounds`.
fn output_of_bounds<'a>(mut bounds: impl Iterator<Item = &'a TypeParamBound>) -> Option<&'a Type> {
    bounds.find_map(|bound| {
        let TypeParamBound::Trait(bound) = bound else {
            return None;
        };
        let last = bound.path.segments.last()?;
        if last.ident != "Future" {
            return None;
        }
        let PathArguments::AngleBracketed(generics) = &last.arguments else {
            return None;
        };
        generics.args.iter().find_map(|arg| match arg {
            GenericArgument::AssocType(assoc) if assoc.ident == "Output" => Some(&assoc.ty),
            _ => None,
        })
    })
}

/// The async block a body ends with: `async move { .. }`,
/// `Box::pin(async move { .. })` or `async move { .. }.boxed()`.
pub(crate) struct Tail<'a> {
    /// Where it is among the body's statements: the last one.
    index: usize,
    wrapper: Wrapper<'a>,
    block: &'a ExprAsync,
}

/// What is around the async block.
enum Wrapper<'a> {
    None,
    /// `Box::pin(..)`, by any path ending so.
    Call(&'a ExprCall),
    /// `.boxed()` or `.boxed_local()`.
    Method(&'a ExprMethodCall),
}

impl<'a> Tail<'a> {
    /// The tail of `stmts`, if it is one of the recognised shapes.
    pub(crate) fn of(stmts: &'a [Stmt]) -> Option<Tail<'a>> {
        let index = stmts.len().checked_sub(1)?;
        let Stmt::Expr(expr, None) = &stmts[index] else {
            return None;
        };
        let (wrapper, inner) = match expr {
            Expr::Call(call) if is_box_pin(&call.func) && call.args.len() == 1 => {
                (Wrapper::Call(call), &call.args[0])
            }
            Expr::MethodCall(call)
                if (call.method == "boxed" || call.method == "boxed_local")
                    && call.args.is_empty()
                    && call.turbofish.is_none() =>
            {
                (Wrapper::Method(call), &*call.receiver)
            }
            other => (Wrapper::None, other),
        };
        let Expr::Async(block) = inner else {
            return None;
        };
        Some(Tail {
            index,
            wrapper,
            block,
        })
    }

    /// The statements of the async block, as written.
    pub(crate) fn stmts(&self) -> &'a [Stmt] {
        &self.block.block.stmts
    }

    /// The statements of the async block, split into what async-trait
    /// writes ahead of the user's body to move the parameters in (`let x =
    /// x;`, `let __self = self;`), and the rest, in order.
    ///
    /// The first part may run before the entry check: it only moves
    /// values. Run there, it binds the names a `timeout = EXPR` uses, so a
    /// parameter that only `EXPR` reads is not reported unused.
    pub(crate) fn split_rebindings(&self) -> (Vec<Stmt>, Vec<Stmt>) {
        let mut moves = Vec::new();
        let mut rest = Vec::new();
        let mut stmts = self.stmts().iter();
        for stmt in stmts.by_ref() {
            if is_rebinding(stmt) {
                moves.push(stmt.clone());
            } else if is_return_type_pin(stmt) {
                rest.push(stmt.clone());
            } else {
                rest.push(stmt.clone());
                break;
            }
        }
        rest.extend(stmts.cloned());
        (moves, rest)
    }

    /// Whether the async block is `async move`.
    pub(crate) fn is_move(&self) -> bool {
        self.block.capture.is_some()
    }

    /// The body again, with `before` inserted ahead of the tail and the
    /// async block now `async move { content }`: its attributes, braces and
    /// wrapper stay the user's, so a tool that recognises the shape (another
    /// `#[ctx]`, `#[tracing::instrument]`) still does.
    pub(crate) fn rewrite(
        &self,
        stmts: &[Stmt],
        before: TokenStream,
        content: TokenStream,
    ) -> TokenStream {
        let ExprAsync {
            attrs,
            async_token,
            block,
            ..
        } = self.block;
        let mut new_block = quote!(#(#attrs)* #async_token move);
        block
            .brace_token
            .surround(&mut new_block, |tokens| tokens.extend(content));
        let tail = match self.wrapper {
            Wrapper::None => new_block,
            Wrapper::Call(call) => {
                let ExprCall {
                    attrs,
                    func,
                    paren_token,
                    ..
                } = call;
                let mut out = quote!(#(#attrs)* #func);
                paren_token.surround(&mut out, |tokens| tokens.extend(new_block));
                out
            }
            Wrapper::Method(call) => {
                let ExprMethodCall {
                    attrs,
                    dot_token,
                    method,
                    paren_token,
                    ..
                } = call;
                let mut out = quote!(#(#attrs)* #new_block #dot_token #method);
                paren_token.surround(&mut out, |_| {});
                out
            }
        };
        let prelude = &stmts[..self.index];
        quote! {
            #(#prelude)*
            #before
            #tail
        }
    }
}

/// `let x = x;`, `let mut __self = self;` or `let (a, b) = { let __arg1 =
/// __arg1; __arg1 };`: async-trait moving a parameter into the block.
fn is_rebinding(stmt: &Stmt) -> bool {
    let Stmt::Local(local) = stmt else {
        return false;
    };
    let Some(init) = &local.init else {
        return false;
    };
    if init.diverge.is_some() {
        return false;
    }
    match &*init.expr {
        Expr::Path(path) => path.qself.is_none() && path.path.get_ident().is_some(),
        Expr::Block(block) => match block.block.stmts.as_slice() {
            [Stmt::Local(inner), Stmt::Expr(Expr::Path(tail), None)] => {
                inner.init.as_ref().is_some_and(|init| {
                    matches!(&*init.expr, Expr::Path(moved) if moved.path.get_ident().is_some())
                }) && tail.path.get_ident().is_some()
            }
            _ => false,
        },
        _ => false,
    }
}

/// `if let Some(__ret) = None::<R> { return __ret; }`: async-trait pinning
/// the block's type to the declared one.
fn is_return_type_pin(stmt: &Stmt) -> bool {
    let Stmt::Expr(Expr::If(if_expr), None) = stmt else {
        return false;
    };
    let Expr::Let(cond) = &*if_expr.cond else {
        return false;
    };
    matches!(&*cond.expr, Expr::Path(path)
        if path.path.segments.last().is_some_and(|last| last.ident == "None"))
}

/// `Box::pin`, `std::boxed::Box::pin`, `::std::boxed::Box::pin`.
fn is_box_pin(func: &Expr) -> bool {
    let Expr::Path(path) = func else {
        return false;
    };
    let segments: Vec<_> = path.path.segments.iter().collect();
    matches!(segments.as_slice(), [.., boxed, pin] if boxed.ident == "Box" && pin.ident == "pin")
}

/// What "cannot find the async block" is reported on: the body's last
/// statement, else the return type.
pub(crate) fn missing_tail(sig: &Signature, stmts: &[Stmt]) -> TokenStream {
    match stmts.last() {
        Some(last) => last.to_token_stream(),
        None => sig.output.to_token_stream(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_of(sig: &str) -> Option<String> {
        let sig: Signature = syn::parse_str(sig).expect("a signature");
        FutureFn::of(&sig).map(|f| f.output.to_token_stream().to_string())
    }

    #[test]
    fn recognises_what_async_trait_writes() {
        let sig = "fn get<'life0, 'async_trait>(&'life0 self, id: u32) -> \
                   ::core::pin::Pin<Box<dyn ::core::future::Future<Output = Result<u32, E>> \
                   + ::core::marker::Send + 'async_trait>>";
        assert_eq!(output_of(sig).as_deref(), Some("Result < u32 , E >"));
        let sig: Signature = syn::parse_str(sig).unwrap();
        assert!(FutureFn::of(&sig).unwrap().async_trait.is_some());
    }

    #[test]
    fn recognises_hand_written_futures() {
        for sig in [
            "fn f() -> impl Future<Output = u8> + Send",
            "fn f(&self) -> BoxFuture<'_, u8>",
            "fn f() -> futures::future::LocalBoxFuture<'static, u8>",
            "fn f() -> Pin<Box<dyn std::future::Future<Output = u8> + Send + 'static>>",
        ] {
            assert_eq!(output_of(sig).as_deref(), Some("u8"), "{sig}");
        }
    }

    #[test]
    fn leaves_other_functions_alone() {
        for sig in [
            "async fn f() -> impl Future<Output = u8>",
            "fn f() -> u8",
            "fn f() -> Pin<Box<u8>>",
            "fn f() -> impl Iterator<Item = u8>",
            "fn f() -> impl Future",
        ] {
            assert_eq!(output_of(sig), None, "{sig}");
        }
    }

    #[test]
    fn finds_the_async_block_at_the_tail() {
        for body in [
            "{ Box::pin(async move { 1 }) }",
            "{ let x = 1; ::std::boxed::Box::pin(async move { x }) }",
            "{ async move { 1 } }",
            "{ async { 1 }.boxed() }",
        ] {
            let block: syn::Block = syn::parse_str(body).unwrap();
            assert!(Tail::of(&block.stmts).is_some(), "{body}");
        }
        for body in [
            "{ other() }",
            "{ Box::pin(other()) }",
            "{ Box::pin(async move { 1 }); }",
            "{}",
        ] {
            let block: syn::Block = syn::parse_str(body).unwrap();
            assert!(Tail::of(&block.stmts).is_none(), "{body}");
        }
    }
}
