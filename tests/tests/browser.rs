//! The dashboard in a real browser: starts the `basic` example on a free port and drives headless
//! Chromium through chromedriver. Skips (with a printed reason) when Chromium or chromedriver is
//! missing, unless `TASKFLOW_REQUIRE_SERVICES=1`.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::browser::{Driver, Process, Session, binaries, free_port, wait_for};
use support::request;

const XSS: &str = "<img src=x onerror=alert(1)>";

/// `target/<profile>` of this test binary (`target/<profile>/deps/browser-…`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_owned()
}

/// Builds the `basic` example (a no-op when it is fresh) and returns its path.
fn build_example() -> PathBuf {
    let profile = profile_dir();
    let target = profile.parent().expect("the target directory");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--quiet",
            "-p",
            "taskflow-examples",
            "--example",
            "basic",
        ])
        .arg("--target-dir")
        .arg(target);
    let name = profile
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug");
    if name != "debug" {
        command.args(["--profile", name]);
    }
    let status = command.status().expect("cargo runs");
    assert!(status.success(), "building the basic example failed");
    profile.join("examples").join("basic")
}

/// Starts the example on a free port with `env`, and waits until it answers.
async fn start_example(binary: &Path, env: &[(&str, &str)]) -> (Process, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    // A database of its own per run, so runs never see each other's tasks.
    let db = std::env::temp_dir().join(format!(
        "taskflow-browser-{}-{}.db",
        std::process::id(),
        addr.port()
    ));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let child = Command::new(binary)
        .env("TASKFLOW_ADDR", addr.to_string())
        .env("TASKFLOW_DB", &db)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the example starts");
    let process = Process(child);
    wait_for(
        "the example to listen",
        Duration::from_secs(20),
        || async move { tokio::net::TcpStream::connect(addr).await.ok().map(drop) },
    )
    .await;
    (process, addr)
}

async fn post(addr: SocketAddr, path: &str, body: Value) -> Value {
    let response = request(addr, "POST", path, Some(&body.to_string())).await;
    assert_eq!(response.status, 200, "POST {path}: {}", response.body);
    response.json()
}

fn shots_dir() -> PathBuf {
    profile_dir()
        .parent()
        .expect("the target directory")
        .to_owned()
}

/// Waits until the row of `id` shows `status`.
async fn row_status(session: &Session, id: &str, status: &str) {
    session
        .wait_js(
            &format!("task {id} to show {status}"),
            "const r = document.querySelector(`#task-rows tr[data-id=\"${arguments[0]}\"]`);
             return r && r.dataset.status === arguments[1];",
            json!([id, status]),
        )
        .await;
}

