//! The registry: tasks found by name, run from a JSON payload alone, registered by hand without
//! inventory, and unknown names reported with what is registered.

use serde_json::json;
use taskflow::{Error, Registration, Registry, TaskManager, TaskRun, TaskStatus};

/// Adds two numbers on the blocking pool.
#[taskflow::task(name = "registry.add", retries = 2, queue = "math")]
fn add_numbers(a: i64, b: i64) -> Result<i64, String> {
    Ok(a + b)
}

/// Greets asynchronously.
#[taskflow::task(name = "registry.greet")]
async fn greet(
    name: String,
    #[serde(default)] punctuation: Option<String>,
) -> Result<String, String> {
    Ok(format!("hello {name}{}", punctuation.unwrap_or_default()))
}

#[tokio::test]
async fn decode_and_run_from_name_and_json() {
    let registry = Registry::collect(Vec::new()).expect("no duplicates");
    let registration = registry
        .get("registry.add")
        .expect("registered through inventory");
    assert_eq!(registration.options().retries, 2);
    assert_eq!(registration.options().queue, "math");
    assert!(
        registration.module_path().ends_with("registry"),
        "{}",
        registration.module_path()
    );
    assert!(registration.location().0.ends_with("registry.rs"));
    match registration
        .decode(&json!({ "a": 2, "b": 40 }).into())
        .expect("decodes")
    {
        TaskRun::Blocking(run) => assert_eq!(run(), Ok(json!(42).into())),
        TaskRun::Async(_) => panic!("a sync fn runs on the blocking pool"),
    }
    let greet = registry.get("registry.greet").expect("registered");
    // An old payload without the defaulted field still decodes.
    match greet
        .decode(&json!({ "name": "ada" }).into())
        .expect("decodes with the serde default")
    {
        TaskRun::Async(run) => assert_eq!(run.await, Ok(json!("hello ada").into())),
        TaskRun::Blocking(_) => panic!("an async fn runs on the runtime"),
    }
    let error = registration
        .decode(&json!({ "a": "two" }).into())
        .expect_err("bad payload");
    assert!(error.to_string().contains("invalid type"), "{error}");
}

#[tokio::test]
async fn manager_runs_a_task_by_name() {
    let manager = TaskManager::builder().build().await.expect("builds");
    let id = manager
        .add_named("registry.add", json!({ "a": 1, "b": 2 }))
        .await
        .expect("enqueued");
    let record = manager.wait(id).await.expect("finishes");
    assert_eq!(
        (record.status, record.result),
        (TaskStatus::Success, Some(json!(3).into()))
    );
    assert_eq!(record.queue, "math");
    assert_eq!(record.executor, "blocking");

    let error = manager
        .add_named("registry.nope", json!({}))
        .await
        .expect_err("unknown");
    let Error::UnknownTask { name, registered } = error else {
        panic!("expected UnknownTask")
    };
    assert_eq!(name, "registry.nope");
    assert!(
        registered.contains("registry.add") && registered.contains("registry.greet"),
        "{registered}"
    );

    let error = manager
        .add_named("registry.add", json!({ "a": 1 }))
        .await
        .expect_err("missing field");
    assert!(matches!(error, Error::Arguments { .. }), "{error}");
}

#[test]
fn registration_without_inventory() {
    let registry =
        Registry::from_registrations([Registration::of::<AddNumbers>("manual", "here.rs", 1)])
            .expect("one registration");
    assert_eq!(registry.names().collect::<Vec<_>>(), ["registry.add"]);
    assert!(
        registry.get("registry.greet").is_none(),
        "only what was given"
    );
}

#[test]
fn the_same_declaration_twice_is_not_a_duplicate() {
    let one = Registration::of::<Greet>("m", "f.rs", 3);
    let registry = Registry::from_registrations([one, one]).expect("same declaration");
    assert_eq!(registry.registrations().len(), 1);
}

#[tokio::test]
async fn builder_register_adds_by_hand() {
    let manager = TaskManager::builder()
        .register::<Greet>()
        .build()
        .await
        .expect("builds");
    assert!(manager.registry().get("registry.greet").is_some());
}
