//! Connections: the list with each one's state, the form (the three credential kinds), saving
//! (which tests the connection and enables a disabled one), "Sign in with Microsoft" (the
//! authorization-code flow with PKCE, `prompt=select_account`).

use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::{Value, context};
use serde_json::{Map, Value as Json, json};

use super::{Fields, Posted, Signed, delete_page, enc, message, now_ms, page, see, ser, stored};
use crate::admin::State;
use crate::admin::records::save_record;
use crate::config::{Credential, Pem, Section};
use crate::connections::auth::{TokenError, browser_sign_in, redeem};
use crate::connections::certificate;
use crate::session::control::Change;
use crate::state::console::Flow;

/// A sign-in started in the browser must come back within this.
const FLOW_MS: i64 = 15 * 60 * 1000;

/// The cookie that ties a sign-in to the browser that started it. SameSite=Lax: the browser
/// sends it when Microsoft sends it back (a top-level GET from another site), where the
/// session's Strict cookie is not sent.
const FLOW_COOKIE: &str = "spgate_console_flow";
const FLOW_PATH: &str = "/console/oauth";

/// The credential kind of a connection's record: `delegated`, `secret` or `certificate`.
fn kind(record: &Map<String, Json>) -> &'static str {
    if record.contains_key("certificate") {
        "certificate"
    } else if record.contains_key("auth") {
        "delegated"
    } else {
        "secret"
    }
}

/// Where browsers reach this endpoint: `[admin] public_url`, else the request's scheme and
/// `Host`.
fn base_url(state: &State, headers: &HeaderMap) -> String {
    let gateway = state.gateway();
    let admin = gateway.config.admin.as_ref();
    if let Some(url) = admin.and_then(|a| a.public_url.clone()) {
        return url;
    }
    let scheme = if admin.is_some_and(|a| a.tls.is_some()) {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("{scheme}://{host}")
}

/// The console's redirect URI, to register with the app (platform "Mobile and desktop
/// applications": the console redeems the code as a public client, with PKCE).
pub fn redirect_uri(state: &State, headers: &HeaderMap) -> String {
    format!("{}/console/oauth/callback", base_url(state, headers))
}

/// `GET /console/connections`.
pub async fn list(Extract(state): Extract<Arc<State>>, signed: Signed) -> Response {
    let gateway = state.gateway();
    let records = match gateway.store.list(Section::Connections).await {
        Ok(records) => records,
        Err(e) => {
            return message(&state, &signed, "Connections", &e.to_string(), "/console/").await;
        }
    };
    let grants = gateway.store.grants().await.unwrap_or_default();
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            let fields = r.record.as_object().cloned().unwrap_or_default();
            let live = gateway.connections.get(&r.name);
            let alert = live.and_then(|c| c.health.alert());
            let account = grants
                .iter()
                .find(|(c, _)| *c == r.name)
                .map(|(_, g)| g.account.clone().unwrap_or_else(|| "signed in".into()));
            context! {
                name => r.name.clone(),
                kind => kind(&fields),
                site => ser(fields.get("site")),
                drive => fields.get("drive").and_then(Json::as_str).unwrap_or("Documents"),
                state => if live.is_none() { "not in force" } else if alert.is_some() { "disabled" } else { "enabled" },
                alert => alert.map(|a| format!("{} ({})", a.message, a.code)),
                account => account,
                managed_by => r.managed_by.clone(),
            }
        })
        .collect();
    page(
        &state,
        &signed,
        "connections.html",
        context! { title => "Connections", nav => "connections", rows => rows },
    )
    .await
}

/// `GET /console/connections/new`.
pub async fn new(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Query(prefill): Query<Prefill>,
) -> Response {
    let mut fields = Map::new();
    let prefilled = prefill.apply(&mut fields);
    let extra = context! { prefilled => prefilled };
    form(&state, &signed, None, fields, None, Some(extra)).await
}

/// `?site=URL&drive=LIBRARY`: a site and library chosen in the picker, shown in the form over
/// the stored ones; nothing is saved until the form is.
#[derive(serde::Deserialize, Default)]
pub struct Prefill {
    site: Option<String>,
    drive: Option<String>,
}

