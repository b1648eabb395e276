//! `#[ctx]`: parse, validate, check, expand.
//!
//! Each step returns a `syn::Result`; the failures go to one [`Errors`], and
//! the function is emitted in every case but two (an item that is not a
//! function, a function that already has a `ctx`), with `ctx` injected, so a
//! mistake in the options does not also bury the body under "cannot find
//! value `ctx`" errors.
//!
//! Where the generated checks go depends on where the body runs
//! ([`Shape`]): at the call (a sync `fn`), when the future is polled (an
//! `async fn`), or in the async block a `fn` returns (`#[async_trait]`'s
//! output and hand-written futures, see `future.rs`).

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::punctuated::Punctuated;
use syn::{FnArg, Ident, Lifetime, Pat, Signature, Stmt, Token, Type};

use crate::args::{self, Args, Macro};
use crate::check;
use crate::codegen::{
    bind_and_return, bind_ctx, ctx_ident, declared_output, derive_timeout_child, error_type_span,
    is_result, local, pinned_body_as, respan, timeout_duration,
};
use crate::errors::Errors;
use crate::func::{Body, Func};
use crate::future::{missing_tail, FutureFn, Tail};
use crate::lifetimes;

pub(crate) fn ctx(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Errors::default();
    let (args, parsed) = args::parse(Macro::Ctx, attr);
    errors.add(parsed);
    let mut func = match Func::parse_item(item.clone(), "#[ctx]") {
        Ok(func) => func,
        Err(error) => {
            // Not a function: leave the item as it was.
            errors.push(error);
            return quote!(#errors #item);
        }
    };
    if let Err(error) = no_ctx_param(&func.sig) {
        // The function as written already has its `ctx`: injecting a second
        // one would only add a duplicate-parameter error.
        errors.push(error);
        return quote!(#errors #item);
    }
    // Wrapping the discards first changes no shape: the tail a returned
    // future is recognised by is an expression, never a discard.
    check::lostcancel(&mut func, &args.krate());
    let shape = Shape::of(&func);
    errors.add(validate(&func, &shape, &args));

    let gen = Gen {
        args: &args,
        krate: args.krate(),
        ctx: ctx_ident(&func.sig, func.stmts()),
        hold: if args.owned.is_some() {
            Hold::Owned
        } else {
            Hold::Borrowed
        },
    };
    let sig = gen.inject(&func.sig, shape.async_trait());
    let body = if func.sig.constness.is_none() {
        gen.body(&func, &shape)
    } else {
        // Keep the body as written: the error above says what to fix, and
        // the generated checks, not being `const`, would add more.
        None
    };
    let out = func.to_tokens_with(&sig, body);
    quote!(#errors #out)
}

/// Where the body of the function runs, which is where the entry check, the
/// race and the timeout must go.
enum Shape<'a> {
    /// `fn f(..) -> T`: at the call.
    Sync,
    /// `async fn f(..) -> T`: when the future is polled.
    Async,
    /// `fn f(..) -> impl Future<Output = T>` and the like (what
    /// `#[async_trait]` writes): in the async block the body ends with, if
    /// there is one to find.
    Future {
        future: FutureFn<'a>,
        tail: Option<Tail<'a>>,
    },
}

impl<'a> Shape<'a> {
    fn of(func: &'a Func) -> Shape<'a> {
        if func.sig.asyncness.is_some() {
            return Shape::Async;
        }
        match FutureFn::of(&func.sig) {
            Some(future) => Shape::Future {
                future,
                tail: func.stmts().and_then(Tail::of),
            },
            None => Shape::Sync,
        }
    }

    /// What the body yields (`None`: `()`): the declared type, or the
    /// `Output` of the declared future.
    fn output(&self, sig: &'a Signature) -> Option<&'a Type> {
        match self {
            Shape::Sync | Shape::Async => declared_output(sig),
            Shape::Future { future, .. } => Some(future.output),
        }
    }

    /// `'async_trait`, if async-trait wrote the function.
    fn async_trait(&self) -> Option<&'a Lifetime> {
        match self {
            Shape::Future { future, .. } => future.async_trait,
            Shape::Sync | Shape::Async => None,
        }
    }
}

/// How the function holds its context: `ctx: &Context` or, with `owned`,
/// `ctx: Context`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hold {
    Borrowed,
    Owned,
}

/// Rejects a `ctx` parameter the user already wrote.
fn no_ctx_param(sig: &Signature) -> syn::Result<()> {
    let existing = sig.inputs.iter().find_map(|input| match input {
        FnArg::Typed(typed) => match &*typed.pat {
            Pat::Ident(pat) if pat.ident == "ctx" => Some(&pat.ident),
            _ => None,
        },
        FnArg::Receiver(_) => None,
    });
    match existing {
        Some(existing) => Err(syn::Error::new(
            existing.span(),
            "this function already has a `ctx` parameter; remove it: `#[ctx]` adds \
             `ctx: &ctx::Context` itself",
        )),
        None => Ok(()),
    }
}

/// Rules about the function and the options together.
fn validate(func: &Func, shape: &Shape, args: &Args) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Some(constness) = &func.sig.constness {
        errors.push(syn::Error::new(
            constness.span,
            "a `const fn` cannot look at a context; remove `const`, or take \
             `ctx: &ctx::Context` by hand",
        ));
    }
    let stmts = match &func.body {
        Body::Semi(_) => {
            for key in [
                args.timeout.as_ref().map(|(key, _)| key),
                args.cooperative.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                errors.push(syn::Error::new(
                    key.span(),
                    format!(
                        "`{key}` changes the body, and this declaration has none; \
                         put it on the implementations"
                    ),
                ));
            }
            return errors.finish();
        }
        // rustc reports the syntax error; nothing here can be judged.
        Body::Raw { .. } => return errors.finish(),
        Body::Block { stmts, .. } => stmts,
    };
    let result = shape.output(&func.sig).is_some_and(is_result);
    if let Some(key) = &args.cooperative {
        if let Shape::Sync = shape {
            errors.push(syn::Error::new(
                key.span(),
                "`cooperative` only changes `async` functions: a sync body is never \
                 interrupted; remove it",
            ));
        } else if !result {
            errors.push(syn::Error::new(
                key.span(),
                "`cooperative` only changes functions that return `Result`: others are \
                 never interrupted; remove it",
            ));
        }
    }
    if let Shape::Future { tail: None, .. } = shape {
        if result || args.timeout.is_some() {
            errors.push(syn::Error::new_spanned(
                missing_tail(&func.sig, stmts),
                "`#[ctx]` cannot find the `async` block this function returns, so it \
                 cannot stop the future when `ctx` is done; end the body with \
                 `Box::pin(async move { .. })` or `async move { .. }`, e.g. \
                 `Box::pin(async move { ctx.run(future).await? })` for a future \
                 made elsewhere",
            ));
        }
    }
    errors.finish()
}

/// What generates the new signature and body.
struct Gen<'a> {
    args: &'a Args,
    /// `::ctx`, or the path of `crate = ...`.
    krate: TokenStream,
    /// The `ctx` the user's code sees (see [`ctx_ident`]).
    ctx: Ident,
    hold: Hold,
}

