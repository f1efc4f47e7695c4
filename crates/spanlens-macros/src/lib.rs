//! `#[traced]`: wraps a function in a Spanlens span. Use it through `spanlens::traced`.
use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{quote, ToTokens};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{FnArg, Ident, ItemFn, LitInt, LitStr, Pat, ReturnType, Token, Type};

/// Default cap, in bytes, for captured argument and result text.
const DEFAULT_MAX_BYTES: usize = 4096;

/// Span kinds: the attribute value and the `spanlens::SpanKind` variant.
const KINDS: [(&str, &str); 11] = [
    ("pipeline", "Pipeline"),
    ("agent", "Agent"),
    ("llm", "Llm"),
    ("embedding", "Embedding"),
    ("retriever", "Retriever"),
    ("reranker", "Reranker"),
    ("tool", "Tool"),
    ("guardrail", "Guardrail"),
    ("handoff", "Handoff"),
    ("evaluator", "Evaluator"),
    ("span", "Span"),
];

/// Traces a function: every call runs inside a new span, a child of the current span.
///
/// Works on sync and `async` functions and methods, with generics, lifetimes, `impl Trait`
/// arguments, `where` clauses, early `return` and `?`.
///
/// ```
/// #[spanlens::traced]
/// fn parse(text: &str) -> Result<u32, std::num::ParseIntError> {
///     let n: u32 = text.trim().parse()?; // an `Err` marks the span failed
///     Ok(n * 2)
/// }
/// # assert_eq!(parse(" 21 "), Ok(42));
/// ```
///
/// # What the span records
///
/// - **Name**: the function's name, unless `name = "..."` is given.
/// - **Kind**: `span`, unless `kind = "..."` is given.
/// - **Hierarchy**: the span is current while the body runs, so spans started inside it (by
///   other `#[traced]` functions, [`Traceable`], `spanlens::span`) become its children. A sync
///   body is entered on the calling thread; an async body is wrapped in an `async move` block
///   instrumented with `FutureExt::instrument`, so the span is current on every poll. The future
///   stays `Send` whenever the body is.
/// - **End**: after the body, on every path out of it: tail expression, `return`, `?`, a panic
///   (the span is then marked failed with the message `panicked`), or, for an async function,
///   when its future completes or is dropped.
/// - **Status**: when the function returns `Result<T, E>`, `Ok` sets status `ok`, and `Err(e)`
///   sets status `error` with `e`'s `Display` text as the message (its `Debug` text when `E` is
///   only `Debug`) and `E`'s type name without module paths as the `error.type` attribute.
///   This is decided by the type, not by how the return type is spelled, so aliases such as
///   `io::Result<T>` work (a return type that is a generic parameter counts as not a `Result`).
///   Any other value returned sets status `ok`, never over an error the body set itself; only a
///   cancelled async function (its future dropped) leaves the status unset.
///
/// # Options
///
/// All optional, comma separated, each at most once.
///
/// | option | effect |
/// |---|---|
/// | `kind = "tool"` | the span kind: `pipeline`, `agent`, `llm`, `embedding`, `retriever`, `reranker`, `tool`, `guardrail`, `handoff`, `evaluator` or `span` |
/// | `name = "fetch weather"` | the span name (default: the function's name) |
/// | `capture_args` | records the arguments as `input.value`: a JSON object mapping each argument's name to its value — text (`&str`, `String`, …) as a string, numbers and booleans as themselves, anything else as its `Debug` text — with `input.mime_type = application/json` |
/// | `skip(api_key, client)` | arguments never captured (needs `capture_args`) |
/// | `capture_result` | records the return value's `Debug` text as `output.value`, with `output.mime_type = text/plain` |
/// | `max_bytes = 4096` | cap on captured text (default 4096 bytes) |
///
/// ```
/// use spanlens::traced;
///
/// #[derive(Debug)]
/// struct Weather { celsius: f32 }
///
/// // A tool span named "get_weather" whose input and output are recorded.
/// #[traced(kind = "tool", capture_args, capture_result)]
/// fn get_weather(city: &str) -> Weather {
///     Weather { celsius: 21.5 }
/// }
///
/// // A custom name; the key is never recorded; captured text is capped at 256 bytes.
/// #[traced(name = "search documents", kind = "retriever", capture_args, skip(api_key), max_bytes = 256)]
/// async fn search(query: String, top_k: usize, api_key: &str) -> Vec<String> {
///     vec![query; top_k]
/// }
///
/// struct Agent { model: String }
///
/// impl Agent {
///     // Methods work too; `self` is never captured.
///     #[traced(kind = "agent", capture_args)]
///     async fn run<T: std::fmt::Debug + Send>(&self, task: T) -> Result<String, std::io::Error> {
///         let docs = search(format!("{task:?}"), 3, "secret").await; // a child of this span
///         Ok(docs.join("\n"))
///     }
/// }
/// # let _ = get_weather("Lyon");
/// ```
///
/// # Capture
///
/// Capture is opt-in and costs nothing when the span is not recording (tracing disabled, no
/// tracer, or the trace not sampled): values are formatted only after `is_recording()` says yes.
///
/// - Arguments are captured in declaration order and share one `max_bytes` budget, so the
///   captured texts together never exceed it; a text is cut on a char boundary and the span
///   gets `spanlens.input.truncated = true` (`spanlens.output.truncated` for the result).
///   Formatting stops as soon as the budget is spent, so a huge argument is not formatted in
///   full (this relies on the `Debug` impl propagating `fmt::Error`, as the standard library's
///   and derived impls do).
/// - A value whose type is not `Debug` is recorded as `"<not Debug>"` rather than being a
///   compile error, so generic and `impl Trait` arguments without a `Debug` bound compile; add
///   the bound to see their text.
/// - Only arguments bound to a plain name are captured; destructuring patterns such as
///   `(a, b): (u32, u32)` are not.
///
/// # Errors at compile time
///
/// An unknown option, an unknown kind, a repeated option, `skip` naming no argument, `skip`
/// without `capture_args`, `max_bytes = 0`, a `const fn` and a function without a body are
/// rejected with a message pointing at the culprit.
///
/// ```compile_fail
/// #[spanlens::traced(kind = "tools")] // error: unknown span kind `tools`
/// fn f() {}
/// ```
///
/// ```compile_fail
/// #[spanlens::traced(capture_arg)] // error: unknown option `capture_arg`
/// fn f() {}
/// ```
///
/// # Limits
///
/// - The generated code refers to the SDK as `::spanlens`; the crate cannot be renamed.
/// - A sync function's body runs in a closure and an async function's body in an `async move`
///   block, so that `return` and `?` leave the body, not the function, and the result can be
///   seen. The declared return type is named for that closure or block, so `?` converts errors
///   as usual; a return type written with `impl Trait` cannot be named, so a `?` in such a body
///   may need a type annotation.
/// - A non-`async` function that returns a future is traced while it builds the future, not
///   while the future runs; make it `async fn` or instrument the future yourself.
///
/// [`Traceable`]: https://docs.rs/spanlens/latest/spanlens/trait.Traceable.html
#[proc_macro_attribute]
pub fn traced(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = TokenStream2::from(item);
    match traced_tokens(attr.into(), item.clone()) {
        Ok(out) => out.into(),
        Err(e) => {
            // The error, then the item unchanged, so that one mistake does not cascade.
            let mut out = e.to_compile_error();
            out.extend(item);
            out.into()
        }
    }
}

