//! A headless Chromium driven through `chromedriver` over the W3C WebDriver protocol (JSON over
//! HTTP on loopback), with just the commands the browser tests need.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One WebDriver call: chromedriver answers with a `Content-Length` but does not close the
/// connection, so the body is read by its length.
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> super::Response {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to chromedriver");
    let body = body.unwrap_or("");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("write request");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                raw.truncate(end + 4 + length);
                break;
            }
        }
        let n = stream.read(&mut buf).await.expect("read response");
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    super::parse_response(&raw)
}

/// The key of an element reference in WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The first executable named `name` on `PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

/// The Chromium and chromedriver binaries, or why the browser tests cannot run. With
/// `TASKFLOW_REQUIRE_SERVICES=1` a missing binary panics instead.
pub fn binaries() -> Option<(PathBuf, PathBuf)> {
    let chromium = which("chromium").or_else(|| which("chromium-browser"));
    let driver = which("chromedriver");
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            let reason = "chromium or chromedriver is not installed (Debian: apt-get install chromium chromium-driver)";
            assert!(
                std::env::var("TASKFLOW_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "TASKFLOW_REQUIRE_SERVICES=1 but {reason}"
            );
            eprintln!("skipping the browser test: {reason}");
            None
        }
    }
}

/// A child process killed when dropped.
pub struct Process(pub Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Polls `check` until it returns `Some`, panicking with `what` after `timeout`.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running chromedriver. Dropping it also ends every browser it started whose profile lies
/// under its profile root, so a failed test leaves no Chromium behind.
pub struct Driver {
    addr: SocketAddr,
    chromium: PathBuf,
    profiles: PathBuf,
    _process: Process,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let marker = format!("--user-data-dir={}", self.profiles.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            if String::from_utf8_lossy(&cmdline).contains(&marker) {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
    }
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it is ready; browser profiles go under
    /// `profiles`.
    pub async fn start(chromium: &Path, chromedriver: &Path, profiles: &Path) -> Driver {
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let driver = Driver {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            chromium: chromium.to_owned(),
            profiles: profiles.to_owned(),
            _process: Process(child),
        };
        let addr = driver.addr;
        wait_for(
            "chromedriver to be ready",
            Duration::from_secs(20),
            || async move {
                let connect = tokio::net::TcpStream::connect(addr).await.ok()?;
                drop(connect);
                let status = request(addr, "GET", "/status", None).await;
                (status.status == 200 && status.json()["value"]["ready"] == true).then_some(())
            },
        )
        .await;
        driver
    }

    /// A new browser session with a fresh profile named `profile` under the profile root.
    pub async fn session(&self, profile: &str) -> Session {
        let profile = self.profiles.join(profile);
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": self.chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--no-first-run", "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1440,1000",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
            "goog:loggingPrefs": { "browser": "ALL" },
        }}});
        let response = request(self.addr, "POST", "/session", Some(&caps.to_string())).await;
        assert_eq!(response.status, 200, "new session: {}", response.body);
        let id = response.json()["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        Session {
            addr: self.addr,
            id,
        }
    }
}

/// One browser session.
pub struct Session {
    addr: SocketAddr,
    id: String,
}

impl Session {
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string());
        let response = request(
            self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body.as_deref(),
        )
        .await;
        assert_eq!(response.status, 200, "{method} {path}: {}", response.body);
        response.json()["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({ "url": url }))).await;
    }

    /// The current URL.
    pub async fn url(&self) -> String {
        self.call("GET", "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
        .await
    }

    /// Waits until `script` returns something truthy and returns it.
    pub async fn wait_js(&self, what: &str, script: &str, args: Value) -> Value {
        wait_for(what, Duration::from_secs(30), || {
            let args = args.clone();
            async move {
                let value = self.js(script, args).await;
                let truthy = !matches!(&value, Value::Null | Value::Bool(false))
                    && value != json!(0)
                    && value != json!("");
                truthy.then_some(value)
            }
        })
        .await
    }

    async fn element(&self, css: &str) -> String {
        let found = self
            .call(
                "POST",
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await;
        found[ELEMENT].as_str().expect("an element").to_owned()
    }

    /// Clicks the element matching `css`.
    pub async fn click(&self, css: &str) {
        let element = self.element(css).await;
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Types `text` into the element matching `css`, after clearing it.
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.element(css).await;
        self.call(
            "POST",
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// Whether a JavaScript dialog (`alert`, …) is open.
    pub async fn alert_open(&self) -> bool {
        let response = request(
            self.addr,
            "GET",
            &format!("/session/{}/alert/text", self.id),
            None,
        )
        .await;
        response.status == 200
    }

    /// The browser console entries so far: `(level, message)`.
    pub async fn console(&self) -> Vec<(String, String)> {
        let logs = self
            .call("POST", "/se/log", Some(json!({ "type": "browser" })))
            .await;
        logs.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_owned(),
                    e["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Saves a PNG screenshot of the window to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let data = self.call("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or_default())
            .expect("the screenshot is base64");
        std::fs::write(path, png).expect("write the screenshot");
    }

    /// Ends the session (closes the browser).
    pub async fn quit(self) {
        let _ = request(self.addr, "DELETE", &format!("/session/{}", self.id), None).await;
    }
}
