//! Access control: [`Auth`] (user/password pairs or a verifier, bearer tokens), the signed
//! session cookie, the login page, and the guard in front of every admin route that also refuses
//! cross-origin and read-only mutations.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Shared;
use super::error::ApiError;
use super::page;

/// The name of the session cookie.
const COOKIE: &str = "taskflow_session";

type Check = dyn Fn(&str, &str) -> bool + Send + Sync;

/// Who may use the admin: user/password pairs or a verifier of your own, plus bearer tokens for
/// API clients. Pass it to [`TaskAdmin::auth`](super::TaskAdmin::auth).
///
/// A person signs in on the login page (`GET /tasks/login`) and gets a session cookie
/// (`HttpOnly`, `SameSite=Strict`, signed with HMAC-SHA256 under a random per-process key or
/// [`secret`](Self::secret)); an API client sends `Authorization: Bearer <token>` with a token
/// given to [`token`](Self::token). Passwords and tokens are compared in constant time.
///
/// # Examples
///
/// ```
/// use taskflow::admin::Auth;
///
/// let auth = Auth::users([("ops", "correct horse battery staple")])
///     .token("ci-3f9a1c", "ci")
///     .secret(b"a secret shared by every instance behind the load balancer")
///     .session_ttl(std::time::Duration::from_secs(8 * 3600));
///
/// let ldap_like = Auth::verifier(|user, password| user == "root" && password.len() > 20);
/// ```
#[derive(Clone)]
pub struct Auth {
    check: Arc<Check>,
    tokens: Vec<([u8; 32], String)>,
    secret: Option<Vec<u8>>,
    session_ttl: Duration,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("tokens", &self.tokens.len())
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .field("session_ttl", &self.session_ttl)
            .finish_non_exhaustive()
    }
}

fn digest(text: &[u8]) -> [u8; 32] {
    Sha256::digest(text).into()
}

impl Auth {
    /// Accepts these user/password pairs.
    ///
    /// # Examples
    ///
    /// See [`Auth`].
    pub fn users<U, P>(pairs: impl IntoIterator<Item = (U, P)>) -> Self
    where
        U: AsRef<str>,
        P: AsRef<str>,
    {
        let pairs: Vec<([u8; 32], [u8; 32])> = pairs
            .into_iter()
            .map(|(u, p)| (digest(u.as_ref().as_bytes()), digest(p.as_ref().as_bytes())))
            .collect();
        Self::verifier(move |user, password| {
            let (user, password) = (digest(user.as_bytes()), digest(password.as_bytes()));
            let mut found = subtle::Choice::from(0);
            for (u, p) in &pairs {
                found |= u.ct_eq(&user) & p.ct_eq(&password);
            }
            found.into()
        })
    }

    /// Accepts whom `verify(user, password)` accepts.
    ///
    /// # Examples
    ///
    /// See [`Auth`].
    pub fn verifier(verify: impl Fn(&str, &str) -> bool + Send + Sync + 'static) -> Self {
        Self {
            check: Arc::new(verify),
            tokens: Vec::new(),
            secret: None,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }

    /// Accepts `Authorization: Bearer <token>` as user `user` (for API clients and scripts).
    ///
    /// # Examples
    ///
    /// See [`Auth`].
    pub fn token(mut self, token: impl AsRef<str>, user: impl Into<String>) -> Self {
        self.tokens
            .push((digest(token.as_ref().as_bytes()), user.into()));
        self
    }

    /// Signs sessions with this secret instead of a random per-process key, so sessions survive
    /// restarts and work across instances.
    ///
    /// # Examples
    ///
    /// See [`Auth`].
    pub fn secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        self.secret = Some(secret.as_ref().to_vec());
        self
    }

    /// How long a session lasts (default 12 hours).
    ///
    /// # Examples
    ///
    /// See [`Auth`].
    pub fn session_ttl(mut self, ttl: Duration) -> Self {
        self.session_ttl = ttl.max(Duration::from_secs(1));
        self
    }
}

