//! `spgate sim`: an offline Microsoft Graph and Microsoft identity platform simulator.
//!
//! It serves the subset of Graph that spgate speaks (shared/GRAPH.md sections 1-8): tokens
//! (secret, certificate assertion, refresh rotation, device code, the browser sign-in with
//! authorization code and PKCE, its pages and single sign-on), sites and drives, items by id
//! and path, paging, downloads with ranges, simple and session uploads, folders, move/rename,
//! delete, copy, delta, and Graph-style errors, plus a control API under `/_sim/` for tests
//! (statistics, injected faults, revocation, locks). Content lives on disk and is streamed;
//! metadata lives in memory for the life of the process. It can sit at a simulated distance
//! (latency, jitter, bandwidth per connection), like SharePoint Online seen from far away.
//!
//! - [`state`]: the world and everything issued; [`drive`]: one library's tree and change log;
//! - [`auth`]: token endpoints and bearer checks; [`graph`]: URL grammar and dispatch;
//! - [`authorize`]: the browser sign-in (`/oauth2/v2.0/authorize`): request checks, sign-in
//!   form, account picker, consent, browser sessions, authorization codes, id tokens;
//! - [`sites`], [`items`], [`content`], [`upload`], [`delta`]: the Graph handlers;
//! - [`placement`]: uploads by path and the parent folders they create;
//! - [`control`]: `/_sim/`; [`stats`]: counting; [`error`]: error bodies; [`names`]: name rules;
//! - [`link`]: the simulated distance and the latency a request pays; [`listener`]: accepting
//!   connections and holding them to the bandwidth;
//! - [`seed`]: the seed file and the default world.

mod auth;
mod authorize;
mod content;
mod control;
mod delta;
mod drive;
mod error;
mod graph;
mod items;
mod link;
mod listener;
mod names;
mod placement;
mod seed;
mod sites;
mod state;
mod stats;
mod upload;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::net::TcpListener;

pub use link::{Bandwidth, Link, Profile};
pub use seed::Seed;
pub use state::Sim;

use error::{GraphError, REQUEST_IDS};
use listener::{Listener, Peer};

/// Errors that stop the simulator from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid seed: {0}")]
    Seed(String),
}

/// How to run the simulator.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// Base of every absolute URL handed out; default `http://` + the bound address.
    pub public_url: Option<String>,
    pub seed: Option<PathBuf>,
    /// Where content is stored; default a temporary directory removed at exit.
    pub data: Option<PathBuf>,
    /// The simulated distance to clients; faults may override it at run time.
    pub link: Link,
}

/// Binds, prints `listening on http://ADDR` on stdout, and serves until `shutdown` completes.
pub async fn serve(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|source| Error::Io {
            what: format!("binding {}", options.listen),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| Error::Io {
        what: "reading the bound address".into(),
        source,
    })?;
    let public_url = options
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{local}"))
        .trim_end_matches('/')
        .to_string();
    let (seed, seed_dir) = match &options.seed {
        Some(path) => (
            Seed::load(path)?,
            path.parent().map(PathBuf::from).unwrap_or_default(),
        ),
        None => (Seed::demo(), PathBuf::new()),
    };
    let temp;
    let data = match &options.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("spgate-sim-")
                .tempdir()
                .map_err(|source| Error::Io {
                    what: "creating a data directory".into(),
                    source,
                })?;
            temp.path().to_path_buf()
        }
    };
    let sim = Sim::build(&seed, &seed_dir, public_url.clone(), &data)?.with_link(options.link);
    let sim = Arc::new(sim);
    println!("listening on http://{local}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let link = options.link;
    tracing::info!(%local, %public_url, data = %data.display(), latency = ?link.latency, jitter = ?link.jitter, bandwidth_bytes_per_s = link.bandwidth.bytes_per_s(), "simulator started");
    run(listener, sim, shutdown).await
}

