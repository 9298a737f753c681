//! The `#[taskflow::task]` attribute, re-exported by the `taskflow` crate.
//!
//! Use it through `taskflow` (`#[taskflow::task]`); this crate is an implementation detail and
//! the code it generates names only `::taskflow::__private::…`.
//!
//! The attribute goes on a free function, `async` or not. The function stays unchanged and
//! directly callable; beside it the attribute generates:
//!
//! - a struct named after the function in PascalCase (`send_welcome` → `SendWelcome`), with one
//!   field per argument and the function's visibility and docs, deriving `Debug`, `Clone`,
//!   `Serialize` and `Deserialize`. `#[serde(...)]` attributes written on a parameter move to
//!   its field, so `#[serde(default)] cc: Option<String>` lets old stored payloads decode;
//! - `impl taskflow::Task` for that struct, with the task's name and its `const` options. An
//!   `async fn` runs on the async runtime, a plain `fn` on the blocking pool (`BLOCKING`);
//! - a registration submitted through `inventory`, so a stored task can be decoded and run
//!   again from its name;
//! - compile-time checks, reported on your own tokens: every argument is
//!   `Serialize + DeserializeOwned + Send + 'static`, the future of an `async fn` is `Send`, and
//!   the function returns `()` or `Result<T, E>` with `T: Serialize` and `E: Display`.
//!
//! Generic functions, `self`, reference, `impl Trait` and pattern arguments, and `const`,
//! `unsafe` or `extern` functions are rejected with one error each.
//!
//! # Options
//!
//! All options are optional. An unknown or repeated key is an error at that key.
//!
//! | option | meaning | default |
//! |---|---|---|
//! | `retries = N` | extra attempts after the first failure (`u32`) | `0` |
//! | `delay = "1s"` or `delay = 1.5` | wait before the first retry: a duration string or a number of seconds | `0` |
//! | `backoff = 2.0` | multiplier on the delay for each further retry, at least `1.0` | `1.0` |
//! | `max_delay = "60s"` | cap on one retry wait | none |
//! | `jitter` (or `jitter = true`) | randomise each wait by up to ±50% | off |
//! | `timeout = "30s"` | an attempt running longer fails with a timeout error | none |
//! | `persist` (or `persist = true`) | store the task before `add` returns, so it survives a crash | off |
//! | `requeue_on_interrupt` (or `= true`) | run again when shutdown or a crash cut a run off | off |
//! | `name = "…"` | the stable name stored in records (not empty) | the function's name |
//! | `queue = "…"` | the named queue the task runs in (not empty) | `"default"` |
//! | `priority = N` | higher runs first within its queue (`i32`, may be negative) | `0` |
//! | `args = Ident` | the name of the generated struct | PascalCase of the function |
//! | `crate = "path"` | the path to the `taskflow` crate if it is renamed | `"::taskflow"` |
//!
//! Durations are written as numbers with a unit, `ms`, `s`, `m`, `h` or `d`: `"500ms"`,
//! `"1.5s"`, `"2h"`, or compound, `"1m30s"`. A bare number (`delay = 1.5`) is seconds.
//!
//! # Examples
//!
//! ```
//! use taskflow::Task;
//!
//! /// Sends the welcome mail.
//! #[taskflow::task(retries = 3, delay = "1s", backoff = 2.0, persist, requeue_on_interrupt)]
//! pub async fn send_welcome(user_id: u64, email: String) -> Result<(), std::io::Error> {
//!     let _ = (user_id, email);
//!     Ok(())
//! }
//!
//! /// Renders a report on the blocking pool.
//! #[taskflow::task(name = "reports.render", timeout = "5m", queue = "reports", args = Render)]
//! pub fn render_report(report_id: u64, #[serde(default)] pages: Option<u32>) -> Result<u64, String> {
//!     Ok(report_id * u64::from(pages.unwrap_or(1)))
//! }
//!
//! // The generated structs carry the arguments and the options.
//! let task = SendWelcome { user_id: 7, email: "ada@example.com".into() };
//! assert_eq!(SendWelcome::NAME, "send_welcome");
//! assert_eq!(SendWelcome::OPTIONS.retries, 3);
//! assert_eq!(Render::NAME, "reports.render");
//! assert!(Render::BLOCKING && !SendWelcome::BLOCKING);
//! # let _ = task;
//!
//! // The functions stay directly callable.
//! assert_eq!(render_report(2, Some(3)).unwrap(), 6);
//! ```

mod args;
mod expand;
mod input;

use proc_macro::TokenStream;

/// Declares a function as a background task.
///
/// Generates an argument struct named after the function in PascalCase, its `taskflow::Task`
/// impl and its registration; the function itself is unchanged. See the
/// [crate documentation](crate) for the options and what is generated.
///
/// # Examples
///
/// ```
/// #[taskflow::task(retries = 3, delay = "1s")]
/// async fn send_welcome(user_id: u64) -> Result<(), String> {
///     println!("welcome, user {user_id}");
///     Ok(())
/// }
///
/// use taskflow::Task;
/// assert_eq!(SendWelcome::OPTIONS.delay, std::time::Duration::from_secs(1));
/// ```
#[proc_macro_attribute]
pub fn task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::task(
        args::TaskArgs::parse(args.into()),
        input::TaskFn::parse(item.into()),
    )
    .into()
}