/// [`Auth`] with its signing key, ready to check requests.
pub(crate) struct Verifier {
    auth: Auth,
    key: Vec<u8>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; 32];
    if let Err(error) = getrandom::fill(&mut key) {
        tracing::error!(target: "taskflow::admin", %error, "no OS randomness for the session key; falling back to a weaker one: set `Auth::secret`");
        let seed = format!(
            "{:?}{}{:p}",
            std::time::SystemTime::now(),
            fastrand::u128(..),
            &key
        );
        key = digest(seed.as_bytes()).to_vec();
    }
    key
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Verifier {
    pub(crate) fn new(auth: Auth) -> Self {
        let key = auth.secret.clone().unwrap_or_else(random_key);
        Self { auth, key }
    }

    fn mac(&self, payload: &str) -> Option<Hmac<Sha256>> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).ok()?;
        mac.update(payload.as_bytes());
        Some(mac)
    }

    /// A session value for `user`: `v1.<user hex>.<expiry unix seconds>.<hmac hex>`.
    fn issue(&self, user: &str) -> Option<String> {
        let expires = chrono::Utc::now().timestamp()
            + i64::try_from(self.auth.session_ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let payload = format!("v1.{}.{expires}", hex(user.as_bytes()));
        let tag = self.mac(&payload)?.finalize().into_bytes();
        Some(format!("{payload}.{}", hex(&tag)))
    }

    /// The user of a valid, unexpired session value.
    fn session_user(&self, value: &str) -> Option<String> {
        let (payload, tag) = value.rsplit_once('.')?;
        let tag = unhex(tag)?;
        self.mac(payload)?.verify_slice(&tag).ok()?;
        let mut parts = payload.split('.');
        let (Some("v1"), Some(user), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires: i64 = expires.parse().ok()?;
        if expires < chrono::Utc::now().timestamp() {
            return None;
        }
        String::from_utf8(unhex(user)?).ok()
    }

    fn token_user(&self, token: &str) -> Option<String> {
        let given = digest(token.as_bytes());
        let mut found = None;
        for (t, user) in &self.auth.tokens {
            if bool::from(t.ct_eq(&given)) && found.is_none() {
                found = Some(user.clone());
            }
        }
        found
    }

    /// The user a request is signed in as: a bearer token or session value, or the cookie.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            let bearer = bearer.trim();
            return self
                .token_user(bearer)
                .or_else(|| self.session_user(bearer));
        }
        cookie(headers, COOKIE).and_then(|v| self.session_user(&v))
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.to_owned())
}

/// The signed-in user of a request (`anonymous` without [`Auth`]), set by the guard.
#[derive(Debug, Clone)]
pub(crate) struct Principal(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Principal>()
            .cloned()
            .unwrap_or_else(|| Principal("anonymous".to_owned())))
    }
}

/// Whether a request comes from a page of this origin, by what the browser said: a
/// `Sec-Fetch-Site` other than `same-origin` (or `none`, typed by the user), or, from older
/// browsers without it, an `Origin` whose host differs from `Host`, is cross-origin. Clients that send neither (curl, scripts) pass:
/// they carry no ambient browser credentials to abuse.
pub(crate) fn same_origin(headers: &HeaderMap) -> bool {
    // Browsers set `Sec-Fetch-Site` themselves (no script can): when present, it decides.
    if let Some(site) = headers.get("sec-fetch-site") {
        return matches!(site.as_bytes(), b"same-origin" | b"none");
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

fn is_mutation(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// In front of every protected admin route: authenticates (page → login redirect, API → 401),
/// then refuses read-only and cross-origin mutations with 403.
pub(crate) async fn guard(
    Extension(shared): Extension<Arc<Shared>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let prefix = &shared.settings.path;
    let logout = path == format!("{prefix}/logout");
    let user = match &shared.auth {
        None => "anonymous".to_owned(),
        Some(verifier) => match verifier.user(request.headers()) {
            Some(user) => user,
            None if request.method() == Method::GET && path == format!("{prefix}/dashboard") => {
                let next = request
                    .uri()
                    .path_and_query()
                    .map_or(path.as_str(), |p| p.as_str());
                return Redirect::to(&format!("{prefix}/login?next={}", page::url_encode(next)))
                    .into_response();
            }
            None => {
                let mut response =
                    ApiError::new(StatusCode::UNAUTHORIZED, "authentication required")
                        .into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"taskflow\""),
                );
                return response;
            }
        },
    };
    if is_mutation(request.method()) {
        if !same_origin(request.headers()) {
            shared.audit.record(
                &user,
                "refused",
                Vec::new(),
                403,
                format!("cross-origin {} {path}", request.method()),
            );
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "cross-origin request refused: mutations must come from the dashboard's own origin",
            )
            .into_response();
        }
        if shared.settings.read_only && !logout {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "the task admin is read-only: mutations are disabled",
            )
            .into_response();
        }
    }
    request.extensions_mut().insert(Principal(user));
    next.run(request).await
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

