//! Access tokens for one connection: app-only with a client secret or a certificate assertion
//! (RS256 + `x5t`), or delegated through a saved, rotating refresh token (device-code sign-in).
//!
//! Tokens are cached and refreshed ahead of expiry, single-flight: however many callers need a
//! token at once, one request goes out. A rotated refresh token is saved durably before the new
//! access token is used. Failures are classified here: transient (retry) or needing a human
//! (the connection is disabled and an alert raised).

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::basic::{BasicClient, BasicErrorResponse};
use oauth2::{
    AuthType, ClientId, ClientSecret, DeviceAuthorizationUrl, HttpClientError, RefreshToken,
    RequestTokenError, Scope, StandardDeviceAuthorizationResponse, TokenResponse, TokenUrl,
};
use parking_lot::RwLock;
use sha1::Digest;

use super::health::Health;
use super::store::Paths;
use crate::config::{Connection as ConnectionConfig, Credential, Pem, Secret};
use crate::state::grants::{Grant, SharedAccess};

/// A saved access token with less than this to live is not shared: the instance refreshes.
const SHARED_MIN_LEFT: Duration = Duration::from_secs(30);

/// Microsoft Graph's national clouds: a connection whose `graph_url` is one of them asks for
/// tokens of that cloud's Graph; any other (the simulator, a proxy) for the global one.
const NATIONAL_GRAPHS: [&str; 4] = [
    "https://graph.microsoft.com",
    "https://graph.microsoft.us",
    "https://dod-graph.microsoft.us",
    "https://microsoftgraph.chinacloudapi.cn",
];

/// The Graph resource a connection's tokens are for.
fn graph_resource(config: &ConnectionConfig) -> &'static str {
    let url = config.graph_url.trim_end_matches('/');
    NATIONAL_GRAPHS
        .into_iter()
        .find(|g| g.eq_ignore_ascii_case(url))
        .unwrap_or(NATIONAL_GRAPHS[0])
}

/// An app-only token's scope: the resource's `.default`.
fn app_scope(config: &ConnectionConfig) -> Scope {
    Scope::new(format!("{}/.default", graph_resource(config)))
}

/// A delegated sign-in's scopes: Graph's files and sites, and `extra` (a refresh token, who
/// signed in).
fn delegated_scopes(config: &ConnectionConfig, extra: &[&str]) -> Vec<Scope> {
    let graph = graph_resource(config);
    extra
        .iter()
        .map(|s| s.to_string())
        .chain(["Files.ReadWrite.All", "Sites.ReadWrite.All"].map(|p| format!("{graph}/{p}")))
        .map(Scope::new)
        .collect()
}

use crate::graph::access::TokenSource;
pub use crate::graph::access::{AccessToken, TokenError};

/// The OAuth client of a connection, with its token endpoint set.
type TokenClient = BasicClient<
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

struct Cached {
    token: AccessToken,
    refresh_at: Instant,
}

/// The token source of one connection.
pub struct Tokens {
    name: String,
    config: ConnectionConfig,
    http: reqwest::Client,
    paths: Paths,
    health: Arc<Health>,
    cached: RwLock<Option<Cached>>,
    /// The last access token Graph refused (401): a shared one equal to it is not taken.
    refused: RwLock<Option<AccessToken>>,
    single_flight: tokio::sync::Mutex<()>,
    /// Access tokens obtained, and token requests that failed (for metrics).
    pub refreshes: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
}

#[async_trait::async_trait]
impl TokenSource for Tokens {
    async fn token(&self) -> Result<AccessToken, TokenError> {
        self.get().await
    }

    fn invalidate(&self, used: &AccessToken) {
        Tokens::invalidate(self, used)
    }
}

impl Tokens {
    pub fn new(
        config: &ConnectionConfig,
        http: reqwest::Client,
        paths: Paths,
        health: Arc<Health>,
    ) -> Self {
        Tokens {
            name: config.name.clone(),
            config: config.clone(),
            http,
            paths,
            health,
            cached: RwLock::new(None),
            refused: RwLock::new(None),
            single_flight: tokio::sync::Mutex::new(()),
            refreshes: Default::default(),
            failures: Default::default(),
        }
    }

