//! The web console at `/console/`: server-rendered pages (minijinja templates embedded in the
//! binary, one stylesheet, no scripts needed) for administrators signed in with an account of
//! the store (`spgate admins add`).
//!
//! - Sign-in: a session cookie (`spgate_console`: HttpOnly, SameSite=Strict, Secure when the
//!   endpoint serves TLS) naming a session kept in the store by the SHA-256 of its value, so
//!   every instance on the store knows it; sessions end after an hour idle or twelve hours.
//!   Failed sign-ins lock out like partners' logins ([`crate::users::lockout`]).
//! - Every form carries the session's CSRF token and is refused without it, or from another
//!   origin. Pages without a signed-in session send the browser to the sign-in page.
//! - Every page shows the open alerts on top, newest first.
//!
//! The pages: [`signin`] (administrators), [`connections`] (with "Sign in with Microsoft" and
//! the folder picker), [`partners`], [`syncs`], [`activity`] (sessions, lockouts, transfers,
//! the audit as CSV or JSONL, alerts).

pub mod activity;
pub mod connections;
pub mod partners;
pub mod picker;
pub mod signin;
pub mod syncs;

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Request, State as Extract};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use minijinja::{Environment, Value, context};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::State;
use crate::connections::health::open_alerts;

/// The session cookie's name.
pub const COOKIE: &str = "spgate_console";
/// A session unused this long ends.
const IDLE_MS: i64 = 60 * 60 * 1000;
/// A session ends this long after sign-in, used or not.
const MAX_AGE_MS: i64 = 12 * 60 * 60 * 1000;
/// A session's last use is written at most this often.
const TOUCH_EVERY_MS: i64 = 60 * 1000;

const STYLE: &str = include_str!("console.css");

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in [
        ("layout.html", include_str!("templates/layout.html")),
        ("bare.html", include_str!("templates/bare.html")),
        ("login.html", include_str!("templates/login.html")),
        ("message.html", include_str!("templates/message.html")),
        ("dashboard.html", include_str!("templates/dashboard.html")),
        ("alerts.html", include_str!("templates/alerts.html")),
        (
            "connections.html",
            include_str!("templates/connections.html"),
        ),
        ("connection.html", include_str!("templates/connection.html")),
        ("browse.html", include_str!("templates/browse.html")),
        ("sites.html", include_str!("templates/sites.html")),
        ("libraries.html", include_str!("templates/libraries.html")),
        ("partners.html", include_str!("templates/partners.html")),
        ("partner.html", include_str!("templates/partner.html")),
        ("syncs.html", include_str!("templates/syncs.html")),
        ("sync.html", include_str!("templates/sync.html")),
        ("activity.html", include_str!("templates/activity.html")),
    ] {
        env.add_template(name, source)
            .unwrap_or_else(|e| panic!("console template {name}: {e}"));
    }
    env.add_filter("size", |v: Value| {
        u64::try_from(v)
            .map(human_size)
            .unwrap_or_else(|_| "-".into())
    });
    env.add_filter("when", when);
    // Path segments and query values: every byte but letters and digits encoded (the built-in
    // filter keeps `/`, which would let a name such as `../x` reach another route).
    env.add_filter("urlencode", |v: String| enc(&v));
    // A missing value (None) prints as nothing, not as "None".
    env.set_formatter(|out, state, value| {
        if value.is_none() || value.is_undefined() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env
});

/// `bytes` as people read sizes: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A time (Unix seconds, or milliseconds when larger than any second count, or RFC 3339 text)
/// as `2026-12-05 08:30 UTC (3 min ago)`.
pub fn when(value: Value) -> String {
    let time = if let Some(text) = value.as_str() {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.to_utc())
    } else {
        i64::try_from(value).ok().and_then(|n| {
            if n > 100_000_000_000 {
                chrono::DateTime::from_timestamp_millis(n)
            } else {
                chrono::DateTime::from_timestamp(n, 0)
            }
        })
    };
    let Some(time) = time else {
        return "-".into();
    };
    let ago = chrono::Utc::now() - time;
    let secs = ago.num_seconds();
    let relative = match secs {
        s if s < 0 => "in the future".to_string(),
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    };
    format!("{} ({relative})", time.format("%Y-%m-%d %H:%M:%S UTC"))
}