async fn no_console_errors(session: &Session) {
    let errors: Vec<_> = session
        .console()
        .await
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_in_headless_chromium() {
    let Some((chromium, chromedriver)) = binaries() else {
        return;
    };
    // The scenario is a large future: keep it on the heap.
    Box::pin(scenario(chromium, chromedriver)).await;
}

async fn scenario(chromium: PathBuf, chromedriver: PathBuf) {
    let example = build_example();
    let profiles = std::env::temp_dir().join(format!("taskflow-browser-{}", std::process::id()));
    let driver = Driver::start(&chromium, &chromedriver, &profiles).await;

    // Without auth: live updates, filters, escaping, retry.
    {
        let (_app, addr) = start_example(&example, &[]).await;
        let session = driver.session("open").await;
        let base = format!("http://{addr}/tasks");
        session.goto(&format!("{base}/dashboard")).await;
        session
            .wait_js(
                "the stream to connect",
                "return document.getElementById('live').classList.contains('on');",
                json!([]),
            )
            .await;

        // A task enqueued after load appears live and turns success.
        let signup = post(
            addr,
            "/signup",
            json!({ "id": 4242, "email": "ada@example.com" }),
        )
        .await;
        let signup_id = signup["task_id"].as_str().expect("task id").to_owned();
        row_status(&session, &signup_id, "success").await;

        // Hostile text in argument, log line and error is shown as text and runs nothing.
        let echo = post(addr, "/echo", json!({ "text": XSS, "fail": true })).await;
        let echo_id = echo["task_id"].as_str().expect("task id").to_owned();
        row_status(&session, &echo_id, "failed").await;
        session
            .click(&format!("#task-rows tr[data-id=\"{echo_id}\"]"))
            .await;
        let shown = session
            .wait_js(
                "the detail panel to show the failed echo",
                "const e = document.getElementById('detail-error');
                 const a = document.getElementById('detail-args');
                 const l = document.getElementById('detail-logs');
                 return e && a && l && [e.textContent, a.textContent, l.textContent];",
                json!([]),
            )
            .await;
        for (part, text) in ["error", "args", "logs"]
            .iter()
            .zip(shown.as_array().into_iter().flatten())
        {
            assert!(
                text.as_str().is_some_and(|t| t.contains(XSS)),
                "the {part} shows the text verbatim: {text}"
            );
        }
        let images = session
            .js("return document.querySelectorAll('img').length;", json!([]))
            .await;
        assert_eq!(images, json!(0), "no element was made from the text");
        assert!(!session.alert_open().await, "no script ran");

        // The retry button of the failed task creates a new run.
        let why = session
            .js(
                "const b = document.getElementById('cancel-btn'); return [b.disabled, b.title];",
                json!([]),
            )
            .await;
        assert_eq!(why[0], true, "cancel is disabled on a finished task");
        assert!(
            why[1]
                .as_str()
                .is_some_and(|t| t.contains("Already finished")),
            "{why}"
        );
        session.click("#retry-btn").await;
        let rerun = wait_for(
            "a retry of the failed echo",
            Duration::from_secs(20),
            || {
                let echo_id = echo_id.clone();
                async move {
                    let list = request(addr, "GET", "/tasks?name=demo.echo", None)
                        .await
                        .json();
                    list["tasks"]
                        .as_array()?
                        .iter()
                        .find(|t| t["retry_of"] == echo_id.as_str())
                        .and_then(|t| t["task_id"].as_str().map(str::to_owned))
                }
            },
        )
        .await;
        row_status(&session, &rerun, "failed").await;
        assert!(!session.alert_open().await, "no script ran");

        // A filter narrows the table.
        let before = session
            .js(
                "return document.querySelectorAll('#task-rows tr').length;",
                json!([]),
            )
            .await;
        assert!(before.as_u64().is_some_and(|n| n >= 3), "{before}");
        session.type_into("#f-q", "demo.echo").await;
        session
            .wait_js(
                "the search to narrow the table to the echo tasks",
                "const rows = [...document.querySelectorAll('#task-rows tr')];
                 return rows.length === 2 && rows.every(r => r.querySelector('.task-name').textContent === 'demo.echo');",
                json!([]),
            )
            .await;
        // Filters are kept across reloads.
        session.goto(&format!("{base}/dashboard")).await;
        session
            .wait_js(
                "the filter to survive a reload",
                "return document.getElementById('f-q').value === 'demo.echo'
                    && document.querySelectorAll('#task-rows tr').length === 2;",
                json!([]),
            )
            .await;
        session.type_into("#f-q", "").await;
        session
            .wait_js(
                "the table to widen again",
                "return document.querySelectorAll('#task-rows tr').length >= 3;",
                json!([]),
            )
            .await;

        // Screenshots in light and dark mode, with the detail panel of the hostile task open.
        post(addr, "/flaky", json!({})).await;
        let report = post(addr, "/reports/7", json!({})).await;
        let report = report["task_id"].as_str().expect("task id").to_owned();
        row_status(&session, &report, "success").await;
        session
            .click(&format!("#task-rows tr[data-id=\"{echo_id}\"]"))
            .await;
        session
            .wait_js(
                "the detail panel",
                "return !!document.getElementById('detail-error');",
                json!([]),
            )
            .await;
        let dir = shots_dir();
        session.screenshot(&dir.join("dashboard.png")).await;
        session.click("#theme").await;
        session
            .wait_js(
                "dark mode",
                "return document.documentElement.dataset.theme === 'dark';",
                json!([]),
            )
            .await;
        session.screenshot(&dir.join("dashboard-dark.png")).await;
        session.click("#theme").await;
        eprintln!("screenshots: {}", dir.join("dashboard.png").display());
        session.click("#detail-close").await;

        // Dead letters: select all and replay.
        session.click(r#".tab[data-tab="dead"]"#).await;
        session
            .wait_js(
                "the dead letters",
                "return document.querySelectorAll('#dead-rows tr').length >= 2;",
                json!([]),
            )
            .await;
        session.click("#d-all").await;
        session.click("#d-replay").await;
        session
            .wait_js(
                "the replay to report",
                "return document.getElementById('toast').textContent.includes('dispatched');",
                json!([]),
            )
            .await;
        wait_for(
            "the replayed runs",
            Duration::from_secs(20),
            || async move {
                let list = request(addr, "GET", "/tasks?name=demo.echo", None)
                    .await
                    .json();
                (list["tasks"].as_array()?.len() >= 4).then_some(())
            },
        )
        .await;

        // Queues resize live.
        session.click(r#".tab[data-tab="queues"]"#).await;
        let conc = r#"#queue-rows tr[data-queue="reports"] .q-conc"#;
        session
            .wait_js(
                "the queues",
                "return !!document.querySelector(arguments[0]);",
                json!([conc]),
            )
            .await;
        session.type_into(conc, "3").await;
        session
            .click(r#"#queue-rows tr[data-queue="reports"] button"#)
            .await;
        wait_for("the queue resize", Duration::from_secs(20), || async move {
            let queues = request(addr, "GET", "/tasks/queues", None).await.json();
            queues
                .as_array()?
                .iter()
                .any(|q| q["name"] == "reports" && q["concurrency"] == 3)
                .then_some(())
        })
        .await;
        session.screenshot(&dir.join("dashboard-queues.png")).await;

        // The audit log lists what was done.
        session.click(r#".tab[data-tab="audit"]"#).await;
        session
            .wait_js(
                "the audit log",
                "return document.querySelectorAll('#audit-rows tr').length >= 3;",
                json!([]),
            )
            .await;
        session.screenshot(&dir.join("dashboard-audit.png")).await;
        session.click(r#".tab[data-tab="tasks"]"#).await;

        no_console_errors(&session).await;
        session.quit().await;
    }

    // With auth: the page redirects to login and works after it.
    {
        let (_app, addr) = start_example(
            &example,
            &[
                ("TASKFLOW_ADMIN_USER", "ops"),
                ("TASKFLOW_ADMIN_PASSWORD", "s3cret-pass"),
            ],
        )
        .await;
        let api = request(addr, "GET", "/tasks", None).await;
        assert_eq!(api.status, 401, "the API needs a login: {}", api.body);
        let session = driver.session("auth").await;
        let base = format!("http://{addr}/tasks");
        session.goto(&format!("{base}/dashboard")).await;
        let url = session.url().await;
        assert!(url.contains("/tasks/login"), "redirected to login: {url}");
        session.type_into("#login-user", "ops").await;
        session.type_into("#login-password", "s3cret-pass").await;
        session.click("#login-submit").await;
        session
            .wait_js(
                "the dashboard after login",
                "return location.pathname.endsWith('/tasks/dashboard')
                    && document.getElementById('live').classList.contains('on');",
                json!([]),
            )
            .await;
        let signup = post(
            addr,
            "/signup",
            json!({ "id": 7, "email": "bo@example.com" }),
        )
        .await;
        let id = signup["task_id"].as_str().expect("task id").to_owned();
        row_status(&session, &id, "success").await;
        let user = session
            .js(
                "return document.getElementById('user').textContent;",
                json!([]),
            )
            .await;
        assert_eq!(user, "ops");
        session
            .screenshot(&shots_dir().join("dashboard-auth.png"))
            .await;
        no_console_errors(&session).await;
        session.quit().await;
    }
    drop(driver);
    let _ = std::fs::remove_dir_all(&profiles);
}