    /// Where this connection's sign-in is kept.
    pub fn paths(&self) -> &Paths {
        &self.paths
    }

    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.config.authority, self.config.tenant
        )
    }

    fn fresh(&self) -> Option<AccessToken> {
        self.cached
            .read()
            .as_ref()
            .filter(|c| c.refresh_at > Instant::now())
            .map(|c| c.token.clone())
    }

    /// A valid access token, fetched if the cached one is missing or about to expire.
    pub async fn get(&self) -> Result<AccessToken, TokenError> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _flight = self.single_flight.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        if let Some(alert) = self.health.alert() {
            return Err(TokenError::Disabled {
                code: alert.code,
                message: alert.message,
                action: alert.action,
            });
        }
        let fetched = self.fetch().await;
        let counter = if fetched.is_ok() {
            &self.refreshes
        } else {
            &self.failures
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match fetched {
            Ok((token, lifetime)) => {
                let margin = (lifetime / 5).min(Duration::from_secs(300));
                *self.cached.write() = Some(Cached {
                    token: token.clone(),
                    refresh_at: Instant::now() + lifetime - margin,
                });
                tracing::debug!(connection = %self.name, lifetime_s = lifetime.as_secs(), "access token obtained");
                Ok(token)
            }
            Err(Failure::Transient(why)) => {
                tracing::warn!(connection = %self.name, %why, "token request failed; will retry");
                Err(TokenError::Transient(why))
            }
            Err(Failure::Human {
                code,
                message,
                action,
            }) => {
                if let Err(e) = self.health.disable(&code, &message, &action).await {
                    tracing::error!(connection = %self.name, error = %crate::logging::chain(&e), "could not record the alert");
                }
                Err(TokenError::Disabled {
                    code,
                    message,
                    action,
                })
            }
        }
    }

    /// Forgets the cached access token (a new sign-in was saved): the next `get` takes the
    /// new sign-in's.
    pub fn forget(&self) {
        *self.cached.write() = None;
        *self.refused.write() = None;
    }

    /// Forgets `used` after Graph refused it (401), so the next `get` fetches a new one.
    pub fn invalidate(&self, used: &AccessToken) {
        let mut cached = self.cached.write();
        if cached.as_ref().is_some_and(|c| &c.token == used) {
            *cached = None;
        }
        *self.refused.write() = Some(used.clone());
    }

    fn client(&self) -> Result<TokenClient, Failure> {
        let token_url = TokenUrl::new(self.token_url()).map_err(|e| {
            Failure::human(
                "invalid_authority",
                &format!("the token URL is not valid: {e}"),
                "Fix `authority` and `tenant` in the connection's configuration.",
            )
        })?;
        Ok(
            BasicClient::new(ClientId::new(self.config.client_id.clone()))
                .set_token_uri(token_url)
                .set_auth_type(AuthType::RequestBody),
        )
    }

    async fn fetch(&self) -> Result<(AccessToken, Duration), Failure> {
        let client = self.client()?;
        let response = match &self.config.credential {
            Credential::ClientSecret(secret) => client
                .set_client_secret(ClientSecret::new(secret.expose().to_string()))
                .exchange_client_credentials()
                .add_scope(app_scope(&self.config))
                .request_async(&self.http)
                .await
                .map_err(classify)?,
            Credential::Certificate { cert, key } => {
                let assertion = assertion(&self.config.client_id, &self.token_url(), cert, key)?;
                client
                    .exchange_client_credentials()
                    .add_scope(app_scope(&self.config))
                    .add_extra_param(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .add_extra_param("client_assertion", assertion)
                    .request_async(&self.http)
                    .await
                    .map_err(classify)?
            }
            Credential::DeviceCode => return self.refresh(client).await,
        };
        let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3599));
        Ok((AccessToken::new(response.access_token().secret()), lifetime))
    }

    /// The access token saved with the sign-in by the last refresh (this instance's or
    /// another's), when it has at least [`SHARED_MIN_LEFT`] to live and Graph did not refuse it
    /// here: with its time left.
    fn shared(&self, saved: &Grant) -> Option<(AccessToken, Duration)> {
        let access = saved.access.as_ref()?;
        let left = access.expires - chrono::Utc::now().timestamp();
        let token = AccessToken::new(access.token.expose());
        let refused = self.refused.read().as_ref() == Some(&token);
        (left >= SHARED_MIN_LEFT.as_secs() as i64 && !refused)
            .then(|| (token, Duration::from_secs(left as u64)))
    }

    /// Exchanges the saved refresh token of a device-code connection for an access token. The
    /// token rotates: the new one is committed to the store, under the store's lock on the
    /// sign-in, before the access token is used (see [`crate::state::Store::rotate_grant`]).
    /// The access token it saves with them serves every instance until it is about to expire:
    /// a refresh that finds one saved by another instance uses it, and requests nothing.
    async fn refresh(&self, client: TokenClient) -> Result<(AccessToken, Duration), Failure> {
        // An earlier version's file is imported first, outside the lock.
        self.paths
            .grant(&self.name)
            .await
            .map_err(|e| Failure::Transient(format!("reading the saved sign-in: {e}")))?;
        let store = self.paths.store().await?;
        store
            .rotate_grant(&self.name, async |saved| {
                let Some(saved) = saved else {
                    return Err(Failure::human(
                        "not_signed_in",
                        "no saved sign-in for this device-code connection",
                        &format!(
                            "Run `spgate connect {} --config FILE` and sign in.",
                            self.name
                        ),
                    ));
                };
                if let Some(shared) = self.shared(&saved) {
                    tracing::debug!(connection = %self.name, "using the access token another refresh saved");
                    return Ok((shared, None));
                }
                let response = client
                    .exchange_refresh_token(&RefreshToken::new(
                        saved.refresh_token.expose().to_string(),
                    ))
                    .add_scopes(delegated_scopes(&self.config, &["offline_access"]))
                    .request_async(&self.http)
                    .await
                    .map_err(classify)?;
                let lifetime = response.expires_in().unwrap_or(Duration::from_secs(3599));
                let token = AccessToken::new(response.access_token().secret());
                let now = chrono::Utc::now().timestamp();
                // Rotation: the old refresh token is now spent; save the new one before use,
                // with the access token for the other instances.
                let rotated = Grant {
                    refresh_token: response
                        .refresh_token()
                        .map_or(saved.refresh_token.clone(), |r| Secret::new(r.secret().clone())),
                    updated_at: now,
                    access: Some(SharedAccess {
                        token: Secret::new(response.access_token().secret().clone()),
                        expires: now + lifetime.as_secs() as i64,
                    }),
                    ..saved
                };
                Ok(((token, lifetime), Some(rotated)))
            })
            .await
    }

    /// Runs the device-code sign-in: `show` gets the message for the user (URL and code); waits
    /// until the sign-in is approved, then saves the refresh token.
    pub async fn sign_in(&self, show: impl FnOnce(&str)) -> Result<(), TokenError> {
        let failed = |f: Failure| match f {
            Failure::Transient(why) => TokenError::Transient(why),
            Failure::Human {
                code,
                message,
                action,
            } => TokenError::Disabled {
                code,
                message,
                action,
            },
        };
        let device_url = DeviceAuthorizationUrl::new(format!(
            "{}/{}/oauth2/v2.0/devicecode",
            self.config.authority, self.config.tenant
        ))
        .map_err(|e| TokenError::Transient(e.to_string()))?;
        let client = self
            .client()
            .map_err(failed)?
            .set_device_authorization_url(device_url);
        let details: StandardDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(delegated_scopes(&self.config, &["offline_access"]))
            .request_async(&self.http)
            .await
            .map_err(|e| failed(classify(e)))?;
        show(&format!(
            "To sign in, open {} and enter the code {}",
            details.verification_uri().as_str(),
            details.user_code().secret()
        ));
        let response = client
            .exchange_device_access_token(&details)
            .request_async(&self.http, tokio::time::sleep, None)
            .await
            .map_err(|e| {
                sign_in_refused(
                    e,
                    "Run `spgate connect` again and approve the sign-in in time.",
                )
            })?;
        let refresh = refresh_of(response.refresh_token())?;
        save_sign_in(&self.config, &self.paths, refresh, None, None).await
    }
}

