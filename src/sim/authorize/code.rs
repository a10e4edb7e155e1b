//! Authorization codes and what they become: a code is issued at the end of a sign-in and
//! redeemed once at the token endpoint, within ten minutes, by the same client, with the same
//! redirect URI and the PKCE verifier; the tokens carry the granted scopes and, when `openid`
//! was asked for, an id token.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::Mac;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::request::{Challenge, ChallengeMethod, OIDC_SCOPES, Request, param};
use super::{SignIns, aadsts};
use crate::sim::auth::{self, Params};
use crate::sim::error::AuthError;
use crate::sim::state::{App, Sim, Tenant, user_object_id};

/// How long a code may wait to be redeemed.
pub const LIFETIME: Duration = Duration::from_secs(600);
/// How long an id token is valid.
const ID_TOKEN_LIFETIME: u64 = 3600;

/// An issued authorization code.
pub struct Code {
    tenant_id: String,
    client_id: String,
    redirect_uri: String,
    user: String,
    scopes: Vec<String>,
    challenge: Option<Challenge>,
    nonce: Option<String>,
    issued: Instant,
    /// Codes issued before `SignIns::code_generation` are expired.
    generation: u64,
    redeemed: bool,
}

impl Code {
    pub fn is_stale(&self) -> bool {
        self.issued.elapsed() >= LIFETIME
    }
}

/// What a redeemed code stood for.
pub struct Redeemed {
    pub user: String,
    pub scopes: Vec<String>,
    pub nonce: Option<String>,
}

impl SignIns {
    /// A new code for `user` signed in through `request`.
    pub fn issue_code(&self, request: &Request, user: &str) -> String {
        let value = auth::random_token("ac");
        self.codes.insert(
            value.clone(),
            Code {
                tenant_id: request.tenant_id.clone(),
                client_id: request.client_id.clone(),
                redirect_uri: request.reply.redirect_uri.clone(),
                user: user.to_string(),
                scopes: request.scopes.clone(),
                challenge: request.challenge.clone(),
                nonce: request.nonce.clone(),
                issued: Instant::now(),
                generation: self.code_generation.load(Ordering::Relaxed),
                redeemed: false,
            },
        );
        value
    }

    /// Expires every code issued so far (`POST /_sim/codes/expire`).
    pub fn expire_codes(&self) {
        self.code_generation.fetch_add(1, Ordering::Relaxed);
    }
}

