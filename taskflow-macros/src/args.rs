//! The attribute's options: `#[task(retries = 3, delay = "1s", persist, ...)]`.
//!
//! Parsed with [`syn::meta::parser`]. A mistake in one option is recorded and parsing goes on,
//! so every bad option is reported at once and the task still expands with the defaults.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{Expr, ExprLit, ExprUnary, Ident, Lit, LitStr, Path, UnOp};

/// Every option the attribute accepts, in the order the "expected one of" message lists them.
const KEYS: &[&str] = &[
    "retries",
    "delay",
    "backoff",
    "max_delay",
    "jitter",
    "timeout",
    "persist",
    "requeue_on_interrupt",
    "name",
    "queue",
    "priority",
    "args",
    "crate",
];

/// What the duration error messages say is accepted.
const DURATION_FORMATS: &str = "expected a number of seconds (`1.5`) or a string of numbers with \
     units `ms`, `s`, `m`, `h` or `d`, like \"500ms\", \"1.5s\" or \"1m30s\"";

/// A wait or time limit, split for `Duration::new(secs, nanos)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wait {
    pub(crate) secs: u64,
    pub(crate) nanos: u32,
}

impl Wait {
    fn from_nanos(nanos: u128) -> Option<Self> {
        let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
        let nanos = u32::try_from(nanos % 1_000_000_000).ok()?;
        Some(Self { secs, nanos })
    }

    fn is_zero(self) -> bool {
        self.secs == 0 && self.nanos == 0
    }
}

/// The parsed options. `None` means "not given": the runtime default applies.
#[derive(Default)]
pub(crate) struct TaskArgs {
    pub(crate) retries: Option<u32>,
    pub(crate) delay: Option<Wait>,
    pub(crate) backoff: Option<f64>,
    pub(crate) max_delay: Option<Wait>,
    pub(crate) jitter: Option<bool>,
    pub(crate) timeout: Option<Wait>,
    pub(crate) persist: Option<bool>,
    pub(crate) requeue_on_interrupt: Option<bool>,
    pub(crate) name: Option<LitStr>,
    pub(crate) queue: Option<LitStr>,
    pub(crate) priority: Option<i32>,
    pub(crate) args: Option<Ident>,
    pub(crate) krate: Option<Path>,
    /// Every mistake found, combined.
    pub(crate) errors: Option<syn::Error>,
    /// The keys seen so far, to reject repeats.
    seen: Vec<String>,
}

impl TaskArgs {
    /// Parses the attribute's arguments. Never fails: mistakes are kept in `errors`.
    pub(crate) fn parse(tokens: TokenStream) -> Self {
        let mut args = Self::default();
        let parser = syn::meta::parser(|meta| args.parse_option(&meta));
        if let Err(error) = parser.parse2(tokens) {
            args.push_error(error);
        }
        args
    }

