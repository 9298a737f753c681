//! trybuild cases for `#[taskflow::task]`, run by `tests/ui.rs`.
//!
//! - `tests/ui/pass/*.rs` compile and run their `main`: every option, sync and async tasks,
//!   docs and visibility, serde attributes on parameters, a renamed crate path.
//! - `tests/ui/fail/<snake_name>.rs` each make one mistake; `<snake_name>.stderr` holds the
//!   expected diagnostic. Refresh with `TRYBUILD=overwrite cargo test -p taskflow-ui-tests`
//!   and read the diff.
