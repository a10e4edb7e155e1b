//! Administrators signing in and out. The sign-in form carries a token that must match a
//! cookie set with it (a page of another site cannot sign the browser in as someone else);
//! failures count towards the same lockout as partners' logins, under `admin:NAME`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use minijinja::context;
use subtle::ConstantTimeEq;

use super::{
    COOKIE, Fields, Posted, cookie, digest, now_ms, random_token, render, see, set_cookie,
};
use crate::admin::State;
use crate::state::console::AdminSession;

/// Password checks run at once (each takes ~19 MiB and a CPU for tens of milliseconds): a
/// flood of sign-ins waits its turn instead of exhausting the host.
static CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// The cookie that pairs a sign-in form with the browser that asked for it.
const FORM_COOKIE: &str = "spgate_console_signin";

#[derive(serde::Deserialize)]
pub struct Next {
    next: Option<String>,
}

/// Where to go after signing in: a console page, never another site.
fn next_page(next: &str) -> &str {
    if next.starts_with("/console/")
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
    {
        next
    } else {
        "/console/"
    }
}

fn form_page(
    state: &State,
    status: StatusCode,
    next: &str,
    name: &str,
    error: Option<String>,
    no_admins: bool,
) -> Response {
    let token = random_token();
    let mut response = render(
        status,
        "login.html",
        context! { title => "Sign in", token => token.clone(), next => next, name => name, error => error, no_admins => no_admins },
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(state, FORM_COOKIE, &token, Some(600)),
    );
    response
}

/// `GET /console/login`.
pub async fn form(Extract(state): Extract<Arc<State>>, Query(q): Query<Next>) -> Response {
    let no_admins = match state.gateway().store.admins().await {
        Ok(admins) => admins.is_empty(),
        Err(e) => {
            return super::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The state store does not answer: {e}"),
            );
        }
    };
    let next = next_page(q.next.as_deref().unwrap_or_default()).to_string();
    form_page(&state, StatusCode::OK, &next, "", None, no_admins)
}

/// `POST /console/login`: name, password, token.
pub async fn submit(
    Extract(state): Extract<Arc<State>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = Fields::parse(&body);
    let next = next_page(fields.get("next")).to_string();
    let paired = cookie(&headers, FORM_COOKIE).is_some_and(|c| {
        !fields.get("token").is_empty()
            && bool::from(c.as_bytes().ct_eq(fields.get("token").as_bytes()))
    });
    if !paired {
        let why = "The sign-in form has expired, or came from another site. Try again.";
        return form_page(
            &state,
            StatusCode::FORBIDDEN,
            &next,
            "",
            Some(why.into()),
            false,
        );
    }
    let name = fields.get("name").to_string();
    let password = fields.raw("password").to_string();
    let gateway = state.gateway();
    let who = format!("admin:{name}");
    let peer = peer.ip();
    if gateway.lockout.locked(&who, peer).await {
        tracing::warn!(admin = %name, %peer, "console: sign-in refused, locked out");
        let why = "Too many failed sign-ins: try again in 5 minutes, or ask another administrator to clear the lock (Activity, Lockouts).";
        return form_page(
            &state,
            StatusCode::TOO_MANY_REQUESTS,
            &next,
            &name,
            Some(why.into()),
            false,
        );
    }
    let hash = match gateway.store.admin_hash(&name).await {
        Ok(hash) => hash,
        Err(e) => {
            return super::plain(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("The state store does not answer: {e}"),
            );
        }
    };
    let Ok(_turn) = CHECKS.acquire().await else {
        return super::plain(StatusCode::SERVICE_UNAVAILABLE, "Shutting down.");
    };
    let matched = tokio::task::spawn_blocking(move || {
        crate::users::check_password(hash.as_deref(), &password)
    })
    .await
    .unwrap_or(false);
    if !matched {
        gateway.lockout.failed(&who, peer).await;
        tracing::warn!(admin = %name, %peer, "console: sign-in failed");
        return form_page(
            &state,
            StatusCode::UNAUTHORIZED,
            &next,
            &name,
            Some("Wrong name or password.".into()),
            false,
        );
    }
    gateway.lockout.succeeded(&who, peer).await;
    let value = random_token();
    let now = now_ms();
    let session = AdminSession {
        id: digest(&value),
        admin: name.clone(),
        csrf: random_token(),
        address: peer.to_string(),
        created_ms: now,
        seen_ms: now,
    };
    if let Err(e) = gateway
        .store
        .add_admin_session(&session, now - super::IDLE_MS)
        .await
    {
        return super::plain(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("The state store does not answer: {e}"),
        );
    }
    tracing::info!(admin = %name, %peer, "console: signed in");
    let mut response = see(&next);
    let headers = response.headers_mut();
    headers.append(header::SET_COOKIE, set_cookie(&state, COOKIE, &value, None));
    headers.append(
        header::SET_COOKIE,
        set_cookie(&state, FORM_COOKIE, "", Some(0)),
    );
    response
}

/// `POST /console/logout`.
pub async fn logout(
    Extract(state): Extract<Arc<State>>,
    Posted { signed, .. }: Posted,
) -> Response {
    if let Err(e) = state
        .gateway()
        .store
        .end_admin_session(&signed.id, now_ms() - super::IDLE_MS)
        .await
    {
        tracing::warn!(error = %crate::logging::chain(&e), "console: ending a session");
    }
    tracing::info!(admin = %signed.admin, "console: signed out");
    let mut response = see("/console/login");
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(&state, COOKIE, "", Some(0)));
    response.into_response()
}
