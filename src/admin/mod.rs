//! The admin HTTP endpoint (`[admin] listen`): health and readiness probes, Prometheus
//! metrics, a JSON API over alerts, connections and sync jobs, and a small server-rendered
//! status page.
//!
//! `/healthz`, `/readyz` and `/metrics` are open; everything else needs the configured token,
//! as `Authorization: Bearer TOKEN` (or, for reading, HTTP Basic with the token as the password,
//! so that a browser can open the status page; changes need Bearer). A change whose `Origin` is
//! not this endpoint is refused (another site's page posting here). Without a token (allowed
//! only on loopback) the API is open to local callers, and answers only requests whose `Host`
//! is a loopback address or `localhost` (DNS rebinding).
//!
//! The web console (`/console/`) signs administrators in with accounts of the store and a
//! session cookie instead of the token: [`console`].
//!
//! - [`metrics`]: what is counted and how it is exposed; [`api`]: the JSON API;
//!   [`page`]: the status page.

pub mod api;
pub mod console;
pub mod metrics;
pub mod openapi;
pub mod page;
pub mod records;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State as Extract};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::session::{Gateway, Shared};
use crate::sync::Outcome;
use crate::sync::store::Store;

/// What the admin endpoint reads.
pub struct State {
    /// The gateway in force (replaced by reloads).
    pub shared: Arc<Shared>,
    /// Set once every listener is bound.
    pub listening: AtomicBool,
    pub started: Instant,
}

impl State {
    pub fn new(shared: Arc<Shared>) -> State {
        State {
            shared,
            listening: AtomicBool::new(false),
            started: Instant::now(),
        }
    }

    /// The sync jobs' state (in the state store).
    pub fn sync_store(&self) -> Store {
        Store::new(self.gateway().store.clone())
    }

    /// The gateway in force.
    pub fn gateway(&self) -> Arc<Gateway> {
        self.shared.current()
    }

    /// Why the gateway is not ready; empty when it is.
    pub async fn not_ready(&self) -> Vec<String> {
        let gateway = self.gateway();
        let mut reasons = Vec::new();
        if !self.listening.load(Ordering::Relaxed) {
            reasons.push("listeners are not bound yet".to_string());
        }
        let full = gateway
            .config
            .admin
            .as_ref()
            .is_none_or(|a| a.ready_needs_health);
        if !full {
            return reasons;
        }
        for (name, connection) in &gateway.connections {
            if let Some(alert) = connection.health.alert() {
                reasons.push(format!(
                    "connection {name} is disabled: {} ({})",
                    alert.message, alert.code
                ));
            }
        }
        let store = self.sync_store();
        for job in gateway.config.syncs.iter().filter(|j| j.enabled) {
            if let Ok(runs) = store.runs(&job.name, 1).await
                && let Some(last) = runs.first()
                && matches!(last.outcome, Some(Outcome::Aborted | Outcome::Partial))
            {
                reasons.push(format!(
                    "sync job {} last run {}: {}",
                    job.name,
                    last.outcome.map(Outcome::as_str).unwrap_or_default(),
                    last.message.as_deref().unwrap_or_default()
                ));
            }
        }
        reasons
    }
}

/// Serves the admin endpoint on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let protected = Router::new()
        .route("/", get(page::status))
        .route("/api/v1/alerts", get(api::alerts))
        .route("/api/v1/alerts/history", get(api::alert_history))
        .route("/api/v1/cluster", get(api::cluster))
        .route("/api/v1/audit", get(api::audit))
        .route(
            "/api/v1/connections",
            get(api::connections).post(records::create_connection),
        )
        .route(
            "/api/v1/connections/{name}",
            get(records::get_connection)
                .put(records::put_connection)
                .delete(records::delete_connection),
        )
        .route(
            "/api/v1/connections/{name}/test",
            post(records::test_connection),
        )
        .route("/api/v1/connections/{name}/enable", post(api::enable))
        .route("/api/v1/syncs", get(api::syncs).post(records::create_sync))
        .route(
            "/api/v1/syncs/{name}",
            get(records::get_sync)
                .put(records::put_sync)
                .delete(records::delete_sync),
        )
        .route("/api/v1/syncs/{name}/runs", get(api::sync_runs))
        .route("/api/v1/syncs/{name}/run", post(api::run_sync))
        .route("/api/v1/reload", post(api::reload))
        .route("/api/v1/lockouts", get(api::lockouts))
        .route(
            "/api/v1/users",
            get(records::list_users).post(records::create_user),
        )
        .route(
            "/api/v1/users/{name}",
            get(records::get_user)
                .put(records::put_user)
                .delete(records::delete_user),
        )
        .route("/api/v1/openapi.json", get(openapi::serve))
        .route("/api/v1/sessions", get(records::sessions))
        .route("/api/v1/sessions/{id}", delete(records::kick))
        .route("/api/v1/lockouts/clear", post(api::clear_all_lockouts))
        .route("/api/v1/lockouts/{user}/clear", post(api::clear_lockouts))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(api::metrics))
        .merge(protected)
        .merge(
            console::routes()
                .route_layer(middleware::from_fn_with_state(state.clone(), console_guard)),
        )
        .with_state(state.clone());
    let tls = state
        .gateway()
        .config
        .admin
        .as_ref()
        .and_then(|a| a.tls.clone());
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&tls.cert, &tls.key)
        .await
        .map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!(
                    "admin.tls: {} / {}: {e}",
                    tls.cert.display(),
                    tls.key.display()
                ),
            )
        })?;
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopping.graceful_shutdown(Some(std::time::Duration::from_secs(5)));
    });
    axum_server::from_tcp_rustls(listener.into_std()?, config)?
        .handle(handle)
        .serve(app)
        .await
}