fn traced_tokens(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let mut options = Options::default();
    let parser = syn::meta::parser(|meta| options.parse(meta));
    parser.parse2(attr)?;
    let func: ItemFn = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            format!("#[traced] applies to a function with a body: {e}"),
        )
    })?;
    expand(options, func)
}

#[derive(Default)]
struct Options {
    kind: Option<(&'static str, Span)>,
    name: Option<LitStr>,
    capture_args: bool,
    skip: Option<Vec<Ident>>,
    capture_result: bool,
    max_bytes: Option<usize>,
}

/// `skip(...)`'s contents: names, `self` included.
struct NameList(Punctuated<Ident, Token![,]>);

impl Parse for NameList {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        Punctuated::parse_terminated_with(input, Ident::parse_any).map(NameList)
    }
}

impl Options {
    fn parse(&mut self, meta: syn::meta::ParseNestedMeta) -> syn::Result<()> {
        let key = meta.path.to_token_stream().to_string().replace(' ', "");
        let duplicate = || meta.error(format!("duplicate option `{key}`"));
        match key.as_str() {
            "kind" => {
                if self.kind.is_some() {
                    return Err(duplicate());
                }
                let lit: LitStr = meta.value()?.parse()?;
                let value = lit.value();
                let variant = KINDS
                    .iter()
                    .find(|(k, _)| *k == value)
                    .map(|(_, v)| *v)
                    .ok_or_else(|| {
                        let all: Vec<&str> = KINDS.iter().map(|(k, _)| *k).collect();
                        syn::Error::new(
                            lit.span(),
                            format!(
                                "unknown span kind `{value}`; expected one of: {}",
                                all.join(", ")
                            ),
                        )
                    })?;
                self.kind = Some((variant, lit.span()));
            }
            "name" => {
                if self.name.is_some() {
                    return Err(duplicate());
                }
                self.name = Some(meta.value()?.parse()?);
            }
            "capture_args" => {
                if self.capture_args {
                    return Err(duplicate());
                }
                self.capture_args = true;
            }
            "capture_result" => {
                if self.capture_result {
                    return Err(duplicate());
                }
                self.capture_result = true;
            }
            "skip" => {
                if self.skip.is_some() {
                    return Err(duplicate());
                }
                let content;
                syn::parenthesized!(content in meta.input);
                let names: NameList = content.parse()?;
                self.skip = Some(names.0.into_iter().collect());
            }
            "max_bytes" => {
                if self.max_bytes.is_some() {
                    return Err(duplicate());
                }
                let lit: LitInt = meta.value()?.parse()?;
                let n: usize = lit.base10_parse()?;
                if n == 0 {
                    return Err(syn::Error::new(
                        lit.span(),
                        "`max_bytes` must be at least 1",
                    ));
                }
                self.max_bytes = Some(n);
            }
            _ => {
                return Err(meta.error(format!(
                    "unknown option `{key}`; expected `kind`, `name`, `capture_args`, \
                     `skip(...)`, `capture_result` or `max_bytes`"
                )))
            }
        }
        Ok(())
    }
}

