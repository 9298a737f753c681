//! The dashboard and login pages, served from assets embedded at compile time (`assets/`): no
//! CDN, no web fonts, no build step. Pages carry a strict Content Security Policy, so even a
//! value that escaped escaping could not run a script.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::auth::Principal;
use super::{Admin, Settings};

const DASHBOARD_HTML: &str = include_str!("assets/dashboard.html");
const DASHBOARD_JS: &str = include_str!("assets/dashboard.js");
const DASHBOARD_CSS: &str = include_str!("assets/dashboard.css");
const LOGIN_HTML: &str = include_str!("assets/login.html");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Escapes text for HTML element content and quoted attribute values.
pub(crate) fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes everything but unreserved characters and `/`.
pub(crate) fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(super) async fn dashboard(admin: Admin, user: Principal) -> Response {
    let s = &admin.settings;
    let config = json!({
        "base": s.path,
        "title": s.title,
        "read_only": s.read_only,
        "display_args": s.display_args,
        "auth": admin.auth.is_some(),
        "user": user.0,
    });
    // JSON inside a <script type="application/json"> block: `<` is escaped so no value can
    // close the block.
    let config = config
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    let body = DASHBOARD_HTML
        .replace("{{TITLE}}", &escape_html(&s.title))
        .replace("{{BASE}}", &escape_html(&s.path))
        .replace("{{CONFIG}}", &config);
    html(StatusCode::OK, body)
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", DASHBOARD_JS)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", DASHBOARD_CSS)
}

/// The login page, with an optional error message.
pub(crate) fn login(
    settings: &Settings,
    next: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let error = error.map_or_else(String::new, |e| {
        format!(
            r#"<p class="login-error" role="alert">{}</p>"#,
            escape_html(e)
        )
    });
    let body = LOGIN_HTML
        .replace("{{TITLE}}", &escape_html(&settings.title))
        .replace("{{BASE}}", &escape_html(&settings.path))
        .replace("{{NEXT}}", &escape_html(next))
        .replace("{{ERROR}}", &error);
    html(status, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            escape_html(r#"<img src=x onerror="alert(1)">&'"#),
            "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            url_encode("/tasks/dashboard?a=b c"),
            "/tasks/dashboard%3Fa%3Db%20c"
        );
    }
}
