//! Two declarations sharing a task name are a startup error naming both modules. This is a test
//! binary of its own, since the duplicate would break every other binary's registry.

mod billing {
    /// Sends an invoice.
    #[taskflow::task(name = "notify")]
    pub(crate) async fn send_invoice(invoice: u64) {
        let _ = invoice;
    }
}

mod marketing {
    /// Sends a newsletter.
    #[taskflow::task(name = "notify")]
    pub(crate) async fn send_newsletter(issue: u64) {
        let _ = issue;
    }
}

#[tokio::test]
async fn duplicate_task_names_fail_the_build_naming_both_modules() {
    let error = taskflow::TaskManager::builder()
        .build()
        .await
        .expect_err("duplicate names");
    let taskflow::Error::DuplicateTask {
        name,
        first,
        second,
    } = &error
    else {
        panic!("expected DuplicateTask, got {error}");
    };
    assert_eq!(name, "notify");
    let both = format!("{first} {second}");
    assert!(both.contains("duplicate_names::billing"), "{both}");
    assert!(both.contains("duplicate_names::marketing"), "{both}");
    assert!(
        error.to_string().contains("name = "),
        "suggests pinning names: {error}"
    );
    // The functions stay callable.
    billing::send_invoice(1).await;
    marketing::send_newsletter(1).await;
}
