//! The Microsoft identity platform endpoints: `/{tenant}/oauth2/v2.0/token` (client secret,
//! certificate assertion, refresh-token rotation, device code, the authorization code of a
//! browser sign-in, see [`super::authorize`]) and `/devicecode`, plus the bearer-token check
//! every Graph request passes.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::authorize;
use super::error::{AuthError, GraphError};
use super::state::{AccessToken, App, Caller, DeviceFlow, Grant, Sim, Tenant};
use crate::wire::{DeviceCode, TokenResponse};

pub(super) type Params = HashMap<String, String>;
const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";
/// The scope of a device-code sign-in's tokens.
const DEVICE_CODE_SCOPE: &str = "https://graph.microsoft.com/Files.ReadWrite.All https://graph.microsoft.com/Sites.ReadWrite.All";

/// A form body; anything unparsable reads as empty, so the missing parameters are named.
fn form(body: &[u8]) -> Params {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn bad_request(error: &'static str, code: u64, text: &str) -> AuthError {
    AuthError::new(StatusCode::BAD_REQUEST, error, code, text)
}

fn invalid_client(code: u64, text: &str) -> AuthError {
    AuthError::new(StatusCode::UNAUTHORIZED, "invalid_client", code, text)
}

pub(super) fn find_tenant<'a>(
    tenants: &'a [Tenant],
    segment: &str,
) -> Result<&'a Tenant, AuthError> {
    let segment = segment.to_ascii_lowercase();
    tenants
        .iter()
        .find(|t| {
            t.id.eq_ignore_ascii_case(&segment)
                || t.name.eq_ignore_ascii_case(&segment)
                || format!("{}.onmicrosoft.com", t.name.to_ascii_lowercase()) == segment
        })
        .ok_or_else(|| {
            bad_request(
                "invalid_request",
                90002,
                &format!("Tenant '{segment}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
            )
        })
}

pub(super) fn find_app<'a>(tenant: &'a Tenant, params: &Params) -> Result<&'a App, AuthError> {
    let client_id = required(params, "client_id")?;
    tenant.apps.iter().find(|a| a.client_id == client_id).ok_or_else(|| {
        bad_request(
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{}'.", tenant.name),
        )
    })
}

pub(super) fn required<'a>(params: &'a Params, name: &str) -> Result<&'a str, AuthError> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            bad_request(
                "invalid_request",
                900144,
                &format!("The request body must contain the following parameter: '{name}'."),
            )
        })
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let params = form(&body);
    match issue(&sim, &tenant, &params) {
        Ok(tokens) => Json(tokens).into_response(),
        Err(e) => e.into_response(),
    }
}