impl Prefill {
    /// Puts the chosen site and library in `fields`: whether there was any.
    fn apply(self, fields: &mut Map<String, Json>) -> bool {
        let mut any = false;
        for (key, value) in [("site", self.site), ("drive", self.drive)] {
            if let Some(value) = value.filter(|v| !v.trim().is_empty()) {
                fields.insert(key.into(), Json::String(value.trim().to_string()));
                any = true;
            }
        }
        any
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ShowQuery {
    /// Just saved or asked to test: run the test and show its result.
    test: Option<String>,
    signed_in: Option<String>,
}

/// `GET /console/connections/{name}`.
pub async fn show(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ShowQuery>,
    Query(prefill): Query<Prefill>,
) -> Response {
    let record = match state.gateway().store.get(Section::Connections, &name).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            return message(
                &state,
                &signed,
                "Not found",
                &format!("There is no connection {name}."),
                "/console/connections",
            )
            .await;
        }
        Err(e) => {
            return message(
                &state,
                &signed,
                "Connections",
                &e.to_string(),
                "/console/connections",
            )
            .await;
        }
    };
    let mut fields = record.record.as_object().cloned().unwrap_or_default();
    // A connection the configuration file declares is shown as stored, read-only.
    let prefilled = record.managed_by.is_none() && prefill.apply(&mut fields);
    let test = if q.test.is_some() || q.signed_in.is_some() {
        Some(probe(&state, &name).await)
    } else {
        None
    };
    let extra = context! {
        managed_by => record.managed_by,
        has_secret => record.secret.is_some(),
        revision => record.revision,
        updated_at => record.updated_at,
        redirect_uri => redirect_uri(&state, &headers),
        signed_in => q.signed_in.is_some(),
        prefilled => prefilled,
    };
    form(&state, &signed, Some(name), fields, test, Some(extra)).await
}

/// Signs in, finds the library and lists its root with the connection in force.
async fn probe(state: &State, name: &str) -> Value {
    let gateway = state.gateway();
    let Some(config) = gateway.config.connection(name) else {
        return context! { ok => false, error => "The connection is not in force (see the alerts)." };
    };
    let delegated = matches!(config.credential, Credential::DeviceCode);
    if delegated && matches!(gateway.store.grant(name).await, Ok(None)) {
        return context! { ok => false, error => "Nobody has signed in yet: use Sign in with Microsoft (or `spgate connect` on a host without a browser)." };
    }
    match crate::operate::probe(config, &gateway.paths()).await {
        Ok((library, items)) => context! { ok => true, library => library, items => items },
        Err(error) => context! { ok => false, error => error },
    }
}

/// Renders the connection form: `name` None for a new one.
async fn form(
    state: &State,
    signed: &Signed,
    name: Option<String>,
    fields: Map<String, Json>,
    test: Option<Value>,
    extra: Option<Value>,
) -> Response {
    let gateway = state.gateway();
    let live = name.as_ref().and_then(|n| gateway.connections.get(n));
    let alert = live.and_then(|c| c.health.alert());
    let grant = match &name {
        Some(n) => gateway.store.grant(n).await.ok().flatten(),
        None => None,
    };
    let site_path = fields
        .get("site")
        .and_then(Json::as_str)
        .and_then(|s| s.split_once("://"))
        .map(|(_, rest)| rest.to_string());
    let config = name.as_ref().and_then(|n| gateway.config.connection(n));
    let cert_facts = match &name {
        Some(n) if kind(&fields) == "certificate" => certificate_pem(state, n).await.map(|pem| {
            certificate::facts(&pem).map_err(|e| format!("the certificate cannot be read: {e}"))
        }),
        _ => None,
    };
    let (cert_facts, cert_problem) = match cert_facts {
        Some(Ok(facts)) => (Some(facts), None),
        Some(Err(why)) => (None, Some(why)),
        None => (None, None),
    };
    let cert_facts = cert_facts.map(ser);
    let ctx = context! {
        cert_problem => cert_problem,
        title => name.clone().unwrap_or_else(|| "New connection".into()),
        nav => "connections",
        name => name,
        record => ser(&fields),
        kind => kind(&fields),
        cert_path => path_of(fields.get("certificate"), "cert"),
        key_path => path_of(fields.get("certificate"), "key"),
        cert_facts => cert_facts,
        state => if live.is_none() { "not in force" } else if alert.is_some() { "disabled" } else { "enabled" },
        alert => alert.map(|a| context! { code => a.code, message => a.message, action => a.action, time => a.time.to_rfc3339() }),
        grant => grant.map(|g| context! { account => g.account, updated_at => g.updated_at }),
        test => test,
        consent_url => config.map(|c| format!(
            "{}/{}/adminconsent?client_id={}",
            c.authority, c.tenant, enc(&c.client_id)
        )),
        site_lookup => config.map(|c| format!(
            "GET {}/v1.0/sites/{}:{}?$select=id",
            c.graph_url, c.site.host, c.site.path
        )),
        grant_call => config.map(|c| format!(
            "POST {}/v1.0/sites/{{site-id}}/permissions\nContent-Type: application/json\n\n{}",
            c.graph_url,
            json!({"roles": ["write"], "grantedToIdentities": [{"application": {"id": c.client_id, "displayName": "spgate"}}]})
        )),
        site_path => site_path,
        ..extra.unwrap_or_default()
    };
    page(state, signed, "connection.html", ctx).await
}

