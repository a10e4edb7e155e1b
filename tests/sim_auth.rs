//! GRAPH.md section 8 against the simulator: secrets, token errors, revocation, expired
//! access tokens, device code and rotating refresh tokens.

mod common;

use common::*;
use reqwest::Response;
use serde_json::{Value, json};

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";

/// Asserts an identity-platform error: status, `error`, `error_codes` and `AADSTSnnnn:`.
pub async fn aad_error(resp: Response, status: u16, error: &str, code: u64) -> Value {
    let body = json_status(resp, status).await;
    assert_eq!(body["error"], error, "{body}");
    let codes = body["error_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("error_codes: {body}"));
    assert!(
        codes.iter().any(|c| c.as_u64() == Some(code)),
        "want {code}: {body}"
    );
    let desc = body["error_description"].as_str().unwrap_or_default();
    assert!(
        desc.starts_with(&format!("AADSTS{code}:")),
        "error_description: {body}"
    );
    for key in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[key].is_string(), "{key} missing: {body}");
    }
    body
}

fn secret_form<'a>(client: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grant_type", "client_credentials"),
        ("client_id", client),
        ("client_secret", secret),
        ("scope", GRAPH_SCOPE),
    ]
}

async fn site_status(sim: &Sim, token: &str) -> u16 {
    let url = sim.graph(&format!("/sites/{HOST}:/sites/partners"));
    sim.http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn secret_token_is_app_only_bearer() {
    let sim = Sim::start();
    let resp = sim
        .token_request("contoso", &secret_form(APP, SECRET))
        .await;
    let body = json_status(resp, 200).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599, "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        body.get("refresh_token").is_none(),
        "client credentials give no refresh token"
    );
    assert_eq!(
        site_status(&sim, body["access_token"].as_str().unwrap()).await,
        200
    );
}

#[tokio::test]
async fn tenant_aliases_and_lifetime_from_seed() {
    let seed = format!("token_lifetime_secs = 1234\n{}", seed("", ""));
    let sim = Sim::with_seed(&seed);
    for tenant in [
        "contoso",
        "contoso.onmicrosoft.com",
        "2f0b6c8e-1d7a-4c53-9a57-5f1e8a0c9d11",
    ] {
        let resp = sim.token_request(tenant, &secret_form(APP, SECRET)).await;
        let body = json_status(resp, 200).await;
        assert_eq!(body["expires_in"], 1234, "{tenant}: {body}");
    }
}

#[tokio::test]
async fn token_errors() {
    let sim = Sim::start();
    let resp = sim
        .token_request("fabrikam", &secret_form(APP, SECRET))
        .await;
    aad_error(resp, 400, "invalid_request", 90002).await;
    let resp = sim
        .token_request("contoso", &secret_form("no-such-app", SECRET))
        .await;
    aad_error(resp, 400, "unauthorized_client", 700016).await;
    let resp = sim
        .token_request("contoso", &secret_form(APP, "wrong-secret"))
        .await;
    aad_error(resp, 401, "invalid_client", 7000215).await;
    // The scope of client credentials must end in /.default.
    let mut form = secret_form(APP, SECRET);
    form[3] = ("scope", "https://graph.microsoft.com/Files.ReadWrite.All");
    let body = json_status(sim.token_request("contoso", &form).await, 400).await;
    assert!(
        body["error"].is_string() && body["error_codes"].is_array(),
        "{body}"
    );
    // Unsupported grant type and a missing one.
    let form = [("grant_type", "password"), ("client_id", APP)];
    let body = json_status(sim.token_request("contoso", &form).await, 400).await;
    assert!(body["error"].is_string(), "{body}");
    let body = json_status(
        sim.token_request("contoso", &[("client_id", APP)]).await,
        400,
    )
    .await;
    assert!(body["error"].is_string(), "{body}");
}

#[tokio::test]
async fn revoke_and_restore_app() {
    let sim = Sim::start();
    sim.control(&format!("/apps/{APP}/revoke"), json!({})).await;
    let resp = sim
        .token_request("contoso", &secret_form(APP, SECRET))
        .await;
    aad_error(resp, 401, "invalid_client", 7000222).await;
    sim.control(&format!("/apps/{APP}/restore"), json!({}))
        .await;
    let token = sim.app_token().await;
    assert_eq!(site_status(&sim, &token).await, 200);
}

async fn expect_401(sim: &Sim, auth: Option<&str>) {
    let url = sim.graph(&format!("/sites/{HOST}:/sites/partners"));
    let mut req = sim.http.get(url);
    if let Some(auth) = auth {
        req = req.header("Authorization", auth);
    }
    let resp = req.send().await.unwrap();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    graph_error(resp, 401, "InvalidAuthenticationToken").await;
    let www = www.expect("401 carries WWW-Authenticate");
    assert!(www.starts_with("Bearer"), "WWW-Authenticate: {www}");
}

#[tokio::test]
async fn missing_or_bad_bearer_is_401() {
    let sim = Sim::start();
    expect_401(&sim, None).await;
    expect_401(&sim, Some("Bearer not-a-token")).await;
    expect_401(&sim, Some("Basic c3BnYXRlOmRlbW8=")).await;
    expect_401(&sim, Some("Bearer")).await;
}

#[tokio::test]
async fn expired_access_token_is_401_then_new_token_works() {
    let sim = Sim::start();
    let token = sim.app_token().await;
    assert_eq!(site_status(&sim, &token).await, 200);
    sim.control("/tokens/expire", json!({})).await;
    expect_401(&sim, Some(&format!("Bearer {token}"))).await;
    let fresh = sim.app_token().await;
    assert_ne!(fresh, token);
    assert_eq!(site_status(&sim, &fresh).await, 200);
}