/// The console's routes, under `/console`.
pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(activity::dashboard))
        .route("/console/console.css", get(style))
        .route("/console/login", get(signin::form).post(signin::submit))
        .route("/console/logout", post(signin::logout))
        .route("/console/alerts", get(activity::alerts))
        .route("/console/activity", get(activity::activity))
        .route("/console/activity/audit.{format}", get(activity::audit))
        .route("/console/sessions/{id}/kick", post(activity::kick))
        .route("/console/lockouts/{user}/clear", post(activity::unlock))
        .route(
            "/console/connections",
            get(connections::list).post(connections::create),
        )
        .route("/console/connections/new", get(connections::new))
        .route(
            "/console/connections/{name}",
            get(connections::show).post(connections::save),
        )
        .route(
            "/console/connections/{name}/delete",
            post(connections::delete),
        )
        .route(
            "/console/connections/{name}/enable",
            post(connections::enable),
        )
        .route("/console/connections/{name}/test", post(connections::test))
        .route(
            "/console/connections/{name}/certificate.pem",
            get(connections::certificate_file),
        )
        .route(
            "/console/connections/{name}/microsoft",
            post(connections::microsoft),
        )
        .route("/console/connections/{name}/browse", get(picker::browse))
        .route("/console/connections/{name}/sites", get(picker::sites))
        .route(
            "/console/connections/{name}/libraries",
            get(picker::libraries),
        )
        .route("/console/oauth/callback", get(connections::callback))
        .route(
            "/console/partners",
            get(partners::list).post(partners::create),
        )
        .route("/console/partners/new", get(partners::new))
        .route(
            "/console/partners/{name}",
            get(partners::show).post(partners::save),
        )
        .route("/console/partners/{name}/delete", post(partners::delete))
        .route("/console/partners/{name}/test", post(partners::test_login))
        .route("/console/syncs", get(syncs::list).post(syncs::create))
        .route("/console/syncs/new", get(syncs::new))
        .route("/console/syncs/{name}", get(syncs::show).post(syncs::save))
        .route("/console/syncs/{name}/delete", post(syncs::delete))
        .route("/console/syncs/{name}/run", post(syncs::run))
        .route("/console/syncs/{name}/plan", post(syncs::plan))
}

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        STYLE,
    )
        .into_response()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Any serializable value (JSON values, records) for a template.
pub fn ser<T: serde::Serialize>(value: T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

/// A random token: 32 bytes, URL-safe base64.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

/// The SHA-256 (hex) of a cookie's value: how the store knows a session.
pub fn digest(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of cookie `name` in `headers`.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Whether the admin endpoint serves TLS (cookies are then Secure).
fn tls(state: &State) -> bool {
    state
        .gateway()
        .config
        .admin
        .as_ref()
        .is_some_and(|a| a.tls.is_some())
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, Path=/console, Secure under TLS;
/// `max_age` 0 deletes it.
pub fn set_cookie(state: &State, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    cookie_line(state, name, value, max_age, "/console", "Strict")
}

/// A `Set-Cookie` value with its path and SameSite policy.
pub fn cookie_line(
    state: &State,
    name: &str,
    value: &str,
    max_age: Option<u64>,
    path: &str,
    same_site: &str,
) -> HeaderValue {
    let mut text = format!("{name}={value}; Path={path}; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        text += &format!("; Max-Age={age}");
    }
    if tls(state) {
        text += "; Secure";
    }
    HeaderValue::from_str(&text).expect("cookie values are base64url")
}

/// A signed-in administrator, found from the request's session cookie. Without one, a page
/// sends the browser to the sign-in page.
pub struct Signed {
    pub admin: String,
    pub csrf: String,
    /// The session's id in the store.
    pub id: String,
    /// `[admin] public_url`, also accepted as forms' `Origin`.
    public_url: Option<String>,
}

impl FromRequestParts<Arc<State>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<State>) -> Result<Signed, Response> {
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/console/");
            let next = if parts.method == axum::http::Method::GET {
                next
            } else {
                "/console/"
            };
            Redirect::to(&format!(
                "/console/login?next={}",
                percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
            ))
            .into_response()
        };
        let Some(value) = cookie(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        let id = digest(value);
        let store = state.gateway().store.clone();
        let now = now_ms();
        match store
            .admin_session(&id, now - IDLE_MS, now - MAX_AGE_MS)
            .await
        {
            Ok(Some(session)) => {
                if now - session.seen_ms > TOUCH_EVERY_MS
                    && let Err(e) = store.touch_admin_session(&id, now).await
                {
                    tracing::warn!(error = %crate::logging::chain(&e), "console: recording a session's use");
                }
                let public_url = state
                    .gateway()
                    .config
                    .admin
                    .as_ref()
                    .and_then(|a| a.public_url.clone());
                Ok(Signed {
                    admin: session.admin,
                    csrf: session.csrf,
                    id,
                    public_url,
                })
            }
            Ok(None) => Err(to_login()),
            Err(e) => Err(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The state store does not answer: {e}"),
            )),
        }
    }
}

