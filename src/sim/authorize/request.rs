//! An authorization request checked in Entra's order.
//!
//! Until the redirect URI is known to belong to the app, a failure is a page for the person in
//! the browser (unknown tenant 90002, unknown app 700016, then [`reply_to`]'s 900971 and 50011):
//! sending it anywhere would make the sign-in service an open redirector. After that every
//! failure goes back to the app ([`ReplyTo::error`]) with `error`, `error_description`
//! (`AADSTSnnnn: ...`) and the request's `state`.

use axum::response::{IntoResponse, Response};

use super::reply::{ReplyTo, reply_to};
use super::{aadsts, pages};
use crate::sim::auth::{self, Params};
use crate::sim::error::AuthError;
use crate::sim::state::{App, Sim, Tenant};

const GRAPH: &str = "https://graph.microsoft.com/";
/// OpenID Connect scopes: they ask for the sign-in itself, not for Graph.
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];
/// The delegated Graph permissions the simulator knows (names compared ignoring case).
const GRAPH_PERMISSIONS: [&str; 11] = [
    "User.Read",
    "User.ReadBasic.All",
    "Files.Read",
    "Files.Read.All",
    "Files.ReadWrite",
    "Files.ReadWrite.All",
    "Sites.Read.All",
    "Sites.ReadWrite.All",
    "Sites.Manage.All",
    "Sites.FullControl.All",
    "Sites.Selected",
];

/// The `prompt` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// No `prompt`: single sign-on when the browser has exactly one account of the tenant.
    Auto,
    Login,
    SelectAccount,
    Consent,
    /// `prompt=none`: answer without any page or fail.
    Silent,
}

impl Prompt {
    fn parse(value: Option<&str>) -> Result<Prompt, AuthError> {
        Ok(match value {
            None => Prompt::Auto,
            Some("login") => Prompt::Login,
            Some("select_account") => Prompt::SelectAccount,
            Some("consent") => Prompt::Consent,
            Some("none") => Prompt::Silent,
            Some(other) => {
                return Err(aadsts(
                    "invalid_request",
                    90023,
                    &format!(
                        "Invalid value '{other}' for the 'prompt' parameter: use login, select_account, consent or none."
                    ),
                ));
            }
        })
    }

    /// The parameter as sent; `None` without one.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Prompt::Auto => None,
            Prompt::Login => Some("login"),
            Prompt::SelectAccount => Some("select_account"),
            Prompt::Consent => Some("consent"),
            Prompt::Silent => Some("none"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMethod {
    S256,
    Plain,
}

/// A PKCE code challenge (RFC 7636).
#[derive(Debug, Clone)]
pub struct Challenge {
    pub value: String,
    pub method: ChallengeMethod,
}

/// A checked authorization request.
#[derive(Debug, Clone)]
pub struct Request {
    pub tenant_id: String,
    pub client_id: String,
    pub reply: ReplyTo,
    /// Canonical and without repeats: OpenID Connect scopes as they are, Graph permissions as
    /// full URIs (`https://graph.microsoft.com/Files.ReadWrite.All`).
    pub scopes: Vec<String>,
    pub prompt: Prompt,
    pub login_hint: Option<String>,
    pub nonce: Option<String>,
    pub challenge: Option<Challenge>,
}

/// A request refused: shown in the browser, or sent back to the app.
pub enum Rejection {
    Page(AuthError),
    Reply(ReplyTo, AuthError),
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Page(e) => pages::error(&e),
            Rejection::Reply(to, e) => to.error(&e),
        }
    }
}

/// A parameter that is present and not empty.
pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// Checks the query of `GET /{tenant}/oauth2/v2.0/authorize`.
pub fn check(sim: &Sim, tenant_segment: &str, params: &Params) -> Result<Request, Rejection> {
    let world = sim.world.lock();
    let tenant = auth::find_tenant(&world.tenants, tenant_segment).map_err(Rejection::Page)?;
    let app = auth::find_app(tenant, params).map_err(Rejection::Page)?;
    let reply = reply_to(app, params)?;
    let refuse = |e: AuthError| Rejection::Reply(reply.clone(), e);
    if app.revoked {
        return Err(refuse(disabled(app)));
    }
    check_response_type(params).map_err(refuse)?;
    let scope = auth::required(params, "scope").map_err(refuse)?;
    let scopes = parse_scopes(scope, tenant).map_err(refuse)?;
    let prompt = Prompt::parse(param(params, "prompt")).map_err(refuse)?;
    let challenge = challenge(params, app).map_err(refuse)?;
    Ok(Request {
        tenant_id: tenant.id.clone(),
        client_id: app.client_id.clone(),
        reply,
        scopes,
        prompt,
        login_hint: param(params, "login_hint").map(str::to_string),
        nonce: param(params, "nonce").map(str::to_string),
        challenge,
    })
}

/// The answer to a sign-in for an app the control API revoked (disabled in the tenant).
pub fn disabled(app: &App) -> AuthError {
    aadsts(
        "unauthorized_client",
        7000112,
        &format!("Application '{id}'({id}) is disabled.", id = app.client_id),
    )
}