/// The `field` (`cert` or `key`) of a record's certificate when it names a file, for the
/// form's path inputs (text is not shown there).
fn path_of(certificate: Option<&Json>, field: &str) -> Option<String> {
    let value = certificate?.get(field)?.as_str()?;
    (!Pem::is_text(value)).then(|| value.to_string())
}

/// The record a connection form describes, over the stored `fields` (kept: keys the form
/// does not show, such as limits).
fn record(form: &Fields, mut fields: Map<String, Json>) -> Map<String, Json> {
    for key in [
        "tenant",
        "client_id",
        "site",
        "drive",
        "authority",
        "graph_url",
    ] {
        match form.some(key) {
            Some(value) => {
                fields.insert(key.into(), Json::String(value));
            }
            None => {
                fields.remove(key);
            }
        }
    }
    let stored_cert = fields
        .get("certificate")
        .and_then(|c| c.get("cert"))
        .filter(|c| c.as_str().is_some_and(Pem::is_text))
        .cloned();
    for key in ["auth", "certificate", "client_secret"] {
        fields.remove(key);
    }
    // The first of an uploaded file, pasted text and a path on the host.
    let given = |keys: [&str; 3]| {
        keys.into_iter()
            .map(|k| form.raw(k).trim())
            .find(|v| !v.is_empty())
            .map(|v| json!(v))
    };
    match form.get("kind") {
        "delegated" => {
            fields.insert("auth".into(), json!("delegated"));
        }
        "certificate" => {
            let mut certificate = Map::new();
            // Left out, a certificate kept as text stays; a key kept sealed stays too
            // (`Change` keeps the stored secret of a certificate without `key`).
            if let Some(cert) = given(["cert_upload", "cert_pem", "cert"]).or(stored_cert) {
                certificate.insert("cert".into(), cert);
            }
            if let Some(key) = given(["key_upload", "key_pem", "key"]) {
                certificate.insert("key".into(), key);
            }
            fields.insert("certificate".into(), Json::Object(certificate));
        }
        _ => {
            if !form.raw("client_secret").is_empty() {
                fields.insert("client_secret".into(), json!(form.raw("client_secret")));
            }
        }
    }
    fields
}

/// The form with a new key pair in place of the certificate and key it gave, when it asks
/// for one ("Generate a new key pair").
async fn generated(mut form: Fields, name: &str) -> Result<Fields, String> {
    if form.get("kind") != "certificate" || !form.on("generate") {
        return Ok(form);
    }
    let subject = format!("spgate {name}");
    let (cert, key) = tokio::task::spawn_blocking(move || certificate::generate(&subject))
        .await
        .map_err(|e| e.to_string())
        .and_then(|made| made)
        .map_err(|e| format!("No key pair could be made: {e}"))?;
    for field in ["cert_upload", "cert", "key_upload", "key"] {
        form.set(field, String::new());
    }
    form.set("cert_pem", cert);
    form.set("key_pem", key.expose().to_string());
    Ok(form)
}

