//! The rest of the admin API over real HTTP: bulk actions, history deletion, queues, schedules,
//! registered tasks, the audit log, the pages, access control, read-only mode and the
//! same-origin rule for mutations.

mod support;

use std::net::SocketAddr;

use axum::Router;
use serde_json::{Value, json};
use support::{request, request_with, serve};
use taskflow::admin::{Auth, TaskAdmin};
use taskflow::{QueueConfig, TaskId, TaskManager, TaskStatus};

/// Fails for "fail".
#[taskflow::task(name = "actions.greet", retries = 1, queue = "mail")]
async fn greet(name: String) -> Result<String, String> {
    if name == "fail" {
        return Err("asked to fail".to_owned());
    }
    Ok(format!("hi {name}"))
}

async fn manager() -> TaskManager {
    TaskManager::builder()
        .queue("mail", QueueConfig::new().concurrency(2).max_size(50))
        .build()
        .await
        .expect("builds")
}

async fn app(manager: &TaskManager, configure: impl FnOnce(TaskAdmin) -> TaskAdmin) -> SocketAddr {
    serve(configure(TaskAdmin::new(manager)).mount(Router::new())).await
}

async fn finished(manager: &TaskManager, name: &str) -> TaskId {
    let id = manager
        .add(Greet { name: name.into() })
        .await
        .expect("enqueued");
    manager.wait(id).await.expect("finishes");
    id
}