async fn readyz(Extract(state): Extract<Arc<State>>) -> Response {
    let reasons = state.not_ready().await;
    if reasons.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready:\n{}\n", reasons.join("\n")),
        )
            .into_response()
    }
}

/// The token a request presents: Bearer; or, to read (GET, HEAD), Basic with the token as the
/// password, which is what a browser opening the status page sends. A browser also sends cached
/// Basic credentials with a form another site posts here, so changes need Bearer.
fn presented(request: &Request) -> Option<String> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    if let Some(token) = value.strip_prefix("Bearer ") {
        return Some(token.trim().to_string());
    }
    if !request.method().is_safe() {
        return None;
    }
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    text.split_once(':')
        .map(|(_, password)| password.to_string())
}

/// Why a browser-made request must be refused, if it must: a change whose `Origin` is not this
/// endpoint (another site's page posting here), or, when the API is open (no token, loopback
/// only), a `Host` that is not a loopback address or `localhost` (a page whose name was made to
/// resolve to 127.0.0.1: DNS rebinding).
fn forged(request: &Request, open: bool) -> Option<&'static str> {
    let header = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
    };
    let host = header(header::HOST).unwrap_or_default();
    if !request.method().is_safe()
        && let Some(origin) = header(header::ORIGIN)
    {
        let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
        if !origin_host.eq_ignore_ascii_case(host) {
            return Some("the request's Origin is not this endpoint");
        }
    }
    if open && !loopback_host(host) {
        return Some("without a token the API answers only to a loopback Host");
    }
    None
}

/// Whether `host` (a `Host` header) is `localhost` or a loopback address, with or without a
/// port.
fn loopback_host(host: &str) -> bool {
    let name = host.rsplit_once(':').map_or(host, |(name, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            name
        } else {
            host
        }
    });
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The console's guard against DNS rebinding: an endpoint without a token (loopback only)
/// answers the console only to a loopback `Host`, as it does the API.
async fn console_guard(
    Extract(state): Extract<Arc<State>>,
    request: Request,
    next: Next,
) -> Response {
    let open = state
        .gateway()
        .config
        .admin
        .as_ref()
        .is_some_and(|a| a.token.is_none());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if open && !loopback_host(host) {
        return (
            StatusCode::FORBIDDEN,
            "without a token the admin endpoint answers only to a loopback Host\n",
        )
            .into_response();
    }
    next.run(request).await
}

async fn authorize(Extract(state): Extract<Arc<State>>, request: Request, next: Next) -> Response {
    let gateway = state.gateway();
    let Some(admin) = &gateway.config.admin else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if let Some(why) = forged(&request, admin.token.is_none()) {
        tracing::warn!(method = %request.method(), path = %request.uri().path(), why, "admin request refused");
        return (StatusCode::FORBIDDEN, format!("{why}\n")).into_response();
    }
    if let Some(token) = &admin.token {
        let ok = presented(&request)
            .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())));
        if !ok {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"spgate admin\"")],
                "the admin API needs the admin token (Authorization: Bearer TOKEN)\n",
            )
                .into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str, host: &str, origin: Option<&str>) -> Request {
        let mut builder = Request::builder()
            .method(method)
            .uri("/api/v1/reload")
            .header(header::HOST, host);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn changes_from_another_origin_are_forged() {
        let here = "10.0.0.5:9090";
        assert!(forged(&request("POST", here, Some("https://evil.example")), false).is_some());
        assert!(forged(&request("POST", here, Some("http://10.0.0.5:9090")), false).is_none());
        // Tools send no Origin; reading is not a change.
        assert!(forged(&request("POST", here, None), false).is_none());
        assert!(forged(&request("GET", here, Some("https://evil.example")), false).is_none());
    }

    #[test]
    fn an_open_api_answers_only_loopback_hosts() {
        for host in [
            "127.0.0.1:9090",
            "localhost:9090",
            "[::1]:9090",
            "LOCALHOST",
        ] {
            assert!(
                forged(&request("GET", host, None), true).is_none(),
                "{host}"
            );
        }
        for host in ["rebound.example:9090", "10.0.0.5:9090", ""] {
            assert!(
                forged(&request("GET", host, None), true).is_some(),
                "{host}"
            );
        }
    }
}
