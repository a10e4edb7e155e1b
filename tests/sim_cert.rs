//! Certificate client assertions (GRAPH.md section 8): RS256 + x5t, PS256 + x5t#S256, and the
//! refusals (wrong key, unknown thumbprint, expired, not yet valid, wrong audience).

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha1::Digest;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

struct KeyPair {
    key_pem: Vec<u8>,
    cert_pem: String,
    cert_der: Vec<u8>,
}

fn openssl_pair(dir: &Path, name: &str) -> KeyPair {
    let key = dir.join(format!("{name}.key.pem"));
    let cert = dir.join(format!("{name}.cert.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "1", "-subj", "/CN=spgate-test"])
        .output()
        .expect("the openssl command-line tool is needed for certificate tests");
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cert_pem = std::fs::read_to_string(&cert).unwrap();
    let body: String = cert_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    KeyPair {
        key_pem: std::fs::read(&key).unwrap(),
        cert_der: STANDARD.decode(body).unwrap(),
        cert_pem,
    }
}

/// A simulator whose app `cert-app` trusts `good`'s certificate; `other` is unregistered.
struct Fixture {
    sim: Sim,
    good: KeyPair,
    other: KeyPair,
    _dir: tempfile::TempDir,
}

fn fixture(inline: bool) -> Fixture {
    fixture_with(inline, &[])
}

fn fixture_with(inline: bool, extra: &[&str]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let good = openssl_pair(dir.path(), "good");
    let other = openssl_pair(dir.path(), "other");
    let cert = if inline {
        format!("'''\n{}'''", good.cert_pem)
    } else {
        format!("{:?}", dir.path().join("good.cert.pem").to_str().unwrap())
    };
    let apps = format!("[[tenants.apps]]\nclient_id = \"cert-app\"\ncertificate = {cert}\n");
    let sim = Sim::spawn(Some(&seed(&apps, "")), extra);
    Fixture {
        sim,
        good,
        other,
        _dir: dir,
    }
}

#[derive(Clone, Copy)]
enum Thumb {
    Sha1,
    Sha256,
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(aud: &str, nbf: i64, exp: i64) -> Value {
    json!({
        "aud": aud, "iss": "cert-app", "sub": "cert-app", "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": nbf, "iat": nbf, "exp": exp,
    })
}

fn sign(alg: Algorithm, thumb: Thumb, cert_der: &[u8], key_pem: &[u8], claims: &Value) -> String {
    let mut header = Header::new(alg);
    match thumb {
        Thumb::Sha1 => header.x5t = Some(URL_SAFE_NO_PAD.encode(sha1::Sha1::digest(cert_der))),
        Thumb::Sha256 => {
            header.x5t_s256 = Some(URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(cert_der)));
        }
    }
    let key = EncodingKey::from_rsa_pem(key_pem).expect("RSA key");
    jsonwebtoken::encode(&header, claims, &key).expect("sign JWT")
}

async fn redeem(sim: &Sim, assertion: &str) -> reqwest::Response {
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", "cert-app"),
        ("scope", "https://graph.microsoft.com/.default"),
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    sim.token_request("contoso", &form).await
}

async fn expect_token_works(sim: &Sim, assertion: &str) {
    let body = json_status(redeem(sim, assertion).await, 200).await;
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();
    let url = sim.graph(&format!("/sites/{HOST}:/sites/partners"));
    let resp = sim.http.get(url).bearer_auth(token).send().await.unwrap();
    json_status(resp, 200).await;
}

async fn expect_700027(sim: &Sim, assertion: &str) {
    expect_invalid_client(sim, assertion, 700027).await;
}

/// An assertion outside its `nbf`..`exp` window: AADSTS700024, as the real service answers.
async fn expect_700024(sim: &Sim, assertion: &str) {
    expect_invalid_client(sim, assertion, 700024).await;
}

async fn expect_invalid_client(sim: &Sim, assertion: &str, code: u64) {
    let body = json_status(redeem(sim, assertion).await, 401).await;
    assert_eq!(body["error"], "invalid_client", "{body}");
    let codes = body["error_codes"].as_array().expect("error_codes");
    assert!(codes.iter().any(|c| c == code), "{body}");
    let desc = body["error_description"].as_str().unwrap_or_default();
    assert!(desc.starts_with(&format!("AADSTS{code}:")), "{body}");
}

#[tokio::test]
async fn rs256_with_x5t_is_accepted() {
    let f = fixture(false);
    let aud = f.sim.token_url("contoso");
    let c = claims(&aud, now() - 10, now() + 600);
    let jwt = sign(
        Algorithm::RS256,
        Thumb::Sha1,
        &f.good.cert_der,
        &f.good.key_pem,
        &c,
    );
    expect_token_works(&f.sim, &jwt).await;
}

#[tokio::test]
async fn ps256_with_x5t_s256_is_accepted_and_inline_pem_works() {
    let f = fixture(true);
    let aud = f.sim.token_url("contoso");
    let c = claims(&aud, now() - 10, now() + 600);
    let jwt = sign(
        Algorithm::PS256,
        Thumb::Sha256,
        &f.good.cert_der,
        &f.good.key_pem,
        &c,
    );
    expect_token_works(&f.sim, &jwt).await;
    let jwt = sign(
        Algorithm::RS256,
        Thumb::Sha1,
        &f.good.cert_der,
        &f.good.key_pem,
        &c,
    );
    expect_token_works(&f.sim, &jwt).await;
}

#[tokio::test]
async fn wrong_key_is_refused() {
    let f = fixture(false);
    let c = claims(&f.sim.token_url("contoso"), now() - 10, now() + 600);
    // The registered certificate's thumbprint, but signed with another private key.
    let jwt = sign(
        Algorithm::RS256,
        Thumb::Sha1,
        &f.good.cert_der,
        &f.other.key_pem,
        &c,
    );
    expect_700027(&f.sim, &jwt).await;
    let jwt = sign(
        Algorithm::PS256,
        Thumb::Sha256,
        &f.good.cert_der,
        &f.other.key_pem,
        &c,
    );
    expect_700027(&f.sim, &jwt).await;
}

#[tokio::test]
async fn unknown_thumbprint_is_refused() {
    let f = fixture(false);
    let c = claims(&f.sim.token_url("contoso"), now() - 10, now() + 600);
    let jwt = sign(
        Algorithm::RS256,
        Thumb::Sha1,
        &f.other.cert_der,
        &f.other.key_pem,
        &c,
    );
    expect_700027(&f.sim, &jwt).await;
}

/// RS256 + x5t signed with the registered certificate's own key.
fn good_rs256(f: &Fixture, claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        Thumb::Sha1,
        &f.good.cert_der,
        &f.good.key_pem,
        claims,
    )
}

#[tokio::test]
async fn expired_assertion_is_refused() {
    let f = fixture(false);
    let aud = f.sim.token_url("contoso");
    expect_700024(
        &f.sim,
        &good_rs256(&f, &claims(&aud, now() - 1200, now() - 600)),
    )
    .await;
}

#[tokio::test]
async fn not_yet_valid_assertion_is_refused() {
    let f = fixture(false);
    let aud = f.sim.token_url("contoso");
    expect_700024(
        &f.sim,
        &good_rs256(&f, &claims(&aud, now() + 600, now() + 1200)),
    )
    .await;
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let f = fixture(false);
    for aud in [
        "https://login.microsoftonline.com/contoso/oauth2/v2.0/token".to_string(),
        f.sim.token_url("fabrikam"),
        format!("{}/contoso/oauth2/v2.0/devicecode", f.sim.base),
    ] {
        let c = claims(&aud, now() - 10, now() + 600);
        let jwt = sign(
            Algorithm::RS256,
            Thumb::Sha1,
            &f.good.cert_der,
            &f.good.key_pem,
            &c,
        );
        expect_700027(&f.sim, &jwt).await;
    }
}

#[tokio::test]
async fn tampered_and_garbage_assertions_are_refused() {
    let f = fixture(false);
    let c = claims(&f.sim.token_url("contoso"), now() - 10, now() + 600);
    let jwt = sign(
        Algorithm::RS256,
        Thumb::Sha1,
        &f.good.cert_der,
        &f.good.key_pem,
        &c,
    );
    // Swap the claims for other claims, keeping header and signature.
    let mut parts: Vec<String> = jwt.split('.').map(str::to_string).collect();
    let forged = json!({"aud": f.sim.token_url("contoso"), "iss": "cert-app", "sub": "cert-app",
        "jti": "x", "nbf": now() - 10, "exp": now() + 86_400});
    parts[1] = URL_SAFE_NO_PAD.encode(forged.to_string());
    expect_700027(&f.sim, &parts.join(".")).await;
    expect_700027(&f.sim, "not.a.jwt").await;
    f.sim.assert_alive();
}

const PUBLIC: &str = "http://sim.example:8443";

#[tokio::test]
async fn public_url_is_the_audience_and_the_base_of_links() {
    let f = fixture_with(false, &["--public-url", PUBLIC]);
    let public_aud = format!("{PUBLIC}/contoso/oauth2/v2.0/token");
    let c = claims(&f.sim.token_url("contoso"), now() - 10, now() + 600);
    expect_700027(&f.sim, &good_rs256(&f, &c)).await;
    let c = claims(&public_aud, now() - 10, now() + 600);
    let body = json_status(redeem(&f.sim, &good_rs256(&f, &c)).await, 200).await;
    let token = body["access_token"].as_str().unwrap().to_string();
    let (site, drive) = f.sim.site_drive(&token, "partners").await;
    let ctx = Ctx {
        sim: f.sim,
        token,
        site,
        drive,
    };
    let item = ctx.put("p.txt", b"p").await;
    let links = [
        item["@microsoft.graph.downloadUrl"]
            .as_str()
            .unwrap()
            .to_string(),
        ctx.create_session(
            "s.bin",
            json!({"@microsoft.graph.conflictBehavior": "fail"}),
        )
        .await["uploadUrl"]
            .as_str()
            .unwrap()
            .to_string(),
        ctx.get_json(&ctx.d("/root/delta?token=latest")).await["@odata.deltaLink"]
            .as_str()
            .unwrap()
            .to_string(),
        ctx.get_json(&format!("{}?$top=1", ctx.d("/root/children")))
            .await
            .get("@odata.nextLink")
            .and_then(Value::as_str)
            .unwrap_or(PUBLIC)
            .to_string(),
    ];
    for link in links {
        assert!(
            link.starts_with(PUBLIC),
            "link not under --public-url: {link}"
        );
    }
    let resp = ctx
        .get(&ctx.d(&format!("/items/{}/content", item["id"].as_str().unwrap())))
        .await;
    let loc = resp.headers()["location"].to_str().unwrap().to_string();
    assert!(
        loc.starts_with(PUBLIC),
        "Location not under --public-url: {loc}"
    );
}