/// A sign-in's token request that failed: the identity platform's refusal (the connection
/// cannot sign in until `action` is done), or a transient failure.
fn sign_in_refused<E, T>(
    e: RequestTokenError<E, oauth2::StandardErrorResponse<T>>,
    action: &str,
) -> TokenError
where
    E: std::error::Error + 'static,
    T: oauth2::ErrorResponseType + std::fmt::Display + 'static,
{
    match e {
        RequestTokenError::ServerResponse(r) => TokenError::Disabled {
            code: r.error().to_string(),
            message: r.error_description().cloned().unwrap_or_default(),
            action: action.into(),
        },
        other => TokenError::Transient(other.to_string()),
    }
}

/// The refresh token a sign-in answered; none is an error (offline_access not granted).
fn refresh_of(token: Option<&RefreshToken>) -> Result<Secret, TokenError> {
    token
        .map(|t| Secret::new(t.secret().clone()))
        .ok_or_else(|| {
            TokenError::Transient(
                "the sign-in answered no refresh token (is offline_access allowed?)".into(),
            )
        })
}

/// Saves a delegated sign-in of `config`: its refresh token, who signed in, and the access
/// token that came with it.
async fn save_sign_in(
    config: &ConnectionConfig,
    paths: &Paths,
    refresh_token: Secret,
    account: Option<String>,
    access: Option<SharedAccess>,
) -> Result<(), TokenError> {
    let grant = Grant {
        refresh_token,
        client_id: config.client_id.clone(),
        tenant: config.tenant.clone(),
        account,
        updated_at: chrono::Utc::now().timestamp(),
        access,
    };
    paths
        .save_grant(&config.name, &grant)
        .await
        .map_err(|e| TokenError::Transient(format!("saving the sign-in: {e}")))
}