/// `GET /console/connections/{name}/certificate.pem`: the connection's certificate, to upload
/// to the app registration.
pub async fn certificate_file(
    Extract(state): Extract<Arc<State>>,
    _: Signed,
    Path(name): Path<String>,
) -> Response {
    let Some(pem) = certificate_pem(&state, &name).await else {
        return (StatusCode::NOT_FOUND, "This connection has no certificate.").into_response();
    };
    let disposition = format!("attachment; filename=\"spgate-{name}.pem\"");
    (
        [
            (header::CONTENT_TYPE, "application/x-pem-file".to_string()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        pem,
    )
        .into_response()
}

/// The PEM of connection `name`'s certificate: the text its record keeps, else the file of the
/// connection in force.
async fn certificate_pem(state: &State, name: &str) -> Option<Vec<u8>> {
    let gateway = state.gateway();
    let record = gateway.store.get(Section::Connections, name).await.ok()??;
    let text = record.record.get("certificate")?.get("cert")?.as_str()?;
    if Pem::is_text(text) {
        return Some(text.as_bytes().to_vec());
    }
    match &gateway.config.connection(name)?.credential {
        Credential::Certificate { cert, .. } => cert.read().ok(),
        _ => None,
    }
}

/// `POST /console/connections`: a new connection.
pub async fn create(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Posted { signed, form }: Posted,
) -> Response {
    let name = form.get("name").to_string();
    let form = match generated(form, &name).await {
        Ok(form) => form,
        Err(e) => return message(&state, &signed, "Connections", &e, "/console/connections").await,
    };
    let fields = record(&form, Map::new());
    store(&state, &signed, &headers, name, fields, true).await
}

/// `POST /console/connections/{name}`: saves it (enabling it again, changed or not), then
/// shows it with the result of a test.
pub async fn save(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let stored = match stored(&state, Section::Connections, &name).await {
        Ok(fields) => fields,
        Err(e) => return message(&state, &signed, "Connections", &e, "/console/connections").await,
    };
    let form = match generated(form, &name).await {
        Ok(form) => form,
        Err(e) => return message(&state, &signed, "Connections", &e, "/console/connections").await,
    };
    let fields = record(&form, stored);
    store(&state, &signed, &headers, name, fields, false).await
}

async fn store(
    state: &State,
    signed: &Signed,
    headers: &HeaderMap,
    name: String,
    fields: Map<String, Json>,
    create: bool,
) -> Response {
    let change = Change {
        section: Section::Connections,
        name: name.clone(),
        fields: fields.clone(),
        create,
    };
    match save_record(state, change).await {
        Ok(_) => {
            tracing::info!(admin = %signed.admin, connection = %name, "console: connection saved");
            see(&format!("/console/connections/{}?test=1", enc(&name)))
        }
        Err(failure) => {
            let mut shown = fields;
            crate::config::take_secret(&mut shown);
            let error = context! { message => failure.message(), field => failure.field() };
            let has_secret = match state.gateway().store.get(Section::Connections, &name).await {
                Ok(record) => record.is_some_and(|r| r.secret.is_some()),
                Err(_) => false,
            };
            let extra = context! {
                error => error,
                new_name => name.clone(),
                has_secret => has_secret,
                redirect_uri => redirect_uri(state, headers),
            };
            let shown_name = (!create).then_some(name);
            let mut response = form(state, signed, shown_name, shown, None, Some(extra)).await;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
    }
}

/// `POST /console/connections/{name}/delete`.
pub async fn delete(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    delete_page(
        &state,
        &signed,
        Section::Connections,
        &name,
        "/console/connections",
    )
    .await
}

/// `POST /console/connections/{name}/enable`: for a connection the configuration file
/// declares (the console cannot save it), enables it again.
pub async fn enable(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    let gateway = state.gateway();
    if let Some(connection) = gateway.connections.get(&name)
        && let Err(e) = connection
            .health
            .enable(&format!("enabled in the console by {}", signed.admin))
            .await
    {
        return message(
            &state,
            &signed,
            "Not enabled",
            &e.to_string(),
            "/console/connections",
        )
        .await;
    }
    see(&format!("/console/connections/{}?test=1", enc(&name)))
}

/// `POST /console/connections/{name}/test`.
pub async fn test(Path(name): Path<String>, _: Posted) -> Response {
    see(&format!("/console/connections/{}?test=1", enc(&name)))
}

/// `POST /console/connections/{name}/microsoft`: starts "Sign in with Microsoft": sends the
/// browser to the identity platform with a PKCE challenge and `prompt` (default
/// `select_account`, so that the account the browser is signed in with is not taken
/// silently).
pub async fn microsoft(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let back = format!("/console/connections/{}", enc(&name));
    let gateway = state.gateway();
    let Some(config) = gateway.config.connection(&name) else {
        return message(
            &state,
            &signed,
            "Sign in",
            "The connection is not in force: save it first.",
            &back,
        )
        .await;
    };
    if !matches!(config.credential, Credential::DeviceCode) {
        return message(&state, &signed, "Sign in", "This connection signs in as an app (client secret or certificate): only delegated connections sign in with an account.", &back).await;
    }
    let prompt = match form.get("prompt") {
        "" => "select_account",
        "login" => "login",
        "consent" => "consent",
        "none" => "",
        _ => "select_account",
    };
    let redirect = redirect_uri(&state, &headers);
    let started = match browser_sign_in(config, &redirect, prompt) {
        Ok(started) => started,
        Err(e) => return message(&state, &signed, "Sign in", &e, &back).await,
    };
    let nonce = super::random_token();
    let flow = Flow {
        session_id: signed.id.clone(),
        browser: super::digest(&nonce),
        connection: name.clone(),
        verifier: started.verifier,
        redirect_uri: redirect,
        created_ms: now_ms(),
    };
    if let Err(e) = gateway
        .store
        .add_flow(&started.state, &flow, now_ms() - FLOW_MS)
        .await
    {
        return message(&state, &signed, "Sign in", &e.to_string(), &back).await;
    }
    tracing::info!(admin = %signed.admin, connection = %name, "console: sign-in with Microsoft started");
    let mut response = see(&started.url);
    let cookie = super::cookie_line(&state, FLOW_COOKIE, &nonce, Some(900), FLOW_PATH, "Lax");
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[derive(serde::Deserialize)]
pub struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// A page after the identity platform's redirect. The browser comes back from another site, so
/// the SameSite=Strict session cookie may be absent: the flow's state proves who started it,
/// and this page leads on to the connection (a same-site navigation that carries the cookie).
fn landing(status: StatusCode, title: &str, text: &str, to: &str) -> Response {
    super::render(
        status,
        "message.html",
        context! { title => title, message => text, back => to, bare => true, refresh_to => to },
    )
}

/// `GET /console/oauth/callback`: the identity platform sends the browser back here with a
/// code (or an error); the code is redeemed with the flow's PKCE verifier and the refresh
/// token saved as the connection's sign-in, which enables it again.
pub async fn callback(
    Extract(state): Extract<Arc<State>>,
    headers: HeaderMap,
    Query(q): Query<Callback>,
) -> Response {
    let mut response = finish(&state, &headers, q).await;
    let forget = super::cookie_line(&state, FLOW_COOKIE, "", Some(0), FLOW_PATH, "Lax");
    response.headers_mut().append(header::SET_COOKIE, forget);
    response
}

async fn finish(state: &State, headers: &HeaderMap, q: Callback) -> Response {
    let gateway = state.gateway();
    let Some(key) = q.state.as_deref().filter(|s| !s.is_empty()) else {
        return landing(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "The sign-in came back without its state: start it again from the connection's page.",
            "/console/connections",
        );
    };
    let flow = match gateway.store.take_flow(key).await {
        Ok(Some(flow)) if now_ms() - flow.created_ms < FLOW_MS => flow,
        Ok(_) => {
            return landing(
                StatusCode::BAD_REQUEST,
                "Sign in",
                "This sign-in is unknown, was already used, or took too long: start it again from the connection's page.",
                "/console/connections",
            );
        }
        Err(e) => {
            return landing(
                StatusCode::SERVICE_UNAVAILABLE,
                "Sign in",
                &e.to_string(),
                "/console/connections",
            );
        }
    };
    let back = format!("/console/connections/{}", enc(&flow.connection));
    let same_browser =
        super::cookie(headers, FLOW_COOKIE).is_some_and(|c| super::digest(c) == flow.browser);
    if !same_browser {
        tracing::warn!(connection = %flow.connection, "console: a sign-in came back to another browser than the one that started it");
        return landing(
            StatusCode::FORBIDDEN,
            "Sign in",
            "This sign-in was started in another browser: start it again from the connection's page.",
            &back,
        );
    }
    let now = now_ms();
    let session = gateway
        .store
        .admin_session(
            &flow.session_id,
            now - super::IDLE_MS,
            now - super::MAX_AGE_MS,
        )
        .await;
    let admin = match session {
        Ok(Some(session)) => session.admin,
        _ => {
            return landing(
                StatusCode::FORBIDDEN,
                "Sign in",
                "The console session that started this sign-in has ended: sign in to the console and start again.",
                &back,
            );
        }
    };
    if let Some(error) = &q.error {
        let description = q.error_description.clone().unwrap_or_default();
        tracing::warn!(%admin, connection = %flow.connection, %error, "console: sign-in with Microsoft refused");
        let text = format!("Microsoft refused the sign-in: {error}: {description}");
        return landing(StatusCode::OK, "Sign in refused", &text, &back);
    }
    let Some(code) = &q.code else {
        return landing(
            StatusCode::BAD_REQUEST,
            "Sign in",
            "The sign-in came back without a code.",
            &back,
        );
    };
    let Some(config) = gateway.config.connection(&flow.connection) else {
        return landing(
            StatusCode::CONFLICT,
            "Sign in",
            "The connection is no longer in force.",
            &back,
        );
    };
    match redeem(
        config,
        &gateway.paths(),
        code,
        &flow.verifier,
        &flow.redirect_uri,
    )
    .await
    {
        Ok(account) => {
            if let Some(live) = gateway.connections.get(&flow.connection) {
                live.tokens.forget();
            }
            let what = format!("connection {} (signed in)", flow.connection);
            if let Err(e) = state
                .shared
                .refresh(&what, std::slice::from_ref(&flow.connection))
                .await
            {
                return landing(StatusCode::INTERNAL_SERVER_ERROR, "Sign in", &e, &back);
            }
            let who = account.unwrap_or_else(|| "an account".into());
            tracing::info!(%admin, connection = %flow.connection, account = %who, "console: signed in with Microsoft");
            let to = format!("{back}?signed_in=1");
            landing(
                StatusCode::OK,
                "Signed in",
                &format!("Signed in as {who}. The connection is saved and enabled."),
                &to,
            )
        }
        Err(TokenError::Disabled { code, message, .. }) => landing(
            StatusCode::OK,
            "Sign in refused",
            &format!("The code was refused: {code}: {message}"),
            &back,
        ),
        Err(TokenError::Transient(why)) => landing(
            StatusCode::BAD_GATEWAY,
            "Sign in",
            &format!("The token endpoint could not be reached: {why}"),
            &back,
        ),
    }
}

/// The connections a form may choose from, by name: every record of the store (also one not
/// in force, so that a form never silently switches a mount or a job to another).
pub async fn names(state: &State) -> Vec<String> {
    let gateway = state.gateway();
    let mut names: Vec<String> = match gateway.store.list(Section::Connections).await {
        Ok(records) => records.into_iter().map(|r| r.name).collect(),
        Err(_) => gateway
            .config
            .connections
            .iter()
            .map(|c| c.name.clone())
            .collect(),
    };
    names.sort();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_makes_the_record_of_each_kind() {
        let stored = json!({"name": "sp", "upload_workers": 2, "client_secret": "x"});
        let stored = stored.as_object().unwrap().clone();
        let form = Fields::parse(
            b"kind=delegated&tenant=contoso&client_id=app&site=https%3A%2F%2Fh%2Fsites%2Fs&drive=",
        );
        let made = record(&form, stored.clone());
        assert_eq!(made["auth"], "delegated");
        assert_eq!(made["upload_workers"], 2);
        assert!(!made.contains_key("client_secret"));
        assert!(!made.contains_key("drive"));
        let form = Fields::parse(b"kind=secret&client_secret=");
        assert!(
            !record(&form, stored.clone()).contains_key("client_secret"),
            "blank keeps the stored secret"
        );
        let form = Fields::parse(b"kind=secret&client_secret=s3");
        assert_eq!(
            record(&form, stored).get("client_secret"),
            Some(&json!("s3"))
        );
    }
}