#[tokio::test]
async fn zero_lifetime_tokens_expire() {
    let seed = format!("token_lifetime_secs = 0\n{}", seed("", ""));
    let sim = Sim::with_seed(&seed);
    let resp = sim
        .token_request("contoso", &secret_form(APP, SECRET))
        .await;
    let body = json_status(resp, 200).await;
    let token = format!("Bearer {}", body["access_token"].as_str().unwrap());
    expect_401(&sim, Some(&token)).await;
}

async fn device_code(sim: &Sim) -> Value {
    let url = format!("{}/contoso/oauth2/v2.0/devicecode", sim.base);
    let form = [
        ("client_id", APP),
        (
            "scope",
            "https://graph.microsoft.com/.default offline_access",
        ),
    ];
    let resp = sim.http.post(url).form(&form).send().await.unwrap();
    json_status(resp, 200).await
}

async fn poll_device(sim: &Sim, device_code: &str) -> Response {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", APP),
        ("device_code", device_code),
    ];
    sim.token_request("contoso", &form).await
}

async fn refresh(sim: &Sim, refresh_token: &str) -> Response {
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", APP),
        ("refresh_token", refresh_token),
        (
            "scope",
            "https://graph.microsoft.com/.default offline_access",
        ),
    ];
    sim.token_request("contoso", &form).await
}

/// Runs the device code flow to the end; returns the token response.
async fn delegated_login(sim: &Sim) -> Value {
    let dc = device_code(sim).await;
    let code = dc["device_code"].as_str().unwrap();
    let user_code = dc["user_code"].as_str().unwrap();
    sim.control(
        "/devicecode/approve",
        json!({"user_code": user_code, "user": "ann@contoso.com"}),
    )
    .await;
    json_status(poll_device(sim, code).await, 200).await
}

#[tokio::test]
async fn device_code_pending_approve_and_token() {
    let seed = format!("device_code_interval_secs = 2\n{}", seed("", ""));
    let sim = Sim::with_seed(&seed);
    let dc = device_code(&sim).await;
    for key in ["device_code", "user_code", "verification_uri", "message"] {
        assert!(
            dc[key].as_str().is_some_and(|s| !s.is_empty()),
            "{key}: {dc}"
        );
    }
    assert_eq!(dc["expires_in"], 900, "{dc}");
    assert_eq!(dc["interval"], 2, "{dc}");
    let code = dc["device_code"].as_str().unwrap();
    let body = json_status(poll_device(&sim, code).await, 400).await;
    assert_eq!(body["error"], "authorization_pending", "{body}");
    let user_code = dc["user_code"].as_str().unwrap();
    sim.control("/devicecode/approve", json!({"user_code": user_code}))
        .await;
    let tok = json_status(poll_device(&sim, code).await, 200).await;
    assert_eq!(tok["token_type"], "Bearer");
    assert!(tok["expires_in"].is_u64(), "{tok}");
    assert!(
        tok["refresh_token"].as_str().is_some_and(|s| !s.is_empty()),
        "{tok}"
    );
    let access = tok["access_token"].as_str().unwrap();
    assert_eq!(site_status(&sim, access).await, 200);
    // A device code is redeemed once.
    let again = json_status(poll_device(&sim, code).await, 400).await;
    assert!(again["error"].is_string(), "{again}");
    assert_ne!(again["error"], "authorization_pending", "{again}");
}

#[tokio::test]
async fn unknown_device_code_is_refused() {
    let sim = Sim::start();
    let body = json_status(poll_device(&sim, "no-such-device-code").await, 400).await;
    assert!(body["error"].is_string(), "{body}");
    assert_ne!(body["error"], "authorization_pending", "{body}");
}

#[tokio::test]
async fn refresh_tokens_rotate_and_are_single_use() {
    let sim = Sim::start();
    let first = delegated_login(&sim).await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let second = json_status(refresh(&sim, &rt1).await, 200).await;
    let rt2 = second["refresh_token"]
        .as_str()
        .expect("refresh rotates")
        .to_string();
    assert_ne!(rt1, rt2, "refresh token must rotate");
    let access2 = second["access_token"].as_str().unwrap();
    assert_ne!(access2, first["access_token"].as_str().unwrap());
    assert_eq!(site_status(&sim, access2).await, 200);
    // The old refresh token is refused; the new one works exactly once.
    aad_error(refresh(&sim, &rt1).await, 400, "invalid_grant", 70000).await;
    let third = json_status(refresh(&sim, &rt2).await, 200).await;
    assert_ne!(third["refresh_token"], rt2.as_str());
    aad_error(refresh(&sim, &rt2).await, 400, "invalid_grant", 70000).await;
    aad_error(refresh(&sim, "garbage").await, 400, "invalid_grant", 70000).await;
}

#[tokio::test]
async fn refresh_token_of_revoked_app_is_50173() {
    let sim = Sim::start();
    let tok = delegated_login(&sim).await;
    sim.control(&format!("/apps/{APP}/revoke"), json!({})).await;
    let rt = tok["refresh_token"].as_str().unwrap();
    aad_error(refresh(&sim, rt).await, 400, "invalid_grant", 50173).await;
}

#[tokio::test]
async fn control_calls_are_not_counted_and_tokens_are() {
    let sim = Sim::start();
    sim.control("/stats/reset", json!({})).await;
    sim.app_token().await;
    sim.stats().await;
    sim.faults(json!({})).await;
    let stats = sim.stats().await;
    assert_eq!(stats["requests"], 1, "{stats}");
    assert_eq!(stats["by_kind"]["token"], 1, "{stats}");
}