impl Gen<'_> {
    /// Adds `ctx` after the receiver, if any.
    ///
    /// ```text
    /// fn get(&self, id: u64)  →  fn get(&self, ctx: &::ctx::Context, id: u64)
    /// ```
    ///
    /// With `owned`, `ctx: ::ctx::Context`. In what async-trait wrote, the
    /// future borrows every reference parameter for `'async_trait`, and so
    /// must it borrow `ctx`; the lifetime is named as async-trait names the
    /// others, the same in a trait's declaration and in each impl:
    ///
    /// ```text
    /// fn get<'life0, 'async_trait>(&'life0 self, id: u64) -> Pin<..> where 'life0: 'async_trait
    ///     →  fn get<'life0, 'async_trait, '__ctx_life>(&'life0 self, ctx: &'__ctx_life ::ctx::Context, id: u64) -> Pin<..>
    ///        where 'life0: 'async_trait, '__ctx_life: 'async_trait
    /// ```
    fn inject(&self, sig: &Signature, async_trait: Option<&Lifetime>) -> Signature {
        let Gen { krate, ctx, .. } = self;
        let mut sig = sig.clone();
        let ty = match (self.hold, async_trait) {
            (Hold::Owned, _) => quote!(#krate::Context),
            (Hold::Borrowed, Some(async_trait)) => {
                let life = Lifetime::new("'__ctx_life", Span::call_site());
                sig.generics.params.push(syn::parse_quote!(#life));
                sig.generics
                    .make_where_clause()
                    .predicates
                    .push(syn::parse_quote!(#life: #async_trait));
                quote!(&#life #krate::Context)
            }
            (Hold::Borrowed, None) => {
                lifetimes::name_elided(&mut sig);
                quote!(&#krate::Context)
            }
        };
        let param: FnArg = syn::parse_quote! {
            // A trait impl may have no use for it; it is still part of the
            // signature.
            #[allow(unused_variables)]
            #ctx: #ty
        };
        let mut inputs: Punctuated<FnArg, Token![,]> = Punctuated::new();
        let mut rest = sig.inputs.clone().into_pairs().peekable();
        if let Some(pair) = rest.next_if(|pair| matches!(pair.value(), FnArg::Receiver(_))) {
            inputs.push(pair.into_value());
        }
        inputs.push(param);
        for pair in rest {
            let (arg, comma) = pair.into_tuple();
            inputs.push_punct(comma.unwrap_or_default());
            inputs.push_value(arg);
        }
        Signature { inputs, ..sig }
    }

    /// The new body of a function with a body, or `None` to keep it as
    /// written.
    ///
    /// A sync or `async fn` gets [`Gen::run`] around its statements. A `fn`
    /// returning a future keeps the statements before its async block, which
    /// run at the call as written, and gets [`Gen::run`] inside the block:
    ///
    /// ```text
    /// fn get(..) -> Pin<Box<dyn Future<Output = R> ..>> {
    ///     PRELUDE
    ///     let __ctx_owned = ::ctx::Context::clone(ctx);   // not from async-trait, not `owned`
    ///     Box::pin(async move {
    ///         let ctx = &__ctx_owned;                     // as above
    ///         let x = x;                                  // async-trait's moves, if any
    ///         RUN(R, async move { REST OF THE BLOCK })
    ///     })
    /// }
    /// ```
    ///
    /// What async-trait wrote borrows `ctx` for `'async_trait`, so it needs
    /// no handle of its own; a hand-written future does, since its type
    /// (`impl Future` in edition 2021, `BoxFuture<'static, _>`) may not
    /// allow the borrow.
    fn body(&self, func: &Func, shape: &Shape) -> Option<TokenStream> {
        let stmts = func.stmts()?;
        let output = shape.output(&func.sig);
        let result = output.is_some_and(is_result);
        let timeout = self.args.timeout.is_some();
        let cooperative = self.args.cooperative.is_some();
        match shape {
            Shape::Sync | Shape::Async if !result && !timeout => None,
            Shape::Sync => Some(self.run(stmts, output, result, false, true)),
            Shape::Async => {
                let race = result && !cooperative;
                Some(self.run(stmts, output, result, race, true))
            }
            Shape::Future { tail: None, .. } => None,
            Shape::Future {
                future,
                tail: Some(tail),
            } => {
                let by_handle = future.async_trait.is_none() && self.hold == Hold::Borrowed;
                if !result && !timeout && !by_handle {
                    return None;
                }
                let Gen { krate, ctx, .. } = self;
                let (moves, stmts_in) = match future.async_trait {
                    Some(_) => tail.split_rebindings(),
                    None => (Vec::new(), tail.stmts().to_vec()),
                };
                let (handle, bind) = if by_handle {
                    let owned = local("__ctx_owned");
                    (
                        Some(quote! {
                            let #owned: #krate::Context = #krate::Context::clone(#ctx);
                        }),
                        Some(bind_ctx(krate, &owned, ctx)),
                    )
                } else {
                    (None, None)
                };
                let race = result && !cooperative;
                let run = self.run(&stmts_in, output, result, race, tail.is_move());
                Some(tail.rewrite(stmts, quote!(#handle), quote!(#bind #(#moves)* #run)))
            }
        }
    }

    /// The statements that run `stmts`, whose value has type `output`, under
    /// the options:
    ///
    /// ```text
    /// let __ctx_timeout = D;                    // with `timeout`
    /// let (__ctx_child, __ctx_guard) = ctx.with_timeout(__ctx_timeout);
    /// let ctx = &__ctx_child;
    /// let __ctx_out = match race(ctx, async move { let __ctx_out: R = { BODY }; return __ctx_out; }).await {
    ///     Ok(out) => out,
    ///     Err(e) => Err(E::from(e)),
    /// };
    /// __ctx_out
    /// ```
    ///
    /// Without `race` (a sync body, `cooperative`), the race is replaced by
    /// an entry check (`if let Some(e) = ctx.err() { return Err(E::from(e)) }`
    /// before the timeout) and the body runs as is; without `result` there
    /// is neither. With `owned`, `ctx` is a `Context`: the child is moved
    /// into it, and the race holds a clone, so that the body may move `ctx`.
    fn run(
        &self,
        stmts: &[Stmt],
        output: Option<&Type>,
        result: bool,
        race: bool,
        capture_move: bool,
    ) -> TokenStream {
        let Gen { krate, ctx, .. } = self;
        let ctx_ref = match self.hold {
            Hold::Borrowed => quote!(#ctx),
            Hold::Owned => quote!(&#ctx),
        };
        let out = local("__ctx_out");
        let err = local("__ctx_err");
        // The conversion to the user's error type is spanned on that type, so
        // a missing `From<ctx::Error>` is reported on it.
        let error_span = error_type_span(output);
        let convert = {
            let krate = respan(krate, error_span);
            quote_spanned! {error_span=>
                ::core::result::Result::Err(#krate::__private::FromCtxError::from_ctx_error(#err))
            }
        };

        let entry_check = (result && !race).then(|| {
            quote! {
                if let ::core::option::Option::Some(#err) = #krate::Context::err(#ctx_ref) {
                    return #convert;
                }
            }
        });
        let child = self.args.timeout.as_ref().map(|(_, expr)| {
            let child = local("__ctx_child");
            let duration = timeout_duration(krate, expr);
            let derive = derive_timeout_child(krate, ctx_ref.clone(), &child);
            let bind = match self.hold {
                Hold::Borrowed => bind_ctx(krate, &child, ctx),
                Hold::Owned => quote! {
                    #[allow(unused_variables)]
                    let #ctx: #krate::Context = #child;
                },
            };
            quote! {
                #duration
                #derive
                #bind
            }
        });
        let run = if race {
            let pinned = pinned_body_as(output, stmts);
            let capture = capture_move.then(|| quote!(move));
            let (handle, racer) = match self.hold {
                Hold::Borrowed => (None, quote!(#ctx)),
                Hold::Owned => {
                    let racer = local("__ctx_racer");
                    (
                        Some(quote! {
                            let #racer: #krate::Context = #krate::Context::clone(&#ctx);
                        }),
                        quote!(&#racer),
                    )
                }
            };
            quote! {
                #handle
                let #out = match #krate::__private::race(#racer, async #capture { #pinned }).await {
                    ::core::result::Result::Ok(#out) => #out,
                    ::core::result::Result::Err(#err) => #convert,
                };
                #out
            }
        } else if child.is_some() {
            bind_and_return(TokenStream::new(), stmts)
        } else {
            quote!(#(#stmts)*)
        };
        quote! {
            #entry_check
            #child
            #run
        }
    }
}
#[cfg(test)]
mod tests {
    use quote::ToTokens;

    /// What async-trait 0.1 makes of
    /// `async fn get(&self, id: u32) -> Result<u32, Error> { ctx.check()?; Ok(id) }`.
    const ASYNC_TRAIT_OUTPUT: &str = r#"
        fn get<'life0, 'async_trait>(&'life0 self, id: u32)
            -> ::core::pin::Pin<Box<dyn ::core::future::Future<Output = Result<u32, Error>>
                + ::core::marker::Send + 'async_trait>>
        where
            'life0: 'async_trait,
            Self: 'async_trait,
        {
            Box::pin(async move {
                if let ::core::option::Option::Some(__ret) =
                    ::core::option::Option::None::<Result<u32, Error>>
                {
                    #[allow(unreachable_code)]
                    return __ret;
                }
                let __self = self;
                let id = id;
                let __ret: Result<u32, Error> = { ctx.check()?; Ok(id) };
                #[allow(unreachable_code)]
                __ret
            })
        }"#;

    fn expand(args: &str, item: &str) -> syn::ItemFn {
        let out = super::ctx(args.parse().unwrap(), item.parse().unwrap());
        syn::parse2(out).expect("the expansion is one function")
    }

    fn flat(tokens: impl ToTokens) -> String {
        tokens.to_token_stream().to_string()
    }

    #[test]
    fn ctx_is_borrowed_for_the_async_trait_lifetime() {
        let out = expand("", ASYNC_TRAIT_OUTPUT);
        let inputs = flat(&out.sig.inputs);
        assert!(
            inputs.contains("ctx : & '__ctx_life :: ctx :: Context"),
            "{inputs}"
        );
        let where_clause = flat(&out.sig.generics.where_clause);
        assert!(
            where_clause.contains("'__ctx_life : 'async_trait"),
            "{where_clause}"
        );
    }

    #[test]
    fn the_checks_go_inside_the_pinned_block_which_stays_recognisable() {
        let out = expand("timeout = D", ASYNC_TRAIT_OUTPUT);
        let [syn::Stmt::Expr(syn::Expr::Call(call), None)] = out.block.stmts.as_slice() else {
            panic!("the body is no longer `Box::pin(..)`: {}", flat(&out.block));
        };
        assert_eq!(flat(&call.func), "Box :: pin");
        let block = flat(&call.args);
        // async-trait's moves first, so the timeout may read the parameters;
        // then the child context and the race around the rest.
        let moves = block.find("let id = id").expect("the moves stay");
        let timeout = block.find("__private :: timeout (D)").expect("a timeout");
        let race = block.find("__private :: race (ctx").expect("a race");
        let pin = block
            .find("None :: < Result")
            .expect("async-trait's type pin");
        assert!(moves < timeout && timeout < race && race < pin, "{block}");
    }

    #[test]
    fn owned_needs_no_lifetime() {
        let out = expand("owned", ASYNC_TRAIT_OUTPUT);
        assert!(flat(&out.sig.inputs).contains("ctx : :: ctx :: Context"));
        assert!(!flat(&out.sig.generics).contains("__ctx_life"));
    }
}
