//! The options of `#[ctx(...)]`, `#[ctx::main(...)]` and `#[ctx::test(...)]`.
//!
//! Two steps: the tokens become a list of `key` or `key = value` ([`Opt`]),
//! then one loop checks each entry against the table of the macro at hand.
//! Unknown keys, repeats, missing or unwanted values and bad values all go to
//! [`Errors`], so a list with three mistakes reports three errors. There is a
//! single repeat check for every option, so guards cannot drift apart.
//!
//! Unlike the other steps, parsing hands back a value even when it fails: the
//! options that were fine (`crate = ...` above all) still shape the emitted
//! function, so one bad option does not bring errors about the others.

use proc_macro2::{Span, TokenStream};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, ExprLit, Ident, Lit, Path, Token};

use crate::errors::Errors;

/// Which attribute the options belong to: each accepts its own set.
#[derive(Clone, Copy)]
pub(crate) enum Macro {
    Ctx,
    Main,
    Test,
    Check,
}

/// One accepted option: its key and how it is given.
struct Spec {
    key: &'static str,
    kind: Kind,
}

/// A bare flag, or a value with the shape shown in error messages; each with
/// the setter that stores it.
enum Kind {
    Flag(fn(&mut Args, Ident)),
    Value(&'static str, fn(&mut Args, Ident, Expr) -> syn::Result<()>),
}

const TIMEOUT: Spec = Spec {
    key: "timeout",
    kind: Kind::Value("<Duration>", set_timeout),
};
const COOPERATIVE: Spec = Spec {
    key: "cooperative",
    kind: Kind::Flag(set_cooperative),
};
const OWNED: Spec = Spec {
    key: "owned",
    kind: Kind::Flag(set_owned),
};
const CRATE: Spec = Spec {
    key: "crate",
    kind: Kind::Value("<path>", set_crate),
};
const FLAVOR: Spec = Spec {
    key: "flavor",
    kind: Kind::Value("\"current_thread\" | \"multi_thread\"", set_flavor),
};
const WORKER_THREADS: Spec = Spec {
    key: "worker_threads",
    kind: Kind::Value("<usize>", set_worker_threads),
};

impl Macro {
    fn name(self) -> &'static str {
        match self {
            Macro::Ctx => "#[ctx]",
            Macro::Main => "#[ctx::main]",
            Macro::Test => "#[ctx::test]",
            Macro::Check => "#[ctx::check]",
        }
    }

    fn specs(self) -> &'static [Spec] {
        match self {
            Macro::Ctx => &[TIMEOUT, COOPERATIVE, OWNED, CRATE],
            Macro::Main => &[FLAVOR, WORKER_THREADS, CRATE],
            Macro::Test => &[TIMEOUT, FLAVOR, WORKER_THREADS, CRATE],
            Macro::Check => &[CRATE],
        }
    }

    /// "`timeout = <Duration>`, `cooperative` and `crate = <path>`"
    fn accepted(self) -> String {
        let shown: Vec<String> = self
            .specs()
            .iter()
            .map(|spec| match spec.kind {
                Kind::Value(shape, _) => format!("`{} = {shape}`", spec.key),
                Kind::Flag(_) => format!("`{}`", spec.key),
            })
            .collect();
        match shown.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// The runtime a `#[ctx::main]` or `#[ctx::test]` function runs on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
}

/// The options as validated, each with the key it came from for later spans.
#[derive(Default)]
pub(crate) struct Args {
    /// `timeout = EXPR`: the key and the expression.
    pub(crate) timeout: Option<(Ident, Expr)>,
    /// `cooperative`: the key.
    pub(crate) cooperative: Option<Ident>,
    /// `owned`: the key.
    pub(crate) owned: Option<Ident>,
    /// `crate = path`.
    pub(crate) krate: Option<Path>,
    /// `flavor = "..."`: the key and the flavor.
    pub(crate) flavor: Option<(Ident, Flavor)>,
    /// `worker_threads = N`: the key and the expression.
    pub(crate) worker_threads: Option<(Ident, Expr)>,
}

impl Args {
    /// The path generated code names the ctx crate by: `::ctx` unless
    /// `crate = ...` says otherwise.
    pub(crate) fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(path) => path.to_token_stream(),
            None => quote!(::ctx),
        }
    }
}

/// `key` or `key = value`, as written.
struct Opt {
    key: Ident,
    value: Option<(Token![=], Expr)>,
}

impl Opt {
    fn parse(input: ParseStream, mac: Macro) -> syn::Result<Opt> {
        if !input.peek(Ident::peek_any) {
            return Err(input.error(format!(
                "expected an option: `{}` takes {}",
                mac.name(),
                mac.accepted()
            )));
        }
        // `crate` is a keyword; `parse_any` accepts it as an identifier.
        let key = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            Some((input.parse()?, input.parse()?))
        } else {
            None
        };
        Ok(Opt { key, value })
    }
}

impl ToTokens for Opt {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.key.to_tokens(tokens);
        if let Some((eq, value)) = &self.value {
            eq.to_tokens(tokens);
            value.to_tokens(tokens);
        }
    }
}