/// A form's fields, in order (a key may repeat: checkboxes).
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// Sets `key` to `value`, in place of what the form gave.
    pub fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| k != key);
        self.0.push((key.to_string(), value));
    }

    /// A `multipart/form-data` body's fields; a file field holds the file's text (an empty
    /// file input is an empty value).
    pub async fn multipart(body: bytes::Bytes, boundary: String) -> Result<Fields, multer::Error> {
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        let mut fields = Vec::new();
        while let Some(field) = multipart.next_field().await? {
            let name = field.name().unwrap_or_default().to_string();
            fields.push((name, field.text().await?));
        }
        Ok(Fields(fields))
    }

    /// The first value of `key`, trimmed; empty when absent.
    pub fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .unwrap_or("")
    }

    /// The first value of `key` as given (not trimmed): passwords, PEM text.
    pub fn raw(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of `key`.
    pub fn all(&self, key: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// Whether checkbox `key` is ticked.
    pub fn on(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }

    /// The field `key`, or None when empty.
    pub fn some(&self, key: &str) -> Option<String> {
        Some(self.get(key))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    }
}

/// Why a form post is refused: it came from another site's page (its `Origin` is neither this
/// request's `Host` nor `public_url`, the address a proxy in front serves), or lacks the token
/// of `csrf`.
pub fn forged(
    headers: &HeaderMap,
    fields: &Fields,
    csrf: &str,
    public_url: Option<&str>,
) -> Option<&'static str> {
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        let host = headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        let public = public_url.is_some_and(|url| url.eq_ignore_ascii_case(origin));
        if !origin_host.eq_ignore_ascii_case(host) && !public {
            return Some("the form came from another site");
        }
    }
    let given = fields.get("csrf");
    if given.is_empty() || !bool::from(given.as_bytes().ct_eq(csrf.as_bytes())) {
        return Some("the form has no valid CSRF token (it may be from an old page: reload it)");
    }
    None
}