/// Serves `sim` on an already-bound listener until `shutdown` completes, at `sim`'s distance.
pub async fn run(
    listener: TcpListener,
    sim: Arc<Sim>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let sweeper = tokio::spawn(housekeeping(sim.clone()));
    let listener = Listener::new(listener, sim.network.clone());
    let app = router(sim);
    let served = axum::serve(listener, app.into_make_service_with_connect_info::<Peer>())
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Io {
            what: "serving".into(),
            source,
        });
    sweeper.abort();
    served
}

pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(auth::token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(auth::devicecode))
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(authorize::get).post(authorize::post),
        )
        .route("/v1.0/{*rest}", any(graph::dispatch))
        .route("/_layouts/15/download.aspx", get(content::download))
        .route("/_upload/{id}", any(upload::session))
        .route("/_monitor/{job}", get(items::monitor))
        .merge(control::routes())
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(sim.clone(), observe))
        .with_state(sim)
}

async fn not_found() -> Response {
    GraphError::new(
        StatusCode::NOT_FOUND,
        "itemNotFound",
        "The requested resource was not found.",
    )
    .into_response()
}

/// Largest total of request header bytes accepted, like IIS/SharePoint front ends.
const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Counts, delays remote requests by the simulated distance, injects faults, tags with
/// request ids, refuses huge headers and remote control calls, and logs one line per request.
async fn observe(
    State(sim): State<Arc<Sim>>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    request: Request<Body>,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let kind = stats::classify(&method, &path);
    let request_id = uuid::Uuid::new_v4().to_string();
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    let back = match kind {
        Some(_) => sim.network.arrive(&peer.connection).await,
        None => Duration::ZERO,
    };
    let ids = (request_id.clone(), client_request_id.clone());
    let mut response = REQUEST_IDS
        .scope(ids, async {
            if header_bytes > MAX_HEADER_BYTES {
                return GraphError::new(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "invalidRequest",
                    "Request header fields are too large.",
                )
                .into_response();
            }
            let Some(kind) = kind else {
                if !peer.addr.ip().is_loopback() {
                    return GraphError::access_denied().into_response();
                }
                return next.run(request).await;
            };
            sim.stats.count(kind);
            if !stats::is_identity(kind)
                && let Some(fault) = injected_fault(&sim)
            {
                let mut response = fault.into_response();
                if !content::drain(request.into_body()).await {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return response;
            }
            next.run(request).await
        })
        .await;
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert("request-id", v);
    }
    if let Some(v) = client_request_id.and_then(|v| HeaderValue::from_str(&v).ok()) {
        headers.insert("client-request-id", v);
    }
    if !back.is_zero() {
        tokio::time::sleep(back).await;
    }
    tracing::debug!(%method, kind = kind.unwrap_or("control"), status = response.status().as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    response
}

fn injected_fault(sim: &Sim) -> Option<GraphError> {
    let n = sim.stats.api_requests.fetch_add(1, Ordering::Relaxed) + 1;
    let faults = sim.faults.lock().clone();
    if let Some(every) = faults.throttle_every.filter(|e| *e > 0)
        && n.is_multiple_of(every)
    {
        sim.stats.throttled.fetch_add(1, Ordering::Relaxed);
        return Some(sim.throttle_error(faults.retry_after_s.unwrap_or(1)));
    }
    if let Some(every) = faults.fail_5xx_every.filter(|e| *e > 0)
        && n.is_multiple_of(every)
    {
        let (status, code) = [
            (StatusCode::INTERNAL_SERVER_ERROR, "generalException"),
            (StatusCode::BAD_GATEWAY, "badGateway"),
            (StatusCode::GATEWAY_TIMEOUT, "gatewayTimeout"),
        ][((n / every) % 3) as usize];
        return Some(GraphError::new(
            status,
            code,
            "An unexpected error occurred (injected by the simulator).",
        ));
    }
    None
}

/// Drops expired upload sessions, tokens, device codes and sign-in state once a minute.
async fn housekeeping(sim: Arc<Sim>) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    loop {
        tick.tick().await;
        upload::sweep(&sim);
        sim.tokens.retain(|_, t| sim.is_token_live(t));
        sim.device_codes.retain(|_, d| d.expires > Instant::now());
        sim.sign_ins.sweep();
    }
}
