//! The browser sign-in of the Microsoft identity platform: the OAuth 2.0 authorization code
//! flow with PKCE at `GET /{tenant}/oauth2/v2.0/authorize`, as Entra answers it.
//!
//! - [`request`]: the query checked in Entra's order. A request that cannot be sent back to the
//!   app (unknown tenant 90002, unknown app 700016, no redirect URI 900971, a redirect URI the
//!   app did not register 50011) gets an error page; later failures go back to the redirect
//!   URI with `error`, `error_description` (`AADSTSnnnn: ...`) and `state`. Apps without a
//!   secret or certificate must send a `code_challenge` (9002325); `S256` and `plain` are
//!   accepted.
//! - [`reply`]: the redirect URI and the answer sent there. Loopback redirect URIs
//!   (`localhost`, `127.0.0.1`, `[::1]`) match on any port. `response_mode` is `query`
//!   (default), `fragment` or `form_post`.
//! - [`flow`]: the pages. The sim keeps a browser session (cookie `sim_session`, HttpOnly,
//!   Path=/) naming the accounts signed in in this browser. Without `prompt`, one account of
//!   the tenant signs in silently (single sign-on) and several get the account picker;
//!   `prompt=select_account` always shows the picker (with "Use another account"),
//!   `prompt=login` always the sign-in form, `prompt=consent` always consent, `prompt=none`
//!   never a page (`login_required` 50058, `interaction_required` 16000, `consent_required`
//!   65001). `login_hint` picks a signed-in account or fills in the form. A wrong password is
//!   50126, an unknown user 50034. The first sign-in of a user to an app (or one asking for
//!   more scopes) asks for consent; Cancel is `access_denied` 65004. An app revoked with the
//!   control API is `unauthorized_client` 7000112.
//! - [`pages`]: the HTML, with the stable element ids a WebDriver test clicks.
//! - [`code`]: the authorization code (single use 54005, ten minutes 70008, same client, same
//!   redirect URI 500112, PKCE verifier 50148/501481) and the id token of `openid` sign-ins.
//!
//! Redeemed at `POST /{tenant}/oauth2/v2.0/token` with `grant_type=authorization_code` (in
//! `super::auth`): the tokens carry the granted scopes, a refresh token only with
//! `offline_access`, an id token only with `openid`. Scopes are recorded and echoed, not
//! enforced on Graph calls: what a token may do there is the app's `access` and `sites`.
//! Every finished or failed sign-in is recorded for `GET /_sim/signins`.

mod code;
mod flow;
mod pages;
mod reply;
mod request;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;

pub use code::{granted_scope, id_token, redeem};
pub use reply::check_redirect_uri;

use super::auth::{self, Params};
use super::error::AuthError;
use super::state::Sim;
use flow::Flow;
use request::Request;

/// How long a browser session lasts without being used.
const BROWSER_IDLE: Duration = Duration::from_secs(24 * 3600);
/// Sign-ins kept for `GET /_sim/signins`, the oldest dropped first.
const MAX_RECORDS: usize = 1000;

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub async fn get(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params: Params =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    match request::check(&sim, &tenant, &params) {
        Ok(request) => flow::start(&sim, request, browser(&headers).as_deref()),
        Err(rejection) => rejection.into_response(),
    }
}

/// `POST /{tenant}/oauth2/v2.0/authorize`: what the sign-in pages' forms send.
pub async fn post(State(sim): State<Arc<Sim>>, headers: HeaderMap, body: Bytes) -> Response {
    let form = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    flow::step(&sim, form, browser(&headers).as_deref())
}

/// The browser session a request's `Cookie` names.
fn browser(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == flow::COOKIE)
        .map(|(_, value)| value.to_string())
}

/// An identity-platform error of the sign-in (HTTP 400 where it is a page).
fn aadsts(error: &'static str, code: u64, description: &str) -> AuthError {
    AuthError::new(StatusCode::BAD_REQUEST, error, code, description)
}

/// How the account of a sign-in was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PickedBy {
    /// Single sign-on: the browser's only account, or the one `login_hint` named.
    Sso,
    Picker,
    Form,
}

/// A sign-in as `GET /_sim/signins` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub user: String,
    pub client_id: String,
    /// The `prompt` parameter; `null` without one.
    pub prompt: Option<&'static str>,
    pub picked_by: PickedBy,
    /// The AADSTS code of a failed sign-in; absent when a code was issued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<u64>,
}

