//! The runtime crate under another path, with `crate = "..."`.
#![deny(warnings)]

extern crate taskflow as tf;

/// A module re-exporting what the generated code needs.
mod runtime {
    pub use tf::__private;
}

use tf::Task;

#[tf::task(crate = "::tf", retries = 2)]
async fn renamed(n: u32) -> Result<u32, String> {
    Ok(n)
}

#[tf::task(crate = "crate::runtime")]
fn through_module(n: u32) {
    let _ = n;
}

fn main() {
    assert_eq!(Renamed::NAME, "renamed");
    assert_eq!(Renamed::OPTIONS.retries, 2);
    assert_eq!(ThroughModule::NAME, "through_module");
    let registry = tf::Registry::collect(Vec::new()).unwrap();
    assert!(registry.get("renamed").is_some());
    assert!(registry.get("through_module").is_some());
    through_module(1);
    let _ = ThroughModule { n: 1 };
    let _ = Renamed { n: 1 };
}