    /// The path to the runtime crate: the `crate` option or `::taskflow`.
    pub(crate) fn krate(&self) -> TokenStream {
        match &self.krate {
            Some(path) => quote::quote!(#path),
            None => quote::quote!(::taskflow),
        }
    }

    fn push_error(&mut self, error: syn::Error) {
        match &mut self.errors {
            Some(errors) => errors.combine(error),
            None => self.errors = Some(error),
        }
    }

    /// Parses one `key`, `key = value`; returns `Err` only for syntax errors that stop parsing.
    fn parse_option(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        let key = key.strip_prefix("r#").unwrap_or(&key).to_owned();
        if !KEYS.contains(&key.as_str()) {
            let shown = quote::ToTokens::to_token_stream(&meta.path)
                .to_string()
                .replace(' ', "");
            self.push_error(syn::Error::new_spanned(
                &meta.path,
                format!(
                    "unknown option `{shown}`, expected one of {}",
                    expected_keys()
                ),
            ));
            skip_value(meta)?;
            return Ok(());
        }
        if self.seen.contains(&key) {
            self.push_error(syn::Error::new_spanned(
                &meta.path,
                format!("option `{key}` is given more than once"),
            ));
            skip_value(meta)?;
            return Ok(());
        }
        self.seen.push(key.clone());

        if matches!(key.as_str(), "jitter" | "persist" | "requeue_on_interrupt") {
            let value = if meta.input.peek(syn::Token![=]) {
                let expr: Expr = meta.value()?.parse()?;
                match expect_bool(&key, &expr) {
                    Ok(value) => value,
                    Err(error) => {
                        self.push_error(error);
                        return Ok(());
                    }
                }
            } else {
                true
            };
            match key.as_str() {
                "jitter" => self.jitter = Some(value),
                "persist" => self.persist = Some(value),
                _ => self.requeue_on_interrupt = Some(value),
            }
            return Ok(());
        }

        if !meta.input.peek(syn::Token![=]) {
            self.push_error(syn::Error::new_spanned(
                &meta.path,
                format!("option `{key}` needs a value: `{key} = {}`", example(&key)),
            ));
            return Ok(());
        }
        let expr: Expr = meta.value()?.parse()?;
        if let Err(error) = self.set_value(&key, &expr) {
            self.push_error(error);
        }
        Ok(())
    }

    fn set_value(&mut self, key: &str, expr: &Expr) -> syn::Result<()> {
        match key {
            "retries" => {
                let value = expect_int(key, expr)?;
                let retries = u32::try_from(value).map_err(|_| {
                    syn::Error::new_spanned(
                        expr,
                        format!("`retries` must be between 0 and {}", u32::MAX),
                    )
                })?;
                self.retries = Some(retries);
            }
            "priority" => {
                let value = expect_int(key, expr)?;
                let priority = i32::try_from(value).map_err(|_| {
                    syn::Error::new_spanned(
                        expr,
                        format!("`priority` must be between {} and {}", i32::MIN, i32::MAX),
                    )
                })?;
                self.priority = Some(priority);
            }
            "backoff" => {
                let value = expect_number(key, expr)?;
                if !value.is_finite() || value < 1.0 {
                    return Err(syn::Error::new_spanned(
                        expr,
                        "`backoff` must be at least 1.0 (1.0 keeps the same delay for every retry)",
                    ));
                }
                self.backoff = Some(value);
            }
            "delay" => self.delay = Some(expect_duration(key, expr)?),
            "max_delay" => self.max_delay = Some(expect_duration(key, expr)?),
            "timeout" => {
                let timeout = expect_duration(key, expr)?;
                if timeout.is_zero() {
                    return Err(syn::Error::new_spanned(
                        expr,
                        "`timeout` must be greater than zero",
                    ));
                }
                self.timeout = Some(timeout);
            }
            "name" => self.name = Some(expect_non_empty_str(key, expr)?),
            "queue" => self.queue = Some(expect_non_empty_str(key, expr)?),
            "args" => {
                let ident = match expr {
                    Expr::Path(path) if path.qself.is_none() && path.attrs.is_empty() => {
                        path.path.get_ident().cloned()
                    }
                    _ => None,
                };
                self.args = Some(ident.ok_or_else(|| wrong_type(key, expr))?);
            }
            "crate" => {
                let path = match expr {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(lit), ..
                    }) => lit.parse::<Path>().map_err(|_| {
                        syn::Error::new_spanned(
                            lit,
                            "`crate` expects the path to the taskflow crate, like `crate = \"::taskflow\"`",
                        )
                    })?,
                    Expr::Path(path) if path.qself.is_none() => path.path.clone(),
                    _ => return Err(wrong_type(key, expr)),
                };
                self.krate = Some(path);
            }
            _ => unreachable!("every key in KEYS is handled"),
        }
        Ok(())
    }
}

/// "`retries`, `delay`, ... or `crate`".
fn expected_keys() -> String {
    let quoted: Vec<String> = KEYS.iter().map(|key| format!("`{key}`")).collect();
    let (last, rest) = quoted.split_last().expect("KEYS is not empty");
    format!("{} or {last}", rest.join(", "))
}