impl Record {
    fn new(request: &Request, user: &str, picked_by: PickedBy, error: Option<u64>) -> Record {
        Record {
            user: user.to_string(),
            client_id: request.client_id.clone(),
            prompt: request.prompt.as_str(),
            picked_by,
            error,
        }
    }
}

/// A browser the simulator knows by its session cookie.
struct Browser {
    /// Handed to the app as `session_state`.
    session_state: String,
    /// (tenant id, principal name) in the order they signed in.
    accounts: Vec<(String, String)>,
    seen: Instant,
}

/// Everything the browser sign-in keeps: waiting sign-ins, browser sessions, consents,
/// authorization codes, and the record of sign-ins.
#[derive(Default)]
pub struct SignIns {
    flows: DashMap<String, Flow>,
    browsers: DashMap<String, Browser>,
    /// (tenant id, client id, lower-case principal name) -> scopes consented.
    consents: DashMap<(String, String, String), HashSet<String>>,
    codes: DashMap<String, code::Code>,
    code_generation: AtomicU64,
    records: Mutex<VecDeque<Record>>,
}

impl SignIns {
    fn park(&self, flow: Flow) -> String {
        let id = auth::random_token("flow");
        self.flows.insert(id.clone(), flow);
        id
    }

    /// The waiting sign-in `id`, taken out; `None` when unknown or expired.
    fn take(&self, id: &str) -> Option<Flow> {
        self.flows
            .remove(id)
            .map(|(_, flow)| flow)
            .filter(|flow| flow.expires > Instant::now())
    }

    /// The accounts of `tenant_id` signed in in `browser`, in sign-in order.
    fn accounts(&self, browser: Option<&str>, tenant_id: &str) -> Vec<String> {
        let Some(mut session) = browser.and_then(|b| self.browsers.get_mut(b)) else {
            return Vec::new();
        };
        session.seen = Instant::now();
        session
            .accounts
            .iter()
            .filter(|(tenant, _)| tenant == tenant_id)
            .map(|(_, upn)| upn.clone())
            .collect()
    }

    /// Adds `upn` to `browser`'s session (a new one if it has none); returns the session id.
    fn remember(&self, browser: Option<&str>, tenant_id: &str, upn: &str) -> String {
        let account = (tenant_id.to_string(), upn.to_string());
        if let Some(id) = browser
            && let Some(mut session) = self.browsers.get_mut(id)
        {
            session.seen = Instant::now();
            if !session.accounts.contains(&account) {
                session.accounts.push(account);
            }
            return id.to_string();
        }
        let id = auth::random_token("session");
        self.browsers.insert(
            id.clone(),
            Browser {
                session_state: uuid::Uuid::new_v4().to_string(),
                accounts: vec![account],
                seen: Instant::now(),
            },
        );
        id
    }

    fn session_state(&self, browser: Option<&str>) -> String {
        browser
            .and_then(|b| self.browsers.get(b))
            .map(|s| s.session_state.clone())
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }

    fn consent_key(request: &Request, user: &str) -> (String, String, String) {
        (
            request.tenant_id.clone(),
            request.client_id.clone(),
            user.to_ascii_lowercase(),
        )
    }

    /// Whether `user` consented to every scope of `request`.
    fn has_consent(&self, request: &Request, user: &str) -> bool {
        self.consents
            .get(&Self::consent_key(request, user))
            .is_some_and(|granted| request.scopes.iter().all(|s| granted.contains(s)))
    }

    fn consent(&self, request: &Request, user: &str) {
        self.consents
            .entry(Self::consent_key(request, user))
            .or_default()
            .extend(request.scopes.iter().cloned());
    }

    fn record(&self, record: Record) {
        tracing::info!(user = %record.user, client_id = %record.client_id, picked_by = ?record.picked_by, error = ?record.error, "browser sign-in");
        let mut records = self.records.lock();
        if records.len() == MAX_RECORDS {
            records.pop_front();
        }
        records.push_back(record);
    }

    /// The sign-ins recorded, oldest first.
    pub fn records(&self) -> Vec<Record> {
        self.records.lock().iter().cloned().collect()
    }

    pub fn clear_records(&self) {
        self.records.lock().clear();
    }

    /// Drops expired sign-ins and codes and idle browser sessions.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.flows.retain(|_, f| f.expires > now);
        self.codes.retain(|_, c| !c.is_stale());
        self.browsers
            .retain(|_, b| now.duration_since(b.seen) < BROWSER_IDLE);
    }
}