fn issue(sim: &Sim, tenant_segment: &str, params: &Params) -> Result<TokenResponse, AuthError> {
    let world = sim.world.lock();
    let tenant = find_tenant(&world.tenants, tenant_segment)?;
    let app = find_app(tenant, params)?;
    let grant_type = required(params, "grant_type")?;
    match grant_type {
        "client_credentials" => {
            check_app_credentials(sim, tenant_segment, app, params, true)?;
            let scope = required(params, "scope")?;
            if !scope.ends_with("/.default") {
                return Err(bad_request(
                    "invalid_scope",
                    1002012,
                    &format!(
                        "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                    ),
                ));
            }
            Ok(sim.app_tokens(tenant, app))
        }
        "refresh_token" => {
            let presented = required(params, "refresh_token")?;
            let grant = sim
                .refresh_tokens
                .get(presented)
                .map(|g| g.clone())
                .filter(|g| g.client_id == app.client_id && g.tenant_id == tenant.id);
            let Some(grant) = grant else {
                return Err(bad_request(
                    "invalid_grant",
                    70000,
                    "The provided value for the 'refresh_token' is not valid: it is unknown, was already used, or was issued to another client.",
                ));
            };
            if app.revoked {
                return Err(bad_request(
                    "invalid_grant",
                    50173,
                    "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
                ));
            }
            check_app_credentials(sim, tenant_segment, app, params, false)?;
            sim.refresh_tokens.remove(presented);
            Ok(sim.user_tokens(tenant, app, grant, None))
        }
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => {
            let code = params
                .get("device_code")
                .or_else(|| params.get("code"))
                .map(String::as_str)
                .unwrap_or("");
            let Some(flow) = sim
                .device_codes
                .get(code)
                .map(|f| (f.expires, f.approved.clone(), f.client_id.clone()))
            else {
                return Err(bad_request(
                    "invalid_grant",
                    70000,
                    "The provided device code is not valid.",
                ));
            };
            let (expires, approved, client_id) = flow;
            if client_id != app.client_id {
                return Err(bad_request(
                    "invalid_grant",
                    70000,
                    "The device code was issued to another client.",
                ));
            }
            if expires <= Instant::now() {
                sim.device_codes.remove(code);
                return Err(bad_request(
                    "expired_token",
                    70020,
                    "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
                ));
            }
            let Some(user) = approved else {
                return Err(bad_request(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ));
            };
            if app.revoked {
                return Err(invalid_client(
                    7000222,
                    "The provided client secret keys for app are expired.",
                ));
            }
            sim.device_codes.remove(code);
            let grant = Grant {
                tenant_id: tenant.id.clone(),
                client_id: app.client_id.clone(),
                user,
                scopes: None,
            };
            Ok(sim.user_tokens(tenant, app, grant, None))
        }
        "authorization_code" => {
            check_app_credentials(sim, tenant_segment, app, params, false)?;
            let redeemed = authorize::redeem(sim, tenant, app, params)?;
            let grant = Grant {
                tenant_id: tenant.id.clone(),
                client_id: app.client_id.clone(),
                user: redeemed.user,
                scopes: Some(redeemed.scopes),
            };
            Ok(sim.user_tokens(tenant, app, grant, redeemed.nonce.as_deref()))
        }
        other => Err(bad_request(
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'."),
        )),
    }
}

/// Checks the client secret or certificate assertion; public clients (`required == false`)
/// may present neither.
fn check_app_credentials(
    sim: &Sim,
    tenant_segment: &str,
    app: &App,
    params: &Params,
    required: bool,
) -> Result<(), AuthError> {
    if app.revoked {
        return Err(invalid_client(
            7000222,
            &format!(
                "The provided client secret keys for app '{}' are expired. Visit the Azure portal to create new keys for your app.",
                app.client_id
            ),
        ));
    }
    if let Some(secret) = params.get("client_secret") {
        return match &app.secret {
            Some(expected) if expected == secret => Ok(()),
            _ => Err(invalid_client(
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app.",
            )),
        };
    }
    if let Some(assertion) = params.get("client_assertion") {
        if params.get("client_assertion_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err(bad_request(
                "invalid_request",
                50027,
                "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer.",
            ));
        }
        return verify_assertion(sim, tenant_segment, app, assertion);
    }
    if required {
        return Err(invalid_client(
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        ));
    }
    Ok(())
}

fn verify_assertion(
    sim: &Sim,
    tenant_segment: &str,
    app: &App,
    assertion: &str,
) -> Result<(), AuthError> {
    let bad = |why: &str| {
        invalid_client(
            700027,
            &format!("Client assertion failed signature validation. [Reason - {why}]"),
        )
    };
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|_| bad("The assertion is not a well-formed JWT."))?;
    let cert = app
        .cert
        .as_ref()
        .ok_or_else(|| bad("No certificate is registered for the application."))?;
    let thumbprint_ok = match header.alg {
        Algorithm::RS256 => header.x5t.as_deref() == Some(cert.x5t.as_str()),
        Algorithm::PS256 => header.x5t_s256.as_deref() == Some(cert.x5t_s256.as_str()),
        _ => return Err(bad("The algorithm must be RS256 or PS256.")),
    };
    if !thumbprint_ok {
        return Err(bad("The key was not found."));
    }
    let audiences = [
        format!("{}/{}/oauth2/v2.0/token", sim.public_url, tenant_segment),
        format!("{}/{}/v2.0", sim.public_url, tenant_segment),
    ];
    let mut validation = Validation::new(header.alg);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_audience(&audiences);
    validation.set_issuer(&[&app.client_id]);
    validation.sub = Some(app.client_id.clone());
    validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
    let key = DecodingKey::from_rsa_der(&cert.rsa_public_der);
    match jsonwebtoken::decode::<serde_json::Value>(assertion, &key, &validation) {
        Ok(_) => Ok(()),
        Err(e) => match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature
            | jsonwebtoken::errors::ErrorKind::ImmatureSignature => Err(invalid_client(
                700024,
                "Client assertion is not within its valid time range.",
            )),
            jsonwebtoken::errors::ErrorKind::InvalidAudience => Err(invalid_client(
                700027,
                "Client assertion audience claim does not match Realm issuer.",
            )),
            _ => Err(bad("The signature or claims are not valid.")),
        },
    }
}

impl Sim {
    /// App-only tokens (client credentials): an access token, no refresh token.
    fn app_tokens(&self, tenant: &Tenant, app: &App) -> TokenResponse {
        TokenResponse {
            token_type: "Bearer".into(),
            expires_in: self.token_lifetime,
            ext_expires_in: Some(self.token_lifetime),
            scope: Some(GRAPH_DEFAULT_SCOPE.into()),
            access_token: self.access_token(tenant, app, None),
            refresh_token: None,
            id_token: None,
        }
    }

