//! Serde attributes on a parameter move to the struct's field, so old payloads still decode.
#![deny(warnings)]

use serde_json::json;
use taskflow::{Registry, TaskRun};

#[taskflow::task]
fn notify(
    user_id: u64,
    #[serde(default)] cc: Option<String>,
    #[serde(rename = "tpl", default = "default_template")] template: String,
) -> Result<String, String> {
    Ok(format!("{user_id} {cc:?} {template}"))
}

fn default_template() -> String {
    "welcome".to_owned()
}

fn main() {
    // The function has no serde attributes left and is called as usual.
    assert_eq!(notify(1, None, "t".to_owned()).unwrap(), "1 None t");

    // The field keeps them: a payload stored before `cc` and `template` existed decodes.
    let old: Notify = serde_json::from_value(json!({ "user_id": 5 })).unwrap();
    assert_eq!(old.cc, None);
    assert_eq!(old.template, "welcome");
    assert_eq!(
        serde_json::to_value(&old).unwrap(),
        json!({ "user_id": 5, "cc": null, "tpl": "welcome" })
    );

    let registry = Registry::collect(Vec::new()).unwrap();
    let run = registry
        .get("notify")
        .unwrap()
        .decode(&json!({ "user_id": 5 }).into())
        .unwrap();
    match run {
        TaskRun::Blocking(f) => assert_eq!(f(), Ok(json!("5 None welcome").into())),
        TaskRun::Async(_) => panic!("a sync fn runs on the blocking pool"),
    }
}