/// Parses and validates the options of `mac`: the options that were fine,
/// so expansion can go on and produce the function, and `Err` with every
/// problem if there was one.
pub(crate) fn parse(mac: Macro, tokens: TokenStream) -> (Args, syn::Result<()>) {
    let mut args = Args::default();
    let mut errors = Errors::default();
    let parser = |input: ParseStream| {
        let mut opts = Vec::new();
        while !input.is_empty() {
            opts.push(Opt::parse(input, mac)?);
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(opts)
    };
    let opts = match parser.parse2(tokens) {
        Ok(opts) => opts,
        Err(error) => return (args, Err(error)),
    };

    let mut seen: Vec<String> = Vec::new();
    for opt in opts {
        let key = opt.key.unraw().to_string();
        let Some(spec) = mac.specs().iter().find(|spec| spec.key == key) else {
            errors.push(syn::Error::new(
                opt.key.span(),
                format!(
                    "unknown option `{key}`: `{}` takes {}",
                    mac.name(),
                    mac.accepted()
                ),
            ));
            continue;
        };
        if seen.contains(&key) {
            errors.push(syn::Error::new_spanned(
                &opt,
                format!("`{key}` is given twice; keep one"),
            ));
            continue;
        }
        seen.push(key);

        match (&spec.kind, opt.value) {
            (Kind::Value(_, set), Some((_, value))) => errors.add(set(&mut args, opt.key, value)),
            (Kind::Flag(set), None) => set(&mut args, opt.key),
            (Kind::Value(shape, _), None) => errors.push(syn::Error::new(
                opt.key.span(),
                format!("`{}` needs a value: `{} = {shape}`", spec.key, spec.key),
            )),
            (Kind::Flag(_), Some((eq, value))) => errors.push(syn::Error::new_spanned(
                quote!(#eq #value),
                format!("`{}` takes no value: write `{}`", spec.key, spec.key),
            )),
        }
    }

    if let (Some((_, Flavor::CurrentThread)), Some((key, _))) = (&args.flavor, &args.worker_threads)
    {
        errors.push(syn::Error::new(
            key.span(),
            "`worker_threads` only applies to `flavor = \"multi_thread\"`; remove it or change the flavor",
        ));
    }
    (args, errors.finish())
}

fn set_timeout(args: &mut Args, key: Ident, expr: Expr) -> syn::Result<()> {
    // The type is checked by rustc, through `__private::timeout`, so a wrong
    // type is reported on the expression with a message about `Duration`.
    args.timeout = Some((key, expr));
    Ok(())
}

fn set_cooperative(args: &mut Args, key: Ident) {
    args.cooperative = Some(key);
}

fn set_owned(args: &mut Args, key: Ident) {
    args.owned = Some(key);
}

fn set_crate(args: &mut Args, _: Ident, expr: Expr) -> syn::Result<()> {
    let path = crate_path(&expr).ok_or_else(|| {
        syn::Error::new_spanned(
            &expr,
            "`crate` takes the path the ctx crate is known by, e.g. `crate = my_ctx`",
        )
    })?;
    args.krate = Some(path);
    Ok(())
}

fn set_flavor(args: &mut Args, key: Ident, expr: Expr) -> syn::Result<()> {
    let flavor = flavor(&expr).ok_or_else(|| {
        syn::Error::new_spanned(
            &expr,
            "unknown flavor: write `flavor = \"current_thread\"` or `flavor = \"multi_thread\"`",
        )
    })?;
    args.flavor = Some((key, flavor));
    Ok(())
}

fn set_worker_threads(args: &mut Args, key: Ident, expr: Expr) -> syn::Result<()> {
    if let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = &expr
    {
        if int.base10_parse::<usize>().ok() == Some(0) {
            return Err(syn::Error::new_spanned(
                &expr,
                "`worker_threads` must be at least 1",
            ));
        }
    }
    args.worker_threads = Some((key, expr));
    Ok(())
}

/// `crate = my_ctx`, `crate = ::my_ctx` or `crate = "my_ctx"`.
fn crate_path(expr: &Expr) -> Option<Path> {
    match expr {
        Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
            Some(path.path.clone())
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            let mut path: Path = lit.parse().ok()?;
            // The string's tokens carry the literal's span, so a wrong path
            // is reported on the literal.
            set_span(&mut path, lit.span());
            Some(path)
        }
        _ => None,
    }
}

fn set_span(path: &mut Path, span: Span) {
    if let Some(colon) = &mut path.leading_colon {
        colon.spans = [span, span];
    }
    for segment in &mut path.segments {
        segment.ident.set_span(span);
    }
}

/// `"current_thread"` or `"multi_thread"`.
fn flavor(expr: &Expr) -> Option<Flavor> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => match lit.value().as_str() {
            "current_thread" => Some(Flavor::CurrentThread),
            "multi_thread" => Some(Flavor::MultiThread),
            _ => None,
        },
        _ => None,
    }
}