    /// Tokens for a signed-in user: an access token, a rotating refresh token standing for
    /// `grant` (a browser sign-in's only with `offline_access`), and an id token when a
    /// browser sign-in asked for `openid` (`nonce` is given at the code's redemption only).
    fn user_tokens(
        &self,
        tenant: &Tenant,
        app: &App,
        grant: Grant,
        nonce: Option<&str>,
    ) -> TokenResponse {
        let access_token = self.access_token(tenant, app, Some(grant.user.clone()));
        let (scope, id_token, offline) = match &grant.scopes {
            None => (DEVICE_CODE_SCOPE.to_string(), None, true),
            Some(scopes) => {
                let has = |s: &str| scopes.iter().any(|g| g == s);
                let id_token = has("openid")
                    .then(|| authorize::id_token(self, tenant, app, &grant.user, scopes, nonce));
                (
                    authorize::granted_scope(scopes),
                    id_token,
                    has("offline_access"),
                )
            }
        };
        let refresh_token = offline.then(|| {
            let token = random_token("rt");
            self.refresh_tokens.insert(token.clone(), grant);
            token
        });
        TokenResponse {
            token_type: "Bearer".into(),
            expires_in: self.token_lifetime,
            ext_expires_in: Some(self.token_lifetime),
            scope: Some(scope),
            access_token,
            refresh_token,
            id_token,
        }
    }

    fn access_token(&self, tenant: &Tenant, app: &App, user: Option<String>) -> String {
        let token = random_token("at");
        self.tokens.insert(
            token.clone(),
            AccessToken {
                caller: Caller {
                    tenant_id: tenant.id.clone(),
                    client_id: app.client_id.clone(),
                    user,
                    access: app.access,
                    sites: app.sites.clone(),
                },
                expires: Instant::now() + Duration::from_secs(self.token_lifetime),
                generation: self.token_generation.load(Ordering::Relaxed),
            },
        );
        token
    }
}

pub(super) fn random_token(kind: &str) -> String {
    let bytes: [u8; 32] = rand::random();
    format!(
        "sim-{kind}.{}",
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    )
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
pub async fn devicecode(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let params = form(&body);
    let started = (|| {
        let world = sim.world.lock();
        let tenant = find_tenant(&world.tenants, &tenant)?;
        let app = find_app(tenant, &params)?;
        Ok::<_, AuthError>((tenant.id.clone(), app.client_id.clone()))
    })();
    let (tenant_id, client_id) = match started {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    let device_code = random_token("dc");
    let user_code: String = {
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        (0..9)
            .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
            .collect()
    };
    let expires_in = 900;
    sim.device_codes.insert(
        device_code.clone(),
        DeviceFlow {
            user_code: user_code.clone(),
            tenant_id,
            client_id,
            expires: Instant::now() + Duration::from_secs(expires_in),
            approved: None,
        },
    );
    let verification_uri = format!("{}/devicelogin", sim.public_url);
    Json(DeviceCode {
        message: format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
        device_code,
        user_code,
        verification_uri,
        expires_in,
        interval: sim.device_interval,
    })
    .into_response()
}

/// Approves a pending device code as `user`; false when no such code is pending.
pub fn approve(sim: &Sim, user_code: &str, user: &str) -> bool {
    let wanted = user_code.trim().replace('-', "").to_ascii_uppercase();
    sim.device_codes
        .iter_mut()
        .find(|f| f.user_code == wanted && f.expires > Instant::now())
        .map(|mut f| f.approved = Some(user.to_string()))
        .is_some()
}

/// The bearer token of a Graph request, checked.
impl FromRequestParts<Arc<Sim>> for Caller {
    type Rejection = GraphError;

    async fn from_request_parts(
        parts: &mut Parts,
        sim: &Arc<Sim>,
    ) -> Result<Self, Self::Rejection> {
        caller(&parts.headers, sim)
    }
}

fn caller(headers: &HeaderMap, sim: &Sim) -> Result<Caller, GraphError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| GraphError::unauthenticated("Access token is empty."))?;
    let entry = sim.tokens.get(token).ok_or_else(|| {
        GraphError::unauthenticated("IDX14100: JWT is not well formed, there are no dots (.).")
    })?;
    if !sim.is_token_live(&entry) {
        return Err(GraphError::unauthenticated(
            "Lifetime validation failed, the token is expired.",
        ));
    }
    Ok(entry.caller.clone())
}
