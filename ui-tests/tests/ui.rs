//! Compile-pass and compile-fail cases for `#[taskflow::task]`.
//!
//! Refresh the expected errors with `TRYBUILD=overwrite` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
