//! Every option, in its different spellings.
#![deny(warnings)]

use std::time::Duration;

use taskflow::{Registry, Task};

#[taskflow::task(
    retries = 3,
    delay = "1s",
    backoff = 2.0,
    max_delay = "1m30s",
    jitter,
    timeout = "1.5s",
    persist,
    requeue_on_interrupt,
    name = "mail.welcome",
    queue = "mail",
    priority = 10,
    args = WelcomeMail,
    crate = "::taskflow",
)]
async fn send_welcome(user_id: u64) -> Result<(), String> {
    let _ = user_id;
    Ok(())
}

#[taskflow::task(delay = 1.5, max_delay = 60, timeout = "2h", backoff = 3, priority = -5)]
fn numbers() {}

#[taskflow::task(jitter = true, persist = false, requeue_on_interrupt = true, delay = "500ms")]
fn explicit_flags() {}

#[taskflow::task(timeout = "1d", delay = "0.25s", max_delay = "2m 30s", retries = 0)]
fn long_units() {}

fn main() {
    let o = WelcomeMail::OPTIONS;
    assert_eq!(WelcomeMail::NAME, "mail.welcome");
    assert_eq!(o.retries, 3);
    assert_eq!(o.delay, Duration::from_secs(1));
    assert_eq!(o.backoff, 2.0);
    assert_eq!(o.max_delay, Some(Duration::from_secs(90)));
    assert!(o.jitter);
    assert_eq!(o.timeout, Some(Duration::from_millis(1500)));
    assert!(o.persist);
    assert!(o.requeue_on_interrupt);
    assert_eq!(o.queue, "mail");
    assert_eq!(o.priority, 10);
    let _ = WelcomeMail { user_id: 1 };

    let o = Numbers::OPTIONS;
    assert_eq!(o.delay, Duration::from_millis(1500));
    assert_eq!(o.max_delay, Some(Duration::from_secs(60)));
    assert_eq!(o.timeout, Some(Duration::from_secs(7200)));
    assert_eq!(o.backoff, 3.0);
    assert_eq!(o.priority, -5);
    assert_eq!(o.retries, 0);
    assert!(!o.jitter && !o.persist && !o.requeue_on_interrupt);
    assert_eq!(o.queue, "default");

    let o = ExplicitFlags::OPTIONS;
    assert!(o.jitter);
    assert!(!o.persist);
    assert!(o.requeue_on_interrupt);
    assert_eq!(o.delay, Duration::from_millis(500));

    let o = LongUnits::OPTIONS;
    assert_eq!(o.timeout, Some(Duration::from_secs(86_400)));
    assert_eq!(o.delay, Duration::from_millis(250));
    assert_eq!(o.max_delay, Some(Duration::from_secs(150)));

    // The registration carries the name and the options.
    let registry = Registry::collect(Vec::new()).unwrap();
    let registration = registry.get("mail.welcome").expect("registered under its name");
    assert_eq!(*registration.options(), WelcomeMail::OPTIONS);
    assert!(registry.get("send_welcome").is_none());
}