/// An example value for `key`, used in error messages.
fn example(key: &str) -> &'static str {
    match key {
        "retries" => "3",
        "delay" => "\"1s\"",
        "backoff" => "2.0",
        "max_delay" => "\"60s\"",
        "timeout" => "\"30s\"",
        "name" => "\"reports.render\"",
        "queue" => "\"reports\"",
        "priority" => "10",
        "args" => "SendWelcomeArgs",
        "crate" => "\"::taskflow\"",
        _ => "true",
    }
}

/// What `key` expects, for the wrong-type message.
fn expectation(key: &str) -> &'static str {
    match key {
        "retries" => "a non-negative integer",
        "priority" => "an integer",
        "backoff" => "a number",
        "delay" | "max_delay" | "timeout" => "a duration",
        "name" | "queue" => "a string",
        "args" => "the name of the generated struct",
        "crate" => "a path in a string",
        _ => "`true` or `false`",
    }
}

fn wrong_type(key: &str, expr: &Expr) -> syn::Error {
    syn::Error::new_spanned(
        expr,
        format!(
            "`{key}` expects {}, like `{key} = {}`",
            expectation(key),
            example(key)
        ),
    )
}

/// Consumes `= value` after an unknown or repeated key, so parsing can go on.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(syn::Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}

fn expect_bool(key: &str, expr: &Expr) -> syn::Result<bool> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(lit),
            ..
        }) => Ok(lit.value),
        _ => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` expects `true` or `false`, or no value at all: `{key}`"),
        )),
    }
}

/// An integer literal, possibly negated.
fn expect_int(key: &str, expr: &Expr) -> syn::Result<i64> {
    let (lit, negative) = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => (lit, false),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) => match &**inner {
            Expr::Lit(ExprLit {
                lit: Lit::Int(lit), ..
            }) => (lit, true),
            _ => return Err(wrong_type(key, expr)),
        },
        _ => return Err(wrong_type(key, expr)),
    };
    let value: i64 = lit
        .base10_parse()
        .map_err(|_| syn::Error::new_spanned(expr, format!("`{key}` is out of range")))?;
    Ok(if negative { -value } else { value })
}

/// A float or integer literal.
fn expect_number(key: &str, expr: &Expr) -> syn::Result<f64> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Float(lit),
            ..
        }) => lit.base10_parse(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => lit.base10_parse(),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_),
            expr: inner,
            ..
        }) if matches!(&**inner, Expr::Lit(_)) => Ok(-expect_number(key, inner)?),
        _ => Err(wrong_type(key, expr)),
    }
}

/// A duration: a string like `"1m30s"`, or a number of seconds.
fn expect_duration(key: &str, expr: &Expr) -> syn::Result<Wait> {
    let invalid = |shown: &str| {
        syn::Error::new_spanned(
            expr,
            format!("invalid duration {shown} for `{key}`: {DURATION_FORMATS}"),
        )
    };
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => parse_duration(&lit.value()).ok_or_else(|| invalid(&format!("{:?}", lit.value()))),
        Expr::Lit(ExprLit {
            lit: Lit::Int(lit), ..
        }) => parse_seconds(lit.base10_digits()).ok_or_else(|| invalid(lit.base10_digits())),
        Expr::Lit(ExprLit {
            lit: Lit::Float(lit),
            ..
        }) => parse_seconds(lit.base10_digits()).ok_or_else(|| invalid(lit.base10_digits())),
        Expr::Unary(ExprUnary {
            op: UnOp::Neg(_), ..
        }) => Err(syn::Error::new_spanned(
            expr,
            format!("`{key}` cannot be negative"),
        )),
        _ => Err(wrong_type(key, expr)),
    }
}

/// A number of seconds as written in a literal: `2`, `1.5`, `2e-3`.
fn parse_seconds(digits: &str) -> Option<Wait> {
    decimal_nanos(digits, 1_000_000_000)
        .or_else(|| {
            let secs: f64 = digits.parse().ok()?;
            let duration = std::time::Duration::try_from_secs_f64(secs).ok()?;
            Some(duration.as_nanos())
        })
        .and_then(Wait::from_nanos)
}

/// Parses `"500ms"`, `"1.5s"`, `"1m30s"`, `"2h"`, `"1d 12h"`.
pub(crate) fn parse_duration(text: &str) -> Option<Wait> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "d" => 86_400 * 1_000_000_000,
            _ => return None,
        };
        total = total.checked_add(decimal_nanos(number, unit_nanos)?)?;
        rest = after.trim_start();
    }
    Wait::from_nanos(total)
}

/// `number * unit_nanos` for a plain decimal `number` (`"12"`, `"1.5"`), truncated to whole
/// nanoseconds.
fn decimal_nanos(number: &str, unit_nanos: u128) -> Option<u128> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let all_digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !all_digits(whole) || !all_digits(fraction) || fraction.len() > 18 {
        return None;
    }
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos = whole.checked_mul(unit_nanos)?;
    if !fraction.is_empty() {
        let scale = 10u128.pow(u32::try_from(fraction.len()).ok()?);
        let fraction: u128 = fraction.parse().ok()?;
        nanos = nanos.checked_add(fraction.checked_mul(unit_nanos)? / scale)?;
    }
    Some(nanos)
}

/// A non-empty string literal.
fn expect_non_empty_str(key: &str, expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(lit), ..
        }) => {
            if lit.value().trim().is_empty() {
                Err(syn::Error::new_spanned(
                    lit,
                    format!("`{key}` must not be empty"),
                ))
            } else {
                Ok(lit.clone())
            }
        }
        _ => Err(wrong_type(key, expr)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> Option<u128> {
        parse_duration(text).map(|w| u128::from(w.secs) * 1_000_000_000 + u128::from(w.nanos))
    }

    #[test]
    fn durations() {
        assert_eq!(nanos("500ms"), Some(500_000_000));
        assert_eq!(nanos("1.5s"), Some(1_500_000_000));
        assert_eq!(nanos("1m30s"), Some(90_000_000_000));
        assert_eq!(nanos("1m 30s"), Some(90_000_000_000));
        assert_eq!(nanos("2h"), Some(7_200_000_000_000));
        assert_eq!(nanos("1d"), Some(86_400_000_000_000));
        assert_eq!(nanos("0s"), Some(0));
        assert_eq!(nanos(".5s"), Some(500_000_000));
        for bad in ["", "5", "s", "1x", "1.2.3s", "-1s", "1 s s", "1sec"] {
            assert_eq!(nanos(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn seconds() {
        assert_eq!(
            parse_seconds("1.5"),
            Some(Wait {
                secs: 1,
                nanos: 500_000_000
            })
        );
        assert_eq!(parse_seconds("2"), Some(Wait { secs: 2, nanos: 0 }));
        assert_eq!(
            parse_seconds("2e-3"),
            Some(Wait {
                secs: 0,
                nanos: 2_000_000
            })
        );
    }

    #[test]
    fn options_accumulate_errors() {
        let args = TaskArgs::parse(quote::quote!(
            retries = "3",
            bogus,
            delay = "1x",
            persist,
            persist,
            priority = -4
        ));
        let messages: Vec<String> = args
            .errors
            .expect("errors")
            .into_iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(messages.len(), 4, "{messages:#?}");
        assert!(messages[1].contains("expected one of `retries`"));
        assert_eq!(args.persist, Some(true));
        assert_eq!(args.priority, Some(-4));
    }

    #[test]
    fn every_option() {
        let args = TaskArgs::parse(quote::quote!(
            retries = 3,
            delay = 1.5,
            backoff = 2,
            max_delay = "1m",
            jitter = false,
            timeout = "30s",
            persist,
            requeue_on_interrupt,
            name = "a.b",
            queue = "q",
            priority = 7,
            args = Args,
            crate = "::tf"
        ));
        assert!(args.errors.is_none());
        assert_eq!(args.retries, Some(3));
        assert_eq!(args.backoff, Some(2.0));
        assert_eq!(args.jitter, Some(false));
        assert_eq!(args.krate().to_string().replace(' ', ""), "::tf");
        assert_eq!(args.name.map(|n| n.value()).as_deref(), Some("a.b"));
    }
}