/// A token failure, classified.
#[derive(Debug)]
enum Failure {
    Transient(String),
    Human {
        code: String,
        message: String,
        action: String,
    },
}

/// The store failed: transient (a database that is back answers the next request).
impl From<crate::state::Error> for Failure {
    fn from(e: crate::state::Error) -> Failure {
        Failure::Transient(format!("the state store: {e}"))
    }
}

impl Failure {
    fn human(code: &str, message: &str, action: &str) -> Failure {
        Failure::Human {
            code: code.into(),
            message: message.into(),
            action: action.into(),
        }
    }
}

fn classify(e: RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>) -> Failure {
    match e {
        RequestTokenError::ServerResponse(response) => {
            let error = response.error().to_string();
            let description = response.error_description().cloned().unwrap_or_default();
            classify_server(&error, &description)
        }
        RequestTokenError::Request(e) => Failure::Transient(format!("network: {e}")),
        RequestTokenError::Parse(_, body) => Failure::Transient(format!(
            "unexpected answer from the token endpoint ({} bytes)",
            body.len()
        )),
        RequestTokenError::Other(why) => Failure::Transient(why),
    }
}

/// The `AADSTSnnnn` code at the start of an error description.
pub fn aadsts_code(description: &str) -> Option<u64> {
    let rest = description.trim_start().strip_prefix("AADSTS")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Transient or needing a human, with the action an administrator should take.
fn classify_server(error: &str, description: &str) -> Failure {
    if matches!(error, "temporarily_unavailable" | "server_error") {
        return Failure::Transient(format!("{error}: {}", first_sentence(description)));
    }
    let code = aadsts_code(description);
    let action = match (error, code) {
        (_, Some(7000215)) => {
            "The client secret is wrong: copy the secret's Value (not its ID) from Entra ID > App registrations > Certificates & secrets into the connection's client_secret, then save the configuration."
        }
        (_, Some(7000222)) => {
            "The client secret has expired or was removed: create a new client secret for the app registration, put it in the connection's client_secret, then save the configuration."
        }
        (_, Some(700027 | 700024)) => {
            "The certificate assertion was refused: upload this certificate to the app registration (Certificates & secrets), check that cert and key belong together and that the gateway's clock is right, then save the configuration."
        }
        (_, Some(700016)) => {
            "No application with this client_id exists in the tenant: check client_id and tenant, and that an administrator consented to the app, then save the configuration."
        }
        (_, Some(90002)) => {
            "The tenant was not found: check the connection's tenant (GUID or domain) and authority (national clouds), then save the configuration."
        }
        (_, Some(65001)) => {
            "The app lacks consent: an administrator must grant consent to its Graph permissions (Sites.Selected or Sites.ReadWrite.All), then save the configuration."
        }
        (_, Some(50076 | 50079)) => {
            "The account needs multi-factor authentication: run `spgate connect NAME` and sign in again."
        }
        (_, Some(53003)) => {
            "Conditional Access blocked the sign-in: ask the tenant administrator to allow the gateway, then save the configuration."
        }
        ("invalid_grant", _) => {
            "The saved sign-in is no longer valid (expired, revoked or already used): run `spgate connect NAME` and sign in again."
        }
        ("interaction_required", _) => {
            "The account must sign in interactively: run `spgate connect NAME`."
        }
        _ => {
            "Check the connection's settings against its app registration in Entra ID, then save the configuration again."
        }
    };
    let code_text = match code {
        Some(n) => format!("{error} AADSTS{n}"),
        None => error.to_string(),
    };
    Failure::Human {
        code: code_text,
        message: first_sentence(description),
        action: action.to_string(),
    }
}

/// The part of an AADSTS description before its trace ids.
fn first_sentence(description: &str) -> String {
    description
        .split(" Trace ID:")
        .next()
        .unwrap_or(description)
        .trim()
        .to_string()
}

/// A client assertion: a JWT signed with the certificate's key, RS256 with `x5t`.
fn assertion(client_id: &str, token_url: &str, cert: &Pem, key: &Pem) -> Result<String, Failure> {
    let unreadable = |what: &str, e: &dyn std::fmt::Display| {
        Failure::human(
            "certificate_unreadable",
            &format!("cannot use the {what}: {e}"),
            "Check the connection's certificate and private key (PEM, files or text), then save the connection.",
        )
    };
    let cert_pem = cert.read().map_err(|e| unreadable("certificate", &e))?;
    let key_pem = key.read().map_err(|e| unreadable("private key", &e))?;
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(&cert_pem).map_err(|e| unreadable("certificate", &e))?;
    let x5t = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        sha1::Sha1::digest(&pem.contents),
    );
    let signing_key = Pem::signing_key(&key_pem).map_err(|why| unreadable("private key", &why))?;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.x5t = Some(x5t);
    let now = chrono::Utc::now().timestamp();
    let claims = serde_json::json!({
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    });
    jsonwebtoken::encode(&header, &claims, &signing_key).map_err(|e| unreadable("private key", &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn human_code(error: &str, description: &str) -> Option<String> {
        match classify_server(error, description) {
            Failure::Human { code, .. } => Some(code),
            Failure::Transient(_) => None,
        }
    }

    #[test]
    fn every_documented_aadsts_code_needs_a_human() {
        let cases = [
            ("invalid_grant", 700082),
            ("invalid_grant", 50173),
            ("invalid_grant", 70008),
            ("invalid_grant", 70000),
            ("interaction_required", 50076),
            ("interaction_required", 50079),
            ("interaction_required", 65001),
            ("interaction_required", 53003),
            ("invalid_client", 7000215),
            ("invalid_client", 7000222),
            ("invalid_client", 700027),
            ("invalid_client", 700024),
            ("unauthorized_client", 700016),
            ("invalid_request", 90002),
        ];
        for (error, code) in cases {
            let description = format!("AADSTS{code}: something. Trace ID: abc Timestamp: now");
            assert_eq!(
                human_code(error, &description),
                Some(format!("{error} AADSTS{code}")),
                "{error} {code}"
            );
        }
    }

    #[test]
    fn transient_token_errors_are_retried() {
        for error in ["temporarily_unavailable", "server_error"] {
            assert_eq!(human_code(error, "AADSTS50196: busy"), None);
        }
    }

    #[test]
    fn national_clouds_ask_for_their_own_graph() {
        let config = |graph: &str| {
            let text = format!(
                "[state]\ndir = \"/s\"\n[[connections]]\nname = \"sp\"\ntenant = \"t\"\nclient_id = \"c\"\n\
                 site = \"https://h/sites/s\"\nauth = \"delegated\"\ngraph_url = \"{graph}\"\n"
            );
            crate::config::parse_str(&text)
                .unwrap()
                .connections
                .remove(0)
        };
        let us = config("https://graph.microsoft.us/");
        assert_eq!(
            app_scope(&us).as_str(),
            "https://graph.microsoft.us/.default"
        );
        let scopes = delegated_scopes(&us, &["offline_access"]);
        let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            scopes,
            [
                "offline_access",
                "https://graph.microsoft.us/Files.ReadWrite.All",
                "https://graph.microsoft.us/Sites.ReadWrite.All"
            ]
        );
        let china = config("https://microsoftgraph.chinacloudapi.cn");
        assert_eq!(
            app_scope(&china).as_str(),
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
        // The simulator, or a proxy: the global Graph's tokens.
        let sim = config("http://127.0.0.1:8080");
        assert_eq!(
            app_scope(&sim).as_str(),
            "https://graph.microsoft.com/.default"
        );
    }

    #[test]
    fn an_ec_key_file_is_refused_with_why_before_any_request() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (cert, _) = crate::connections::certificate::generate("t").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("ec.key");
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        let cert = Pem::Text(Secret::new(cert));
        let Err(Failure::Human {
            code,
            message,
            action,
        }) = assertion("app", "https://t/token", &cert, &Pem::File(key_file))
        else {
            panic!("an EC key signed an assertion");
        };
        assert_eq!(code, "certificate_unreadable");
        assert!(
            message
                .starts_with("cannot use the private key: an EC key: Microsoft Entra ID accepts"),
            "{message}"
        );
        assert!(message.contains("RSA keys only"), "{message}");
        assert!(!message.contains("BEGIN"), "{message}");
        assert!(action.contains("save the connection"), "{action}");
    }

    #[test]
    fn actions_name_what_to_do_and_no_trace_ids() {
        let Failure::Human {
            message, action, ..
        } = classify_server(
            "invalid_client",
            "AADSTS7000222: The provided client secret keys are expired. Trace ID: 123 Timestamp: x",
        )
        else {
            panic!("should need a human");
        };
        assert_eq!(
            message,
            "AADSTS7000222: The provided client secret keys are expired."
        );
        assert!(action.contains("new client secret"));
        assert_eq!(aadsts_code("AADSTS700016: x"), Some(700016));
        assert_eq!(aadsts_code("nothing"), None);
    }
}

/// A browser sign-in (authorization code with PKCE) started: where to send the browser, and
/// what to keep until it comes back.
pub struct BrowserSignIn {
    pub url: String,
    /// The OAuth `state` the browser brings back.
    pub state: String,
    pub verifier: Secret,
}

/// The token endpoint's answer to a code, with the ID token that says who signed in.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct IdFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdFields {}

type CodeResponse = oauth2::StandardTokenResponse<IdFields, oauth2::basic::BasicTokenType>;

type CodeClient = oauth2::Client<
    BasicErrorResponse,
    CodeResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    oauth2::StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
>;

fn code_client(config: &ConnectionConfig, redirect_uri: &str) -> Result<CodeClient, String> {
    let base = format!("{}/{}/oauth2/v2.0", config.authority, config.tenant);
    let auth_url = oauth2::AuthUrl::new(format!("{base}/authorize")).map_err(|e| e.to_string())?;
    let token_url = TokenUrl::new(format!("{base}/token")).map_err(|e| e.to_string())?;
    let redirect = oauth2::RedirectUrl::new(redirect_uri.to_string()).map_err(|e| e.to_string())?;
    Ok(oauth2::Client::new(ClientId::new(config.client_id.clone()))
        .set_auth_uri(auth_url)
        .set_token_uri(token_url)
        .set_redirect_uri(redirect)
        .set_auth_type(AuthType::RequestBody))
}

/// Starts a browser sign-in for `config`: the authorize URL (with a PKCE S256 challenge and
/// `prompt`, e.g. `select_account` so that the browser's current account is not taken
/// silently), its state and the verifier to keep.
pub fn browser_sign_in(
    config: &ConnectionConfig,
    redirect_uri: &str,
    prompt: &str,
) -> Result<BrowserSignIn, String> {
    let client = code_client(config, redirect_uri)?;
    let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
    let mut request = client
        .authorize_url(oauth2::CsrfToken::new_random)
        .add_scopes(delegated_scopes(
            config,
            &["openid", "profile", "offline_access"],
        ))
        .set_pkce_challenge(challenge);
    if !prompt.is_empty() {
        request = request.add_extra_param("prompt", prompt.to_string());
    }
    let (url, state) = request.url();
    Ok(BrowserSignIn {
        url: url.to_string(),
        state: state.secret().clone(),
        verifier: Secret::new(verifier.secret().clone()),
    })
}

/// Who an ID token names (`preferred_username`, else `upn` or `email`). The token comes
/// straight from the token endpoint over TLS, so its signature is not checked (OpenID Connect
/// allows this for the code flow).
fn id_token_account(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        payload.trim_end_matches('='),
    )
    .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    ["preferred_username", "upn", "email"]
        .iter()
        .find_map(|k| claims.get(k).and_then(|v| v.as_str()).map(str::to_string))
}