/// A form refused as forged: why.
pub struct Forged(&'static str);

impl IntoResponse for Forged {
    fn into_response(self) -> Response {
        plain(StatusCode::FORBIDDEN, &format!("Refused: {}.", self.0))
    }
}

/// The largest form the console reads (a certificate and its key are a few KiB).
const FORM_LIMIT: usize = 256 * 1024;

/// A form posted by a signed-in administrator, its CSRF token and origin checked; as an
/// extractor (the handler's last argument), it refuses a forged form with 403, sends a browser
/// without a session to the sign-in page, and reads URL-encoded and multipart bodies alike
/// (a file field's value is the file's text).
pub struct Posted {
    pub signed: Signed,
    pub form: Fields,
}

impl FromRequest<Arc<State>> for Posted {
    type Rejection = Response;

    async fn from_request(request: Request, state: &Arc<State>) -> Result<Posted, Response> {
        let (mut parts, body) = request.into_parts();
        let signed = Signed::from_request_parts(&mut parts, state).await?;
        let too_large = || plain(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large.");
        let body = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .map_err(|_| too_large())?;
        let boundary = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| multer::parse_boundary(v).ok());
        let form = match boundary {
            Some(boundary) => Fields::multipart(body, boundary).await.map_err(|e| {
                plain(
                    StatusCode::BAD_REQUEST,
                    &format!("The form cannot be read: {e}."),
                )
            })?,
            None => Fields::parse(&body),
        };
        let public_url = signed.public_url.as_deref();
        if let Some(why) = forged(&parts.headers, &form, &signed.csrf, public_url) {
            tracing::warn!(admin = %signed.admin, why, "console: form refused");
            return Err(Forged(why).into_response());
        }
        Ok(Posted { signed, form })
    }
}

/// A bare page with one message (no layout: the refusals before a session is known).
pub fn plain(status: StatusCode, message: &str) -> Response {
    let page = TEMPLATES
        .get_template("message.html")
        .and_then(|t| t.render(context! { title => "spgate", message => message, bare => true }))
        .unwrap_or_else(|_| message.to_string());
    (status, Html(page)).into_response()
}

/// Renders `template` with `ctx` inside the layout: the signed-in administrator, the CSRF token
/// for forms, and the open alerts (newest first) for the bar on top.
pub async fn page(state: &State, signed: &Signed, template: &str, ctx: Value) -> Response {
    let alerts = match open_alerts(&state.gateway().store).await {
        Ok(mut alerts) => {
            alerts.sort_by_key(|a| std::cmp::Reverse(a.time));
            alerts
        }
        Err(e) => {
            tracing::warn!(error = %crate::logging::chain(&e), "console: reading the alerts");
            Vec::new()
        }
    };
    let alerts: Vec<Value> = alerts
        .iter()
        .map(|a| {
            context! {
                source => a.connection.clone(),
                code => a.code.clone(),
                message => a.message.clone(),
                action => a.action.clone(),
                time => a.time.to_rfc3339(),
            }
        })
        .collect();
    let ctx = context! {
        admin => signed.admin.clone(),
        csrf => signed.csrf.clone(),
        alerts => alerts,
        ..ctx
    };
    render(StatusCode::OK, template, ctx)
}

/// Renders `template` alone.
pub fn render(status: StatusCode, template: &str, ctx: Value) -> Response {
    match TEMPLATES.get_template(template).and_then(|t| t.render(ctx)) {
        Ok(html) => (
            status,
            [
                (header::CACHE_CONTROL, "no-store"),
                (header::X_FRAME_OPTIONS, "DENY"),
            ],
            Html(html),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(template, error = %crate::logging::chain(&e), "console: rendering a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering {template}: {e}\n"),
            )
                .into_response()
        }
    }
}

/// A page of the layout with one message and a link onwards.
pub async fn message(
    state: &State,
    signed: &Signed,
    title: &str,
    text: &str,
    back: &str,
) -> Response {
    page(
        state,
        signed,
        "message.html",
        context! { title => title, message => text, back => back },
    )
    .await
}

/// The stored fields of record `name` of `section` (empty when there is none).
pub async fn stored(
    state: &State,
    section: crate::config::Section,
    name: &str,
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    match state.gateway().store.get(section, name).await {
        Ok(record) => Ok(record
            .and_then(|r| r.record.as_object().cloned())
            .unwrap_or_default()),
        Err(e) => Err(e.to_string()),
    }
}

/// A delete button's form: deletes record `name` of `section`, then back to `list`.
pub async fn delete_page(
    state: &State,
    signed: &Signed,
    section: crate::config::Section,
    name: &str,
    list: &str,
) -> Response {
    match crate::admin::records::delete_record(state, section, name).await {
        Ok(()) => {
            tracing::info!(admin = %signed.admin, what = %format!("{} {name}", section.one()), "console: deleted");
            see(list)
        }
        Err(f) => message(state, signed, "Not deleted", f.message(), list).await,
    }
}

/// Back to `to` after a change (POST, redirect, GET).
pub fn see(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// `text`, percent-encoded for a query value or a path segment.
pub fn enc(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The console page the `/` of the admin endpoint leads a browser to.
pub async fn home(Extract(_state): Extract<Arc<State>>) -> Response {
    see("/console/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }

    #[test]
    fn every_template_parses() {
        assert!(TEMPLATES.templates().count() >= 13);
    }

    #[test]
    fn forms_need_the_token_and_this_origin() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:9000"));
        let ok = Fields::parse(b"csrf=abc&x=1");
        assert!(forged(&headers, &ok, "abc", None).is_none());
        assert!(forged(&headers, &Fields::parse(b"x=1"), "abc", None).is_some());
        assert!(forged(&headers, &Fields::parse(b"csrf=abd"), "abc", None).is_some());
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(forged(&headers, &ok, "abc", None).is_some());
        // Behind a proxy: the Host is the proxy's upstream, the Origin the public address.
        let public = Some("https://spgate.example.com");
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://spgate.example.com"),
        );
        assert!(forged(&headers, &ok, "abc", public).is_none());
        assert!(forged(&headers, &ok, "abc", None).is_some());
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; spgate_console=xyz; b=2"),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }
}