fn check_response_type(params: &Params) -> Result<(), AuthError> {
    match auth::required(params, "response_type")? {
        "code" => Ok(()),
        other
            if other
                .split(' ')
                .all(|t| matches!(t, "code" | "token" | "id_token")) =>
        {
            Err(aadsts(
                "unauthorized_client",
                700054,
                &format!("response_type '{other}' is not enabled for the application."),
            ))
        }
        other => Err(aadsts(
            "unsupported_response_type",
            70005,
            &format!("The response_type '{other}' is not supported."),
        )),
    }
}

/// The scopes of `raw` in canonical form, without repeats.
pub fn parse_scopes(raw: &str, tenant: &Tenant) -> Result<Vec<String>, AuthError> {
    let mut scopes: Vec<String> = Vec::new();
    for scope in raw.split_whitespace() {
        let canonical = canonical_scope(scope, tenant)?;
        if !scopes.contains(&canonical) {
            scopes.push(canonical);
        }
    }
    if scopes.is_empty() {
        return Err(aadsts(
            "invalid_scope",
            70011,
            "The provided request must include a 'scope' input parameter.",
        ));
    }
    let default = format!("{GRAPH}.default");
    if scopes.contains(&default) && scopes.iter().any(|s| s.starts_with(GRAPH) && *s != default) {
        return Err(aadsts(
            "invalid_scope",
            70011,
            &format!(
                "The provided value for the input parameter 'scope' is not valid. The scope '{raw}' mixes '.default' with other permissions of the same resource."
            ),
        ));
    }
    Ok(scopes)
}

fn canonical_scope(scope: &str, tenant: &Tenant) -> Result<String, AuthError> {
    if let Some(oidc) = OIDC_SCOPES.iter().find(|o| o.eq_ignore_ascii_case(scope)) {
        return Ok(oidc.to_string());
    }
    let name = match scope.get(..GRAPH.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(GRAPH) => &scope[GRAPH.len()..],
        _ if scope.contains('/') || scope.contains(':') => {
            let resource = scope.rsplit_once('/').map_or(scope, |(r, _)| r);
            return Err(aadsts(
                "invalid_resource",
                500011,
                &format!(
                    "The resource principal named {resource} was not found in the tenant named {}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.",
                    tenant.name
                ),
            ));
        }
        _ => scope,
    };
    if name == ".default" {
        return Ok(format!("{GRAPH}.default"));
    }
    GRAPH_PERMISSIONS
        .iter()
        .find(|p| p.eq_ignore_ascii_case(name))
        .map(|p| format!("{GRAPH}{p}"))
        .ok_or_else(|| {
            aadsts(
                "invalid_scope",
                70011,
                &format!("The provided value for the input parameter 'scope' is not valid. The scope '{scope}' does not exist."),
            )
        })
}

/// The PKCE challenge; required of public clients (Entra leaves it optional for confidential
/// ones; the simulator makes apps without a credential prove themselves this way).
fn challenge(params: &Params, app: &App) -> Result<Option<Challenge>, AuthError> {
    let Some(value) = param(params, "code_challenge") else {
        if app.is_public() {
            return Err(aadsts(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required: the application has no credential of its own, so the request must contain a 'code_challenge'.",
            ));
        }
        return Ok(None);
    };
    let method = match param(params, "code_challenge_method") {
        None | Some("plain") => ChallengeMethod::Plain,
        Some("S256") => ChallengeMethod::S256,
        Some(other) => {
            return Err(aadsts(
                "invalid_request",
                90023,
                &format!(
                    "The code_challenge_method '{other}' is not supported: use S256 or plain."
                ),
            ));
        }
    };
    if !is_pkce_string(value) {
        return Err(aadsts(
            "invalid_request",
            501491,
            "Invalid size of Code_Challenge parameter.",
        ));
    }
    Ok(Some(Challenge {
        value: value.to_string(),
        method,
    }))
}

/// 43 to 128 unreserved characters, the form of verifiers and challenges (RFC 7636 4.1).
pub fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> Tenant {
        Tenant {
            id: "t".into(),
            name: "contoso".into(),
            apps: Vec::new(),
            users: Vec::new(),
        }
    }

    #[test]
    fn scopes_are_canonical_and_checked() {
        let scopes = parse_scopes(
            "openid Files.ReadWrite.All https://graph.microsoft.com/sites.readwrite.all OFFLINE_ACCESS openid",
            &tenant(),
        )
        .unwrap();
        assert_eq!(
            scopes,
            [
                "openid",
                "https://graph.microsoft.com/Files.ReadWrite.All",
                "https://graph.microsoft.com/Sites.ReadWrite.All",
                "offline_access"
            ]
        );
        let code = |raw: &str| parse_scopes(raw, &tenant()).unwrap_err().aadsts;
        assert_eq!(code("Files.Frobnicate"), 70011);
        assert_eq!(
            code("https://graph.microsoft.com/.default User.Read"),
            70011
        );
        assert_eq!(code("api://other-app/read"), 500011);
    }

    #[test]
    fn pkce_strings_have_rfc_7636_form() {
        assert!(is_pkce_string(&"a".repeat(43)));
        assert!(is_pkce_string(&"A-._~9".repeat(20)));
        assert!(!is_pkce_string(&"a".repeat(42)));
        assert!(!is_pkce_string(&"a".repeat(129)));
        assert!(!is_pkce_string(&format!("{}+", "a".repeat(43))));
    }
}