/// Redeems the code a browser sign-in brought back (with its PKCE verifier) and saves the
/// refresh token as the connection's sign-in, as the device-code sign-in does. Answers who
/// signed in, when the ID token says.
pub async fn redeem(
    config: &ConnectionConfig,
    paths: &Paths,
    code: &str,
    verifier: &Secret,
    redirect_uri: &str,
) -> Result<Option<String>, TokenError> {
    let client = code_client(config, redirect_uri).map_err(TokenError::Transient)?;
    let http = crate::graph::client::http_client(&config.limits);
    let response = client
        .exchange_code(oauth2::AuthorizationCode::new(code.to_string()))
        .set_pkce_verifier(oauth2::PkceCodeVerifier::new(verifier.expose().to_string()))
        .request_async(&http)
        .await
        .map_err(|e| sign_in_refused(e, "Sign in with Microsoft again."))?;
    let refresh = refresh_of(response.refresh_token())?;
    let account = response
        .extra_fields()
        .id_token
        .as_deref()
        .and_then(id_token_account);
    let now = chrono::Utc::now().timestamp();
    let lifetime = response
        .expires_in()
        .unwrap_or(Duration::from_secs(3600))
        .as_secs() as i64;
    let access = SharedAccess {
        token: Secret::new(response.access_token().secret().clone()),
        expires: now + lifetime,
    };
    save_sign_in(config, paths, refresh, account.clone(), Some(access)).await?;
    Ok(account)
}