/// Redeems the `code` of a token request by `app` of `tenant`, whose credentials (if any) were
/// checked. A failed attempt leaves the code as it was; a redeemed code answers 54005 until it
/// would have expired.
pub fn redeem(
    sim: &Sim,
    tenant: &Tenant,
    app: &App,
    params: &Params,
) -> Result<Redeemed, AuthError> {
    let presented = auth::required(params, "code")?;
    let invalid = |why: &str| {
        aadsts(
            "invalid_grant",
            70000,
            &format!("The provided value for the 'code' parameter is not valid. {why}"),
        )
    };
    let mut code = sim
        .sign_ins
        .codes
        .get_mut(presented)
        .ok_or_else(|| invalid("The code is unknown."))?;
    if code.tenant_id != tenant.id {
        return Err(aadsts(
            "invalid_grant",
            700005,
            "Provided Authorization Code is intended to use against other tenant, thus rejected.",
        ));
    }
    if code.client_id != app.client_id {
        return Err(invalid("The code was issued to another client."));
    }
    if code.redeemed {
        return Err(aadsts(
            "invalid_grant",
            54005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        ));
    }
    if code.is_stale() || code.generation < sim.sign_ins.code_generation.load(Ordering::Relaxed) {
        return Err(aadsts(
            "invalid_grant",
            70008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        ));
    }
    let redirect_uri = auth::required(params, "redirect_uri")?;
    if redirect_uri != code.redirect_uri {
        return Err(aadsts(
            "invalid_grant",
            500112,
            &format!(
                "The reply address '{redirect_uri}' does not match the reply address '{}' provided when requesting Authorization code.",
                code.redirect_uri
            ),
        ));
    }
    if let Some(challenge) = &code.challenge {
        let Some(verifier) = param(params, "code_verifier") else {
            return Err(aadsts(
                "invalid_grant",
                50148,
                "The code_verifier is missing: the authorization request supplied a code_challenge (PKCE).",
            ));
        };
        if !verifies(challenge, verifier) {
            return Err(aadsts(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
    }
    code.redeemed = true;
    Ok(Redeemed {
        user: code.user.clone(),
        scopes: code.scopes.clone(),
        nonce: code.nonce.clone(),
    })
}

/// Whether `verifier` answers `challenge`: `S256` is BASE64URL-NOPAD(SHA256(verifier)).
pub fn verifies(challenge: &Challenge, verifier: &str) -> bool {
    let expected = match challenge.method {
        ChallengeMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
        ChallengeMethod::Plain => verifier.to_string(),
    };
    bool::from(expected.as_bytes().ct_eq(challenge.value.as_bytes()))
}

/// The `scope` of a token answer: the Graph permissions granted and the OpenID Connect scopes
/// but `offline_access` (`User.Read` when no Graph permission was asked for).
pub fn granted_scope(scopes: &[String]) -> String {
    let mut granted: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|s| *s != "offline_access")
        .collect();
    if granted.iter().all(|s| OIDC_SCOPES.contains(s)) {
        granted.push("https://graph.microsoft.com/User.Read");
    }
    granted.join(" ")
}

/// An id token for `upn`: a JWT signed with HS256 under the simulator's own key, carrying the
/// claims of Entra's v2.0 id tokens (`aud`, `iss`, `iat`, `nbf`, `exp`, `name`, `oid`,
/// `preferred_username`, `sub`, `tid`, `ver`, and `nonce` and `email` when asked for).
pub fn id_token(
    sim: &Sim,
    tenant: &Tenant,
    app: &App,
    upn: &str,
    scopes: &[String],
    nonce: Option<&str>,
) -> String {
    let (oid, name) = match tenant.user(upn) {
        Some(user) => (user.id.clone(), user.display_name.clone()),
        None => (
            user_object_id(&tenant.id, upn),
            upn.split('@').next().unwrap_or(upn).to_string(),
        ),
    };
    let now = chrono::Utc::now().timestamp();
    let sub = URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{}|{oid}", app.client_id)));
    let mut claims = json!({
        "aud": app.client_id,
        "iss": format!("{}/{}/v2.0", sim.public_url, tenant.id),
        "iat": now,
        "nbf": now,
        "exp": now + ID_TOKEN_LIFETIME as i64,
        "name": name,
        "oid": oid,
        "preferred_username": upn,
        "sub": sub,
        "tid": tenant.id,
        "ver": "2.0",
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    if scopes.iter().any(|s| s == "email") {
        claims["email"] = json!(upn);
    }
    sign_hs256(&sim.sign_key, &claims)
}

fn sign_hs256(key: &[u8], claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256","kid":"spgate-sim"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{payload}.{signature}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_base64url_of_sha256() {
        // RFC 7636 appendix B.
        let challenge = Challenge {
            value: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
            method: ChallengeMethod::S256,
        };
        assert!(verifies(
            &challenge,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!verifies(
            &challenge,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx"
        ));
        let plain = Challenge {
            value: "x".repeat(43),
            method: ChallengeMethod::Plain,
        };
        assert!(verifies(&plain, &"x".repeat(43)));
        assert!(!verifies(&plain, &"y".repeat(43)));
    }

    #[test]
    fn granted_scope_leaves_out_offline_access() {
        let scopes = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            granted_scope(&scopes(&[
                "openid",
                "offline_access",
                "https://graph.microsoft.com/Files.ReadWrite.All"
            ])),
            "openid https://graph.microsoft.com/Files.ReadWrite.All"
        );
        assert_eq!(
            granted_scope(&scopes(&["openid", "profile"])),
            "openid profile https://graph.microsoft.com/User.Read"
        );
    }
}