fn detail(response: &support::Response) -> String {
    response.json()["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn bulk_retry_dispatches_and_skips() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let failed = finished(&manager, "fail").await;
    let ok = finished(&manager, "ada").await;
    let running = manager
        .spawn("actions.adhoc", std::future::pending::<()>())
        .await
        .expect("spawned");
    let body = json!({ "task_ids": [failed, ok, running, TaskId::new(), "nope"] }).to_string();
    let response = request(addr, "POST", "/tasks/bulk-retry", Some(&body)).await;
    assert_eq!(response.status, 200, "{}", response.body);
    let out = response.json();
    assert_eq!(out["dispatched"], 2);
    assert_eq!(out["skipped"], 3);
    let results = out["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["original_task_id"], failed.to_string());
    let new_id: TaskId = results[0]["new_task_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("an id");
    assert_eq!(
        manager.wait(new_id).await.expect("runs").retry_of,
        Some(failed)
    );
    assert_eq!(out["errors"].as_array().map(Vec::len), Some(3));

    for bad in ["{}", "[]", "{\"task_ids\": 3}", "not json"] {
        let response = request(addr, "POST", "/tasks/bulk-retry", Some(bad)).await;
        assert!(
            matches!(response.status, 400 | 422),
            "{bad}: {} {}",
            response.status,
            response.body
        );
        assert!(!detail(&response).is_empty(), "{bad}: JSON detail");
    }
}

#[tokio::test]
async fn retry_failed_takes_a_window() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let first = finished(&manager, "fail").await;
    let second = finished(&manager, "fail").await;
    finished(&manager, "ada").await;

    let response = request(
        addr,
        "POST",
        "/tasks/retry-failed?since=6h&name=actions.greet",
        None,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let out = response.json();
    assert_eq!(out["dispatched"], 2);
    assert_eq!(out["skipped"], 0);
    let originals: Vec<&str> = out["results"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["original_task_id"].as_str())
        .collect();
    assert!(originals.contains(&first.to_string().as_str()));
    assert!(originals.contains(&second.to_string().as_str()));

    let none = request(
        addr,
        "POST",
        "/tasks/retry-failed?since=all&name=other",
        None,
    )
    .await;
    assert_eq!(none.json()["dispatched"], 0);

    for bad in [
        "since=6",
        "since=yesterday",
        "since=6s",
        "",
        "since=1h&colour=red",
        "since=1h&status=success",
    ] {
        let response = request(addr, "POST", &format!("/tasks/retry-failed?{bad}"), None).await;
        assert_eq!(response.status, 400, "{bad}: {}", response.body);
        assert!(!detail(&response).is_empty());
    }
}

#[tokio::test]
async fn delete_history_by_age() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let old = finished(&manager, "ada").await;
    let response = request(addr, "DELETE", "/tasks/history?older_than=1h", None).await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json(), json!({ "deleted": 0 }));
    let response = request(addr, "DELETE", "/tasks/history?older_than=all", None).await;
    assert_eq!(response.json(), json!({ "deleted": 1 }));
    assert!(manager.get(old).await.expect("readable").is_none());
    for bad in ["", "?older_than=soon", "?older_than=5", "?age=1h"] {
        let response = request(addr, "DELETE", &format!("/tasks/history{bad}"), None).await;
        assert_eq!(response.status, 400, "{bad}");
    }
}

#[tokio::test]
async fn queues_list_and_resize() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let queues = request(addr, "GET", "/tasks/queues", None).await.json();
    let mail = queues
        .as_array()
        .into_iter()
        .flatten()
        .find(|q| q["name"] == "mail")
        .cloned()
        .expect("the mail queue");
    for field in [
        "name",
        "concurrency",
        "max_size",
        "pending",
        "running",
        "rejected",
        "started",
    ] {
        assert!(mail.get(field).is_some(), "{field}: {mail}");
    }
    assert_eq!(mail["concurrency"], 2);

    let response = request(
        addr,
        "PATCH",
        "/tasks/queues/mail",
        Some(r#"{"concurrency": 5, "max_size": 10}"#),
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    assert_eq!(response.json()["concurrency"], 5);
    assert_eq!(response.json()["max_size"], 10);
    let response = request(
        addr,
        "PATCH",
        "/tasks/queues/mail",
        Some(r#"{"max_size": 20}"#),
    )
    .await;
    assert_eq!(response.json()["concurrency"], 5, "absent means unchanged");
    let response = request(
        addr,
        "PATCH",
        "/tasks/queues/mail",
        Some(r#"{"concurrency": null}"#),
    )
    .await;
    assert_eq!(
        response.json()["concurrency"],
        Value::Null,
        "null means unlimited"
    );
    let stats = manager.queues();
    let mail = stats.iter().find(|q| q.name == "mail").expect("mail");
    assert_eq!((mail.concurrency, mail.max_size), (None, 20));

    let response = request(
        addr,
        "PATCH",
        "/tasks/queues/nope",
        Some(r#"{"concurrency": 1}"#),
    )
    .await;
    assert_eq!(response.status, 404);
    for bad in [
        r#"{"concurrency": 0}"#,
        r#"{"max_size": 0}"#,
        r#"{"size": 3}"#,
        "oops",
        r#"{"concurrency": -1}"#,
    ] {
        let response = request(addr, "PATCH", "/tasks/queues/mail", Some(bad)).await;
        assert!(
            matches!(response.status, 400 | 422),
            "{bad}: {}",
            response.status
        );
        assert!(!detail(&response).is_empty(), "{bad}");
    }
}

#[tokio::test]
async fn schedules_registered_and_fixed_paths() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let schedules = request(addr, "GET", "/tasks/schedules", None).await;
    assert_eq!(schedules.status, 200);
    assert_eq!(schedules.json(), json!([]));

    let registered = request(addr, "GET", "/tasks/registered", None).await.json();
    let greet = registered
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "actions.greet")
        .cloned()
        .expect("registered");
    assert_eq!(greet["options"]["retries"], 1);
    assert_eq!(greet["options"]["queue"], "mail");
    assert!(
        greet["location"]
            .as_str()
            .is_some_and(|l| l.contains("admin_actions.rs"))
    );

    // Fixed paths are never taken for a task id.
    for path in [
        "metrics",
        "health",
        "queues",
        "schedules",
        "registered",
        "audit",
        "dashboard",
    ] {
        let response = request(addr, "GET", &format!("/tasks/{path}"), None).await;
        assert_eq!(response.status, 200, "/tasks/{path}");
    }
    let response = request(addr, "GET", "/tasks/history", None).await;
    assert_eq!(response.status, 405, "history only deletes");
}

#[tokio::test]
async fn mutations_are_audited() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let failed = finished(&manager, "fail").await;
    request(addr, "POST", &format!("/tasks/{failed}/retry"), None).await;
    request(addr, "POST", &format!("/tasks/{failed}/cancel"), None).await;
    request(addr, "DELETE", "/tasks/history?older_than=7d", None).await;
    let audit = request(addr, "GET", "/tasks/audit", None).await.json();
    let entries = audit.as_array().expect("a list");
    assert_eq!(entries.len(), 3, "{audit}");
    assert_eq!(entries[0]["action"], "delete-history");
    assert_eq!(entries[1]["action"], "cancel");
    assert_eq!(entries[1]["status"], 400);
    assert_eq!(entries[2]["action"], "retry");
    assert_eq!(entries[2]["status"], 200);
    assert_eq!(entries[2]["task_ids"], json!([failed]));
    assert_eq!(entries[2]["user"], "anonymous");
    assert!(
        entries[2]["time"]
            .as_str()
            .is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok())
    );
}

#[tokio::test]
async fn cross_origin_mutations_are_refused() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let failed = finished(&manager, "fail").await;
    let retry = format!("/tasks/{failed}/retry");
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "null")],
    ] {
        let response = request_with(addr, "POST", &retry, &headers, None).await;
        assert_eq!(response.status, 403, "{headers:?}");
        assert!(
            detail(&response).contains("cross-origin"),
            "{}",
            response.body
        );
    }
    let response = request_with(
        addr,
        "DELETE",
        "/tasks/history?older_than=all",
        &[("origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(response.status, 403);
    assert!(manager.get(failed).await.expect("readable").is_some());
    // Reads are not affected; the same origin is accepted.
    let response = request_with(
        addr,
        "GET",
        "/tasks",
        &[("origin", "http://evil.example")],
        None,
    )
    .await;
    assert_eq!(response.status, 200);
    let origin = format!("http://{addr}");
    let response = request_with(
        addr,
        "POST",
        &retry,
        &[
            ("origin", origin.as_str()),
            ("sec-fetch-site", "same-origin"),
        ],
        None,
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let audit = request(addr, "GET", "/tasks/audit", None).await.json();
    assert!(
        audit
            .as_array()
            .into_iter()
            .flatten()
            .any(|e| e["action"] == "refused"),
        "refusals are audited: {audit}"
    );
}

#[tokio::test]
async fn read_only_refuses_and_hides_mutations() {
    let manager = manager().await;
    let addr = app(&manager, |a| a.read_only(true)).await;
    let failed = finished(&manager, "fail").await;
    for (method, path, body) in [
        ("POST", format!("/tasks/{failed}/retry"), None),
        ("POST", format!("/tasks/{failed}/cancel"), None),
        (
            "POST",
            "/tasks/bulk-retry".to_owned(),
            Some(r#"{"task_ids":[]}"#),
        ),
        ("POST", "/tasks/retry-failed?since=all".to_owned(), None),
        ("DELETE", "/tasks/history?older_than=all".to_owned(), None),
        (
            "PATCH",
            "/tasks/queues/mail".to_owned(),
            Some(r#"{"concurrency":1}"#),
        ),
    ] {
        let response = request(addr, method, &path, body).await;
        assert_eq!(response.status, 403, "{method} {path}");
        assert!(detail(&response).contains("read-only"), "{}", response.body);
    }
    assert_eq!(
        manager
            .get(failed)
            .await
            .expect("readable")
            .map(|r| r.status),
        Some(TaskStatus::Failed)
    );
    assert_eq!(request(addr, "GET", "/tasks", None).await.status, 200);
    let page = request(addr, "GET", "/tasks/dashboard", None).await;
    assert!(
        page.body.contains(r#""read_only":true"#),
        "the page hides mutations"
    );
}

#[tokio::test]
async fn dashboard_page_and_assets() {
    let manager = manager().await;
    let addr = app(&manager, |a| a.path("/ops/jobs").title("<b>Ops</b> & jobs")).await;
    let page = request(addr, "GET", "/ops/jobs/dashboard", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").expect("a CSP");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(
        page.body.contains("&lt;b&gt;Ops&lt;/b&gt; &amp; jobs"),
        "the title is escaped"
    );
    assert!(!page.body.contains("<b>Ops"), "no raw title");
    assert!(page.body.contains(r#"src="/ops/jobs/assets/dashboard.js""#));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no CDN"
    );
    for (path, kind) in [
        ("dashboard.js", "text/javascript"),
        ("dashboard.css", "text/css"),
    ] {
        let asset = request(addr, "GET", &format!("/ops/jobs/assets/{path}"), None).await;
        assert_eq!(asset.status, 200);
        assert!(
            asset
                .header("content-type")
                .is_some_and(|c| c.starts_with(kind))
        );
        assert!(
            !asset.body.contains("https://"),
            "{path} loads nothing from the network"
        );
    }
    let js = request(addr, "GET", "/ops/jobs/assets/dashboard.js", None)
        .await
        .body;
    assert!(!js.contains("innerHTML"), "the script never parses HTML");
}

#[tokio::test]
async fn auth_protects_every_route() {
    let manager = manager().await;
    let addr = app(&manager, |a| {
        a.auth(
            Auth::users([("ops", "pw one")])
                .token("api-token-1", "ci")
                .secret(b"k"),
        )
    })
    .await;
    let failed = finished(&manager, "fail").await;
    for (method, path) in [
        ("GET", "/tasks".to_owned()),
        ("GET", format!("/tasks/{failed}")),
        ("GET", "/tasks/metrics".to_owned()),
        ("GET", "/tasks/health".to_owned()),
        ("GET", "/tasks/queues".to_owned()),
        ("GET", "/tasks/schedules".to_owned()),
        ("GET", "/tasks/registered".to_owned()),
        ("GET", "/tasks/audit".to_owned()),
        ("GET", "/tasks/stream".to_owned()),
        ("POST", format!("/tasks/{failed}/retry")),
        ("POST", format!("/tasks/{failed}/cancel")),
        ("POST", "/tasks/bulk-retry".to_owned()),
        ("POST", "/tasks/retry-failed?since=all".to_owned()),
        ("DELETE", "/tasks/history?older_than=all".to_owned()),
        ("PATCH", "/tasks/queues/mail".to_owned()),
    ] {
        let response = request(addr, method, &path, None).await;
        assert_eq!(response.status, 401, "{method} {path}");
        assert_eq!(
            response.json(),
            json!({ "detail": "authentication required" })
        );
        let wrong = request_with(
            addr,
            method,
            &path,
            &[("authorization", "Bearer wrong")],
            None,
        )
        .await;
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong token");
    }
    // The page redirects to the login page.
    let page = request(addr, "GET", "/tasks/dashboard", None).await;
    assert_eq!(page.status, 303);
    assert_eq!(
        page.header("location"),
        Some("/tasks/login?next=/tasks/dashboard")
    );
    let login = request(addr, "GET", "/tasks/login?next=/tasks/dashboard", None).await;
    assert_eq!(login.status, 200);
    assert!(login.body.contains(r#"name="password""#));

    // A bearer token works for the API, and mutations are audited under its user.
    let bearer = [("authorization", "Bearer api-token-1")];
    assert_eq!(
        request_with(addr, "GET", "/tasks", &bearer, None)
            .await
            .status,
        200
    );
    let retry = request_with(
        addr,
        "POST",
        &format!("/tasks/{failed}/retry"),
        &bearer,
        None,
    )
    .await;
    assert_eq!(retry.status, 200, "{}", retry.body);
    let audit = request_with(addr, "GET", "/tasks/audit", &bearer, None)
        .await
        .json();
    assert_eq!(audit[0]["user"], "ci");

    // Wrong password: 401 and the form again; right one: a session cookie.
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let wrong = request_with(
        addr,
        "POST",
        "/tasks/login",
        &form,
        Some("user=ops&password=nope"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.body.contains("Wrong user name or password"));
    let ok = request_with(
        addr,
        "POST",
        "/tasks/login",
        &form,
        Some("user=ops&password=pw+one&next=%2Ftasks%2Fdashboard"),
    )
    .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.header("location"), Some("/tasks/dashboard"));
    let set_cookie = ok
        .header("set-cookie")
        .expect("a session cookie")
        .to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/tasks"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let with_cookie = [("cookie", cookie.as_str())];
    let page = request_with(addr, "GET", "/tasks/dashboard", &with_cookie, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#""user":"ops""#));
    assert_eq!(
        request_with(addr, "GET", "/tasks/metrics", &with_cookie, None)
            .await
            .status,
        200
    );

    // A forged cookie is refused; an open redirect after login is not followed.
    let forged = cookie.replacen("v1.", "v1.00", 1);
    let response = request_with(addr, "GET", "/tasks", &[("cookie", forged.as_str())], None).await;
    assert_eq!(response.status, 401);
    let evil = request_with(
        addr,
        "POST",
        "/tasks/login",
        &form,
        Some("user=ops&password=pw+one&next=https%3A%2F%2Fevil.example%2F"),
    )
    .await;
    assert_eq!(evil.header("location"), Some("/tasks/dashboard"));

    // Cross-origin login and logout are refused; logout clears the cookie.
    let cross = request_with(
        addr,
        "POST",
        "/tasks/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", "http://evil.example"),
        ],
        Some("user=ops&password=pw+one"),
    )
    .await;
    assert_eq!(cross.status, 403);
    let out = request_with(addr, "POST", "/tasks/logout", &with_cookie, None).await;
    assert_eq!(out.status, 303);
    assert!(
        out.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
}

#[tokio::test]
async fn without_auth_the_login_page_leads_to_the_dashboard() {
    let manager = manager().await;
    let addr = app(&manager, |a| a).await;
    let response = request(addr, "GET", "/tasks/login", None).await;
    assert_eq!(response.status, 303);
    assert_eq!(response.header("location"), Some("/tasks/dashboard"));
}