/// True when `tokens` contain the `impl` keyword (an `impl Trait` type cannot be written in a
/// `let` binding).
fn mentions_impl(tokens: TokenStream2) -> bool {
    tokens.into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "impl",
        TokenTree::Group(g) => mentions_impl(g.stream()),
        _ => false,
    })
}

fn expand(options: Options, func: ItemFn) -> syn::Result<TokenStream2> {
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = func;
    if let Some(c) = &sig.constness {
        return Err(syn::Error::new(
            c.span,
            "#[traced] cannot trace a `const fn`",
        ));
    }

    // Arguments that can be captured: those bound to a plain name.
    let named: Vec<&Ident> = sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) => Some(&p.ident),
                _ => None,
            },
            FnArg::Receiver(_) => None,
        })
        .collect();
    let has_self = sig.inputs.iter().any(|a| matches!(a, FnArg::Receiver(_)));
    let skip = options.skip.unwrap_or_default();
    for s in &skip {
        if !options.capture_args {
            return Err(syn::Error::new(
                s.span(),
                "`skip` has no effect without `capture_args`",
            ));
        }
        let known = if s == "self" {
            has_self
        } else {
            named.iter().any(|n| n.unraw() == s.unraw())
        };
        if !known {
            return Err(syn::Error::new(
                s.span(),
                format!(
                    "`skip`: `{}` is not an argument of `{}`",
                    s.unraw(),
                    sig.ident
                ),
            ));
        }
    }

    // Our own bindings are invisible to the body (mixed-site hygiene).
    let hyg = |s: &str| Ident::new(s, Span::mixed_site());
    let span_v = hyg("__spanlens_span");
    let handle_v = hyg("__spanlens_handle");
    let scope_v = hyg("__spanlens_scope");
    let ret_v = hyg("__spanlens_ret");
    let args_v = hyg("__spanlens_args");
    let out_v = hyg("__spanlens_out");

    let name = options
        .name
        .unwrap_or_else(|| LitStr::new(&sig.ident.unraw().to_string(), sig.ident.span()));
    let kind = {
        let (variant, at) = options.kind.unwrap_or(("Span", Span::call_site()));
        let v = Ident::new(variant, at);
        quote!(::spanlens::SpanKind::#v)
    };
    let max_bytes = options.max_bytes.unwrap_or(DEFAULT_MAX_BYTES);

    let start = quote! {
        let #span_v = ::spanlens::span(#name).kind(#kind).start();
    };

    let captured: Vec<&Ident> = named
        .iter()
        .copied()
        .filter(|n| !skip.iter().any(|s| s.unraw() == n.unraw()))
        .collect();
    let capture_args = if options.capture_args && !captured.is_empty() {
        let keys = captured
            .iter()
            .map(|n| LitStr::new(&n.unraw().to_string(), n.span()));
        quote! {
            {
                #[allow(unused_imports)]
                use ::spanlens::__private::{
                    CaptureDebug as _, CaptureOther as _, CaptureScalar as _, CaptureText as _,
                };
                ::spanlens::__private::record_input(&#span_v, #max_bytes, |#args_v| {
                    #(
                        (&&&&::spanlens::__private::Capture(&#captured))
                            .__spanlens_arg(#args_v, #keys);
                    )*
                });
            }
        }
    } else {
        TokenStream2::new()
    };

    // Records the outcome (and the result, if asked) of `value: &R` on `on: &Span`.
    let record = |on: TokenStream2, value: TokenStream2| {
        let capture_result = if options.capture_result {
            quote! {
                ::spanlens::__private::record_output(#on, #max_bytes, |#out_v| {
                    (&&::spanlens::__private::Capture(#value)).__spanlens_debug(#out_v)
                });
            }
        } else {
            TokenStream2::new()
        };
        quote! {
            #[allow(unused_imports)]
            use ::spanlens::__private::{
                CaptureDebug as _, CaptureOther as _, OutcomeDebug as _, OutcomeDisplay as _,
                OutcomeOther as _, OutcomeResult as _,
            };
            (&&&&::spanlens::__private::Outcome(#value)).__spanlens_outcome(#on, #max_bytes);
            #capture_result
        }
    };

    // A function declared `-> !` is treated like one returning `()`: there is no value to see.
    let ret_ty: Option<&Type> = match &sig.output {
        ReturnType::Type(_, ty) if !matches!(**ty, Type::Never(_)) => Some(ty),
        _ => None,
    };
    let returns_value = ret_ty.is_some();
    let annotation = ret_ty
        .filter(|t| !mentions_impl(t.to_token_stream()))
        .map(|t| quote!(: #t));

    let diverges = matches!(&sig.output, ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)));
    let body = match (sig.asyncness.is_some(), returns_value) {
        // `-> !` never returns: nothing to record after the body.
        (false, false) if diverges => quote! {
            #start
            #capture_args
            let #scope_v = ::spanlens::__private::enter_sync(&#span_v);
            #block
        },
        // Returned normally (an early `return` included): `ok`, unless the body set an error.
        (false, false) => quote! {
            #start
            #capture_args
            {
                let #scope_v = ::spanlens::__private::enter_sync(&#span_v);
                ::spanlens::__private::call_once(move || #block)
            };
            #span_v.set_ok();
        },
        (false, true) => {
            let record = record(quote!(&#span_v), quote!(&#ret_v));
            quote! {
                #start
                #capture_args
                #[allow(clippy::let_unit_value)]
                let #ret_v #annotation = {
                    let #scope_v = ::spanlens::__private::enter_sync(&#span_v);
                    ::spanlens::__private::call_once(move || #block)
                };
                {
                    #record
                }
                #ret_v
            }
        }
        (true, false) => quote! {
            #start
            #capture_args
            ::spanlens::__private::traced_future(#span_v, async move #block, |#handle_v, _| {
                #handle_v.set_ok()
            })
            .await
        },
        (true, true) => {
            let record = record(quote!(#handle_v), quote!(#ret_v));
            let fut = match ret_ty.filter(|t| !mentions_impl(t.to_token_stream())) {
                Some(t) => quote!(::spanlens::__private::returning::<#t, _>(async move #block)),
                None => quote!(async move #block),
            };
            quote! {
                #start
                #capture_args
                ::spanlens::__private::traced_future(#span_v, #fut, |#handle_v, #ret_v| {
                    #record
                })
                .await
            }
        }
    };

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #body
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(attr: TokenStream2, item: TokenStream2) -> String {
        match traced_tokens(attr, item) {
            Ok(out) => panic!("expected an error, got {out}"),
            Err(e) => e.to_string(),
        }
    }

    fn expand_ok(attr: TokenStream2, item: TokenStream2) -> String {
        traced_tokens(attr, item).unwrap().to_string()
    }

    #[test]
    fn options_are_validated() {
        let f = quote!(
            fn f(a: u8, key: &str) {}
        );
        assert_eq!(
            error(quote!(kind = "tools"), f.clone()),
            "unknown span kind `tools`; expected one of: pipeline, agent, llm, embedding, \
             retriever, reranker, tool, guardrail, handoff, evaluator, span"
        );
        assert!(error(quote!(capture_arg), f.clone()).starts_with("unknown option `capture_arg`"));
        assert!(error(quote!(level = "info"), f.clone()).starts_with("unknown option `level`"));
        assert_eq!(
            error(quote!(kind = "tool", kind = "llm"), f.clone()),
            "duplicate option `kind`"
        );
        assert_eq!(
            error(quote!(capture_args, skip(secret)), f.clone()),
            "`skip`: `secret` is not an argument of `f`"
        );
        assert_eq!(
            error(quote!(skip(key)), f.clone()),
            "`skip` has no effect without `capture_args`"
        );
        assert_eq!(
            error(quote!(max_bytes = 0), f.clone()),
            "`max_bytes` must be at least 1"
        );
        assert!(error(quote!(max_bytes = "big"), f.clone()).contains("expected integer literal"));
        assert!(error(quote!(name = 5), f.clone()).contains("expected string literal"));
        assert!(error(quote!(capture_args = true), f).contains("expected `,`"));
    }

    #[test]
    fn items_that_cannot_be_traced_are_rejected() {
        assert_eq!(
            error(
                quote!(),
                quote!(
                    const fn f() -> u8 {
                        1
                    }
                )
            ),
            "#[traced] cannot trace a `const fn`"
        );
        assert!(error(
            quote!(),
            quote!(
                fn f(&self);
            )
        )
        .starts_with("#[traced] applies to a function with a body"));
        assert!(error(
            quote!(),
            quote!(
                struct S;
            )
        )
        .starts_with("#[traced] applies to a function with a body"));
    }

    #[test]
    fn expansion_uses_the_options() {
        let out = expand_ok(
            quote!(
                kind = "tool",
                name = "lookup",
                capture_args,
                skip(key),
                max_bytes = 100
            ),
            quote!(
                fn f(&self, a: u8, r#type: &str, key: &str, (x, y): (u8, u8)) -> u8 {
                    a
                }
            ),
        );
        assert!(out.contains("SpanKind :: Tool"), "{out}");
        assert!(out.contains("span (\"lookup\")"), "{out}");
        assert!(
            out.contains("__spanlens_arg (__spanlens_args , \"a\""),
            "{out}"
        );
        assert!(
            out.contains("__spanlens_arg (__spanlens_args , \"type\""),
            "raw identifiers lose `r#`: {out}"
        );
        assert!(
            !out.contains("__spanlens_arg (__spanlens_args , \"key\""),
            "skipped: {out}"
        );
        assert!(
            !out.contains("__spanlens_arg (__spanlens_args , \"self\""),
            "{out}"
        );
        assert!(
            !out.contains("__spanlens_arg (__spanlens_args , \"x\""),
            "patterns are not captured: {out}"
        );
        assert!(
            out.contains("record_input (& __spanlens_span , 100usize"),
            "{out}"
        );
        assert!(
            !out.contains("record_output"),
            "result capture is opt-in: {out}"
        );

        let out = expand_ok(
            quote!(),
            quote!(
                fn g() {}
            ),
        );
        assert!(
            out.contains("span (\"g\")") && out.contains("SpanKind :: Span"),
            "{out}"
        );
        assert!(!out.contains("record_input"), "{out}");
        assert!(!out.contains("Outcome"), "no value, no outcome: {out}");

        let out = expand_ok(
            quote!(capture_result),
            quote!(
                async fn h() -> impl Sized {
                    1
                }
            ),
        );
        assert!(out.contains("traced_future"), "{out}");
        assert!(
            out.contains("record_output (__spanlens_handle , 4096usize"),
            "{out}"
        );
        assert!(
            !out.contains("returning"),
            "`impl Trait` cannot be named: {out}"
        );

        let out = expand_ok(
            quote!(),
            quote!(
                async fn a(x: &str) -> Result<&str, E> {
                    Ok(x)
                }
            ),
        );
        assert!(
            out.contains("returning :: < Result < & str , E > , _ >"),
            "{out}"
        );

        let out = expand_ok(
            quote!(),
            quote!(
                fn k() -> Result<u8, E> {
                    Ok(1)
                }
            ),
        );
        assert!(out.contains("__spanlens_ret : Result < u8 , E >"), "{out}");
        assert!(out.contains("call_once"), "{out}");
    }
}