/// Where to go after login: only a page under the admin prefix (no open redirect).
fn safe_next(prefix: &str, next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with(&format!("{prefix}/"))
                && !next.contains("//")
                && !next.contains('\\') =>
        {
            next.to_owned()
        }
        _ => format!("{prefix}/dashboard"),
    }
}

pub(crate) async fn login_page(
    Extension(shared): Extension<Arc<Shared>>,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    let prefix = &shared.settings.path;
    if shared.auth.is_none() {
        return Redirect::to(&format!("{prefix}/dashboard")).into_response();
    }
    let next = safe_next(prefix, query.next.as_deref());
    page::login(&shared.settings, &next, None, StatusCode::OK)
}

pub(crate) async fn login(
    Extension(shared): Extension<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let prefix = &shared.settings.path;
    let Some(verifier) = &shared.auth else {
        return Redirect::to(&format!("{prefix}/dashboard")).into_response();
    };
    if !same_origin(&headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-origin login refused").into_response();
    }
    let Ok(Form(form)) = form else {
        return page::login(
            &shared.settings,
            &format!("{prefix}/dashboard"),
            Some("Enter a user name and a password."),
            StatusCode::BAD_REQUEST,
        );
    };
    let next = safe_next(prefix, form.next.as_deref());
    if !(verifier.auth.check)(&form.user, &form.password) {
        tracing::warn!(target: "taskflow::admin", user = %form.user, "failed admin login");
        return page::login(
            &shared.settings,
            &next,
            Some("Wrong user name or password."),
            StatusCode::UNAUTHORIZED,
        );
    }
    let Some(session) = verifier.issue(&form.user) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not sign a session",
        )
        .into_response();
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https")
        || headers
            .get(header::ORIGIN)
            .is_some_and(|v| v.as_bytes().starts_with(b"https://"));
    let cookie = format!(
        "{COOKIE}={session}; Path={prefix}; HttpOnly; SameSite=Strict; Max-Age={}{}",
        verifier.auth.session_ttl.as_secs(),
        if secure { "; Secure" } else { "" }
    );
    let mut response = Redirect::to(&next).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

pub(crate) async fn logout(Extension(shared): Extension<Arc<Shared>>) -> Response {
    let prefix = &shared.settings.path;
    let mut response = Redirect::to(&format!("{prefix}/login")).into_response();
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{COOKIE}=; Path={prefix}; HttpOnly; SameSite=Strict; Max-Age=0"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verifier() -> Verifier {
        Verifier::new(Auth::users([("ada", "pw")]).token("tok", "ci"))
    }

    #[test]
    fn sessions_round_trip_and_reject_tampering() {
        let v = verifier();
        let session = v.issue("ada").expect("signs");
        assert_eq!(v.session_user(&session).as_deref(), Some("ada"));
        let tampered = session.replacen(&hex(b"ada"), &hex(b"eve"), 1);
        assert_eq!(v.session_user(&tampered), None);
        assert_eq!(verifier().session_user(&session), None, "another key");
        assert_eq!(v.session_user("v1.x.1"), None);
        assert_eq!(v.session_user(""), None);
    }

    #[test]
    fn users_and_tokens() {
        let v = verifier();
        assert!((v.auth.check)("ada", "pw"));
        assert!(!(v.auth.check)("ada", "pW"));
        assert!(!(v.auth.check)("bob", "pw"));
        assert_eq!(v.token_user("tok").as_deref(), Some("ci"));
        assert_eq!(v.token_user("tok2"), None);
    }

    #[test]
    fn origin_checks() {
        let mut h = HeaderMap::new();
        assert!(same_origin(&h));
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8000"));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8000"),
        );
        assert!(same_origin(&h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://evil.example"),
        );
        assert!(!same_origin(&h));
        h.insert("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(same_origin(&h), "the browser's own header decides");
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(!same_origin(&h));
        assert_eq!(safe_next("/tasks", Some("//evil")), "/tasks/dashboard");
        assert_eq!(
            safe_next("/tasks", Some("/tasks/dashboard?x=1")),
            "/tasks/dashboard?x=1"
        );
    }
}
