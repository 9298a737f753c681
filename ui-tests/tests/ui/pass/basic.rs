//! Sync and async tasks without options: the struct, its docs and visibility, the `Task` impl,
//! the registration, and the functions still callable directly.
#![deny(missing_docs, warnings)]

use serde_json::json;
use taskflow::{Registry, Task, TaskOptions, TaskRun};

/// Sends the welcome mail.
///
/// A second paragraph, copied to the struct too.
#[taskflow::task]
pub async fn send_welcome(user_id: u64, email: String) -> Result<String, std::io::Error> {
    Ok(format!("{user_id}:{email}"))
}

/// Renders a report on the blocking pool.
#[taskflow::task]
pub(crate) fn render_report(report_id: u64, mut pages: Vec<u32>) -> anyhow::Result<u32> {
    pages.push(1);
    Ok(u32::try_from(report_id).unwrap_or(0) + pages.iter().sum::<u32>())
}

/// Takes no argument and returns nothing.
#[taskflow::task]
fn ping() {}

/// Fails on purpose.
#[taskflow::task]
async fn always_fails(reason: String) -> Result<(), String> {
    Err(reason)
}

mod nested {
    /// Declared in a module; private to it.
    #[taskflow::task]
    pub(super) fn cleanup(days: u32) -> Result<u32, String> {
        Ok(days)
    }
}

/// Raw identifiers keep working: the struct is `Move`, its field `r#type`.
#[taskflow::task]
fn r#move(r#type: String) -> Result<String, String> {
    Ok(r#type)
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(future)
}

fn outcome(run: TaskRun) -> taskflow::TaskResult {
    match run {
        TaskRun::Blocking(f) => f(),
        TaskRun::Async(future) => block_on(future),
    }
}

fn main() {
    // The generated structs, fields and constants.
    let task = SendWelcome {
        user_id: 7,
        email: "ada@example.com".to_owned(),
    };
    assert_eq!(SendWelcome::NAME, "send_welcome");
    assert_eq!(SendWelcome::OPTIONS, TaskOptions::new());
    assert_eq!(RenderReport::NAME, "render_report");
    assert_eq!(Ping::NAME, "ping");
    assert_eq!(nested::Cleanup::NAME, "cleanup");
    let copy = task.clone();
    assert_eq!(format!("{copy:?}"), r#"SendWelcome { user_id: 7, email: "ada@example.com" }"#);

    // Async functions run async, sync ones on the blocking pool.
    let run = task.run();
    assert!(!run.is_blocking());
    assert_eq!(outcome(run), Ok(json!("7:ada@example.com").into()));
    let run = RenderReport { report_id: 2, pages: vec![3] }.run();
    assert!(run.is_blocking());
    assert_eq!(outcome(run), Ok(json!(6).into()));
    assert_eq!(outcome(Ping {}.run()), Ok(json!(null).into()));
    let failure = outcome(AlwaysFails { reason: "boom".to_owned() }.run()).unwrap_err();
    assert_eq!(failure.message(), "boom");

    // The functions are unchanged and directly callable.
    assert_eq!(block_on(send_welcome(1, "x".to_owned())).unwrap(), "1:x");
    assert_eq!(render_report(1, vec![]).unwrap(), 2);
    ping();
    assert_eq!(nested::cleanup(3), Ok(3));

    assert_eq!(Move::NAME, "move");
    let run = Move { r#type: "t".to_owned() }.run();
    assert_eq!(outcome(run), Ok(json!("t").into()));
    assert_eq!(r#move("u".to_owned()), Ok("u".to_owned()));

    // Every task is registered through inventory and decodes its JSON arguments.
    let registry = Registry::collect(Vec::new()).expect("no duplicate names");
    for name in ["send_welcome", "render_report", "ping", "always_fails", "cleanup"] {
        assert!(registry.get(name).is_some(), "{name} is not registered");
    }
    let registration = registry.get("send_welcome").unwrap();
    assert_eq!(registration.module_path(), module_path!());
    assert!(registration.location().0.ends_with("basic.rs"));
    assert_eq!(registration.location().1, 12);
    let run = registration
        .decode(&json!({ "user_id": 9, "email": "b@c" }).into())
        .expect("decodes");
    assert_eq!(outcome(run), Ok(json!("9:b@c").into()));
    let run = registry
        .get("render_report")
        .unwrap()
        .decode(&json!({ "report_id": 1, "pages": [1, 1] }).into())
        .unwrap();
    assert_eq!(outcome(run), Ok(json!(4).into()));
    assert!(registration.decode(&json!({ "user_id": 9 }).into()).is_err());
}
