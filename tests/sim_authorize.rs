//! The browser sign-in against the simulator (GRAPH.md section 8, authorization code + PKCE):
//! the sign-in form, consent, single sign-on from the browser session, the account picker,
//! errors shown as a page or sent back to the app, and the token endpoint's checks of the code
//! (verifier, reuse, redirect URI, client, expiry). A `Browser` is the simulator's HTTP client
//! (no redirects followed) with a cookie jar kept by hand.

mod common;

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Response;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};
use sha2::Digest;

use common::*;

const PARTNER: &str = "partner.admin@contoso.onmicrosoft.com";
const SVC: &str = "svc.spgate@contoso.onmicrosoft.com";
const PASSWORD: &str = "demo-password";
const CALLBACK: &str = "http://localhost/console/oauth/callback";
const SCOPES: &str =
    "openid profile offline_access https://graph.microsoft.com/Files.ReadWrite.All";
const PUBLIC_APP: &str = "spgate-public";
const ADELE: &str = "adele@contoso.onmicrosoft.com";

/// The default world plus a public client (no secret) and a user with the default password.
fn public_seed() -> String {
    seed(
        r#"
[[tenants.apps]]
client_id = "spgate-public"
redirect_uris = ["http://localhost/cb", "https://gateway.example.com/console/oauth/callback"]
[[tenants.users]]
name = "adele@contoso.onmicrosoft.com"
display_name = "Adele Vance"
"#,
        "",
    )
}

/// What a browser got: a page or a redirect.
#[derive(Debug)]
enum Answer {
    Page { status: u16, html: String },
    Redirect(String),
}

impl Answer {
    /// The page, asserting it is one of kind `kind` (its body's `data-page`).
    fn page(self, kind: &str) -> String {
        match self {
            Answer::Page { html, .. } if html.contains(&format!("data-page=\"{kind}\"")) => html,
            other => panic!("want a {kind} page, got {other:?}"),
        }
    }

    /// The redirect's location.
    fn location(self) -> String {
        match self {
            Answer::Redirect(location) => location,
            other => panic!("want a redirect, got {other:?}"),
        }
    }

    /// The parameters of a redirect to `base`.
    fn reply(self, base: &str) -> HashMap<String, String> {
        let location = self.location();
        let query = location
            .strip_prefix(base)
            .and_then(|rest| rest.strip_prefix('?'))
            .unwrap_or_else(|| panic!("redirect to {location}, not to {base}"));
        serde_urlencoded::from_str(query).expect("redirect query")
    }
}

/// A browser: the simulator's client and a cookie jar.
struct Browser<'a> {
    sim: &'a Sim,
    cookies: HashMap<String, String>,
    /// `Set-Cookie` headers of the last answer.
    set_cookies: Vec<String>,
}

impl<'a> Browser<'a> {
    fn new(sim: &'a Sim) -> Self {
        Browser {
            sim,
            cookies: HashMap::new(),
            set_cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        pairs.join("; ")
    }

    async fn answer(&mut self, resp: Response) -> Answer {
        self.set_cookies = resp
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_string())
            .collect();
        for cookie in &self.set_cookies {
            let pair = cookie.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').expect("cookie name=value");
            self.cookies.insert(name.trim().into(), value.trim().into());
        }
        let status = resp.status().as_u16();
        if status == 302 || status == 303 {
            let location = resp.headers()[LOCATION].to_str().unwrap().to_string();
            return Answer::Redirect(location);
        }
        Answer::Page {
            status,
            html: resp.text().await.unwrap(),
        }
    }

    async fn get(&mut self, url: &str) -> Answer {
        let resp = self
            .sim
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .expect("GET");
        self.answer(resp).await
    }

    /// Submits the form of `html` (its hidden `flow` included) with `fields`.
    async fn submit(&mut self, html: &str, fields: &[(&str, &str)]) -> Answer {
        assert!(
            html.contains("action=\"authorize\""),
            "form posts back: {html}"
        );
        let mut form = vec![("flow", hidden_flow(html))];
        form.extend(fields.iter().map(|(k, v)| (*k, v.to_string())));
        let resp = self
            .sim
            .http
            .post(format!("{}/contoso/oauth2/v2.0/authorize", self.sim.base))
            .header(COOKIE, self.cookie_header())
            .form(&form)
            .send()
            .await
            .expect("POST");
        self.answer(resp).await
    }

    async fn sign_in(&mut self, html: &str, upn: &str, password: &str) -> Answer {
        self.submit(
            html,
            &[("upn", upn), ("password", password), ("action", "signin")],
        )
        .await
    }

    /// Runs `request` from the sign-in form through consent; returns the reply to the app.
    async fn sign_in_fully(&mut self, request: &Authorize, upn: &str, password: &str) -> Reply {
        let form = self.get(&request.url(self.sim)).await.page("signin");
        let consent = self.sign_in(&form, upn, password).await.page("consent");
        let reply = self.submit(&consent, &[("action", "accept")]).await;
        reply.reply(&request.redirect_uri())
    }
}

type Reply = HashMap<String, String>;

fn hidden_flow(html: &str) -> String {
    attribute_after(html, "name=\"flow\" value=\"")
}

/// The text from `marker` up to the next double quote.
fn attribute_after(html: &str, marker: &str) -> String {
    let start = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// An authorization request with PKCE (S256), state and nonce.
struct Authorize {
    params: Vec<(String, String)>,
    verifier: String,
}

impl Authorize {
    fn new(client_id: &str) -> Self {
        let verifier = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        let state = format!("state-{}", rand::random::<u32>());
        let params = [
            ("client_id", client_id),
            ("response_type", "code"),
            ("redirect_uri", CALLBACK),
            ("scope", SCOPES),
            ("state", &state),
            ("nonce", "nonce-42"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ];
        Authorize {
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            verifier,
        }
    }

    fn with(mut self, name: &str, value: &str) -> Self {
        self.params.retain(|(k, _)| k != name);
        self.params.push((name.into(), value.into()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.params.retain(|(k, _)| k != name);
        self
    }

    fn get(&self, name: &str) -> String {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn redirect_uri(&self) -> String {
        self.get("redirect_uri")
    }

    fn url(&self, sim: &Sim) -> String {
        let query = serde_urlencoded::to_string(&self.params).unwrap();
        format!("{}/contoso/oauth2/v2.0/authorize?{query}", sim.base)
    }
}

/// Redeems `code` as `request`'s client with its verifier and redirect URI, `extra` replacing.
async fn redeem(sim: &Sim, request: &Authorize, code: &str, extra: &[(&str, &str)]) -> Response {
    let client_id = request.get("client_id");
    let redirect_uri = request.redirect_uri();
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("client_id", &client_id),
        ("code", code),
        ("redirect_uri", &redirect_uri),
        ("code_verifier", &request.verifier),
    ];
    for (k, v) in extra {
        form.retain(|(name, _)| name != k);
        if !v.is_empty() {
            form.push((k, v));
        }
    }
    sim.token_request("contoso", &form).await
}

/// Asserts a token error: status 400, `error`, and the AADSTS code in front of the description.
async fn token_error(resp: Response, error: &str, code: u64) {
    let body = json_status(resp, 400).await;
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["error_codes"], json!([code]), "{body}");
    let description = body["error_description"].as_str().unwrap();
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{body}"
    );
}

/// Asserts an error sent back to the app: `error`, `AADSTSnnnn: ...` and the request's state.
fn app_error(reply: &Reply, request: &Authorize, error: &str, code: u64) {
    assert_eq!(
        reply.get("error").map(String::as_str),
        Some(error),
        "{reply:?}"
    );
    let description = &reply["error_description"];
    assert!(
        description.starts_with(&format!("AADSTS{code}: ")),
        "{reply:?}"
    );
    assert_eq!(reply.get("state"), Some(&request.get("state")), "{reply:?}");
    assert!(!reply.contains_key("code"), "{reply:?}");
}

/// The claims of an id token.
fn claims(id_token: &str) -> Value {
    let payload = id_token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn graph_site_status(sim: &Sim, access_token: &str) -> u16 {
    sim.http
        .get(sim.graph(&format!("/sites/{HOST}:/sites/partners")))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn signins(sim: &Sim) -> Vec<Value> {
    let resp = sim.http.get(sim.ctl("/signins")).send().await.unwrap();
    json_status(resp, 200).await.as_array().unwrap().clone()
}

/// The user the id token of `reply`'s code names.
async fn signed_in_user(sim: &Sim, request: &Authorize, reply: &Reply) -> String {
    let tokens = json_status(redeem(sim, request, &reply["code"], &[]).await, 200).await;
    claims(tokens["id_token"].as_str().unwrap())["preferred_username"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn pkce_sign_in_gives_tokens_that_refresh_and_reach_graph() {
    let sim = Sim::start();
    let mut browser = Browser::new(&sim);
    let request = Authorize::new(APP);
    let form = browser.get(&request.url(&sim)).await.page("signin");
    for id in ["id=\"upn\"", "id=\"password\"", "id=\"signin\""] {
        assert!(form.contains(id), "{id} in {form}");
    }
    assert!(browser.set_cookies.is_empty(), "no session before sign-in");

    let consent = browser
        .sign_in(&form, PARTNER, PASSWORD)
        .await
        .page("consent");
    let cookie = browser
        .set_cookies
        .first()
        .expect("a session cookie")
        .clone();
    assert!(cookie.starts_with("sim_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(
        consent.contains(&format!("data-upn=\"{PARTNER}\"")),
        "{consent}"
    );
    for scope in [
        "openid",
        "profile",
        "offline_access",
        "https://graph.microsoft.com/Files.ReadWrite.All",
    ] {
        assert!(
            consent.contains(&format!("data-scope=\"{scope}\"")),
            "{scope}: {consent}"
        );
    }
    assert!(consent.contains("id=\"accept\"") && consent.contains("id=\"cancel\""));

    let reply = browser
        .submit(&consent, &[("action", "accept")])
        .await
        .reply(CALLBACK);
    assert_eq!(reply["state"], request.get("state"));
    assert!(is_guid(&reply["session_state"]), "{reply:?}");

    let tokens = json_status(redeem(&sim, &request, &reply["code"], &[]).await, 200).await;
    assert_eq!(tokens["token_type"], "Bearer");
    let scope = tokens["scope"].as_str().unwrap();
    assert!(
        scope.contains("https://graph.microsoft.com/Files.ReadWrite.All"),
        "{tokens}"
    );
    assert!(!scope.contains("offline_access"), "{tokens}");
    let id = claims(tokens["id_token"].as_str().expect("id_token for openid"));
    assert_eq!(id["preferred_username"], PARTNER, "{id}");
    assert_eq!(id["name"], "Partner Admin", "{id}");
    assert_eq!(id["aud"], APP, "{id}");
    assert_eq!(id["nonce"], "nonce-42", "{id}");
    let tid = id["tid"].as_str().unwrap();
    assert!(is_guid(tid) && is_guid(id["oid"].as_str().unwrap()), "{id}");
    assert_eq!(id["iss"], format!("{}/{tid}/v2.0", sim.base), "{id}");
    assert!(
        id["exp"].as_i64().unwrap() > id["iat"].as_i64().unwrap(),
        "{id}"
    );
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(graph_site_status(&sim, access).await, 200);

    let refresh = [
        ("grant_type", "refresh_token"),
        ("client_id", APP),
        (
            "refresh_token",
            tokens["refresh_token"].as_str().expect("offline_access"),
        ),
    ];
    let refreshed = json_status(sim.token_request("contoso", &refresh).await, 200).await;
    assert_ne!(
        refreshed["refresh_token"], tokens["refresh_token"],
        "rotates"
    );
    assert_eq!(refreshed["scope"], tokens["scope"]);
    let again = claims(refreshed["id_token"].as_str().expect("id_token on refresh"));
    assert_eq!(again["preferred_username"], PARTNER);
    assert!(again.get("nonce").is_none(), "{again}");
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(graph_site_status(&sim, access).await, 200);

    // A confidential client that presents its secret must present the right one.
    let request = Authorize::new(APP);
    let reply = browser.get(&request.url(&sim)).await.reply(CALLBACK);
    let resp = redeem(
        &sim,
        &request,
        &reply["code"],
        &[("client_secret", "wrong")],
    )
    .await;
    assert_eq!(
        json_status(resp, 401).await["error_codes"],
        json!([7000215])
    );
    let resp = redeem(&sim, &request, &reply["code"], &[("client_secret", SECRET)]).await;
    json_status(resp, 200).await;

    let records = signins(&sim).await;
    assert_eq!(
        records[0],
        json!({"user": PARTNER, "client_id": APP, "prompt": null, "picked_by": "form"})
    );
    let stats = sim.stats().await;
    assert!(
        stats["by_kind"]["authorize"].as_u64().unwrap() >= 4,
        "{stats}"
    );
}

#[tokio::test]
async fn one_signed_in_account_signs_in_silently() {
    let sim = Sim::start();
    let mut browser = Browser::new(&sim);
    browser
        .sign_in_fully(&Authorize::new(APP), PARTNER, PASSWORD)
        .await;

    // Single sign-on: no page at all, the account of the browser session is used.
    let request = Authorize::new(APP);
    let reply = browser.get(&request.url(&sim)).await.reply(CALLBACK);
    assert_eq!(reply["state"], request.get("state"));
    assert_eq!(signed_in_user(&sim, &request, &reply).await, PARTNER);
    assert_eq!(signins(&sim).await[1]["picked_by"], "sso");
    let silent = Authorize::new(APP).with("prompt", "none");
    let reply = browser.get(&silent.url(&sim)).await.reply(CALLBACK);
    assert!(reply.contains_key("code"), "{reply:?}");

    // Another browser (a private window) has no session.
    let mut private = Browser::new(&sim);
    private.get(&request.url(&sim)).await.page("signin");
    let reply = private.get(&silent.url(&sim)).await.reply(CALLBACK);
    app_error(&reply, &silent, "login_required", 50058);

    // prompt=login and prompt=consent ask although the account is signed in.
    let login = Authorize::new(APP).with("prompt", "login");
    browser.get(&login.url(&sim)).await.page("signin");
    let consent = Authorize::new(APP).with("prompt", "consent");
    browser.get(&consent.url(&sim)).await.page("consent");
    // A login hint naming someone else fills in the form.
    let hinted = Authorize::new(APP).with("login_hint", SVC);
    let form = browser.get(&hinted.url(&sim)).await.page("signin");
    assert!(form.contains(&format!("value=\"{SVC}\"")), "{form}");
}

#[tokio::test]
async fn select_account_lists_both_accounts_and_picks_the_second() {
    let sim = Sim::start();
    let mut browser = Browser::new(&sim);
    browser
        .sign_in_fully(&Authorize::new(APP), PARTNER, PASSWORD)
        .await;
    let login = Authorize::new(APP).with("prompt", "login");
    browser.sign_in_fully(&login, SVC, PASSWORD).await;

    // Two accounts: no single sign-on without a prompt either.
    browser
        .get(&Authorize::new(APP).url(&sim))
        .await
        .page("picker");
    let request = Authorize::new(APP).with("prompt", "select_account");
    let picker = browser.get(&request.url(&sim)).await.page("picker");
    assert_eq!(
        attribute_after(&picker, "id=\"account-1\" name=\"account\" value=\""),
        PARTNER
    );
    assert!(
        picker.contains(&format!(
            "id=\"account-2\" name=\"account\" value=\"{SVC}\" data-upn=\"{SVC}\""
        )),
        "{picker}"
    );
    assert!(
        picker.contains("Partner Admin") && picker.contains("id=\"use-another\""),
        "{picker}"
    );

    // Clicking the second account posts its button's name and value.
    let second = attribute_after(&picker, "id=\"account-2\" name=\"account\" value=\"");
    let reply = browser
        .submit(&picker, &[("account", &second)])
        .await
        .reply(CALLBACK);
    assert_eq!(signed_in_user(&sim, &request, &reply).await, SVC);
    let last = signins(&sim).await.last().unwrap().clone();
    assert_eq!(
        last,
        json!({"user": SVC, "client_id": APP, "prompt": "select_account", "picked_by": "picker"})
    );

    // prompt=none cannot choose between two accounts, unless the hint does.
    let silent = Authorize::new(APP).with("prompt", "none");
    let reply = browser.get(&silent.url(&sim)).await.reply(CALLBACK);
    app_error(&reply, &silent, "interaction_required", 16000);
    let hinted = Authorize::new(APP)
        .with("prompt", "none")
        .with("login_hint", SVC);
    let reply = browser.get(&hinted.url(&sim)).await.reply(CALLBACK);
    assert_eq!(signed_in_user(&sim, &hinted, &reply).await, SVC);

    // "Use another account" leads to the sign-in form; an account not in the session is refused.
    let picker = browser.get(&request.url(&sim)).await.page("picker");
    let stranger = browser
        .submit(&picker, &[("account", ADELE)])
        .await
        .page("picker");
    assert!(stranger.contains("data-code=\"16001\""), "{stranger}");
    browser
        .submit(&stranger, &[("action", "another")])
        .await
        .page("signin");
}

#[tokio::test]
async fn wrong_credentials_stay_on_the_form() {
    let sim = Sim::start();
    let mut browser = Browser::new(&sim);
    let request = Authorize::new(APP);
    let form = browser.get(&request.url(&sim)).await.page("signin");
    let answer = browser.sign_in(&form, PARTNER, "not-the-password").await;
    assert!(
        matches!(answer, Answer::Page { status: 200, .. }),
        "{answer:?}"
    );
    let form = answer.page("signin");
    assert!(
        form.contains("data-code=\"50126\">AADSTS50126: Error validating credentials due to invalid username or password."),
        "{form}"
    );
    assert!(
        form.contains(&format!("value=\"{PARTNER}\"")),
        "name kept: {form}"
    );
    assert!(browser.set_cookies.is_empty(), "no session after a failure");
    let form = browser
        .sign_in(&form, "nobody@contoso.onmicrosoft.com", PASSWORD)
        .await
        .page("signin");
    assert!(form.contains("data-code=\"50034\""), "{form}");
    browser
        .sign_in(&form, PARTNER, PASSWORD)
        .await
        .page("consent");

    let errors: Vec<Value> = signins(&sim)
        .await
        .iter()
        .map(|r| r["error"].clone())
        .collect();
    assert_eq!(errors, [json!(50126), json!(50034)]);
    // A form whose sign-in is gone (used, or expired) is an error page.
    let stale = browser.sign_in(&form, PARTNER, PASSWORD).await;
    assert!(stale.page("error").contains("AADSTS50089"));
}

#[tokio::test]
async fn declined_consent_is_access_denied_with_state() {
    let sim = Sim::start();
    let mut browser = Browser::new(&sim);
    let request = Authorize::new(APP);
    let form = browser.get(&request.url(&sim)).await.page("signin");
    let consent = browser
        .sign_in(&form, PARTNER, PASSWORD)
        .await
        .page("consent");
    let reply = browser
        .submit(&consent, &[("action", "cancel")])
        .await
        .reply(CALLBACK);
    app_error(&reply, &request, "access_denied", 65004);
    assert!(
        reply["error_description"]
            .starts_with("AADSTS65004: User declined to consent to access the app.")
    );
    // Nothing was remembered: the signed-in account is asked again.
    browser
        .get(&Authorize::new(APP).url(&sim))
        .await
        .page("consent");
    // prompt=none cannot ask for consent.
    let silent = Authorize::new(APP).with("prompt", "none");
    let reply = browser.get(&silent.url(&sim)).await.reply(CALLBACK);
    app_error(&reply, &silent, "consent_required", 65001);
}

#[tokio::test]
async fn the_code_needs_its_verifier_redirect_uri_and_client_and_works_once() {
    let sim = Sim::with_seed(&public_seed());
    let mut browser = Browser::new(&sim);
    let request = Authorize::new(PUBLIC_APP).with("redirect_uri", "http://localhost/cb");
    let reply = browser.sign_in_fully(&request, ADELE, "password").await;
    let code = &reply["code"];

    let wrong = URL_SAFE_NO_PAD.encode([7u8; 32]);
    token_error(
        redeem(&sim, &request, code, &[("code_verifier", &wrong)]).await,
        "invalid_grant",
        501481,
    )
    .await;
    token_error(
        redeem(&sim, &request, code, &[("code_verifier", "")]).await,
        "invalid_grant",
        50148,
    )
    .await;
    let other_uri = [(
        "redirect_uri",
        "https://gateway.example.com/console/oauth/callback",
    )];
    token_error(
        redeem(&sim, &request, code, &other_uri).await,
        "invalid_grant",
        500112,
    )
    .await;
    let other_client = [("client_id", APP), ("client_secret", SECRET)];
    token_error(
        redeem(&sim, &request, code, &other_client).await,
        "invalid_grant",
        70000,
    )
    .await;

    // Failed attempts leave the code usable, once, by a public client without a secret.
    let tokens = json_status(redeem(&sim, &request, code, &[]).await, 200).await;
    assert_eq!(
        claims(tokens["id_token"].as_str().unwrap())["name"],
        "Adele Vance"
    );
    token_error(
        redeem(&sim, &request, code, &[]).await,
        "invalid_grant",
        54005,
    )
    .await;
    token_error(
        redeem(&sim, &request, "sim-ac.nope", &[]).await,
        "invalid_grant",
        70000,
    )
    .await;

    // Codes expire (after ten minutes; here at once through the control API).
    let request = Authorize::new(PUBLIC_APP).with("redirect_uri", "http://localhost/cb");
    let reply = browser
        .get(&request.url(&sim))
        .await
        .reply("http://localhost/cb");
    sim.control("/codes/expire", json!({})).await;
    token_error(
        redeem(&sim, &request, &reply["code"], &[]).await,
        "invalid_grant",
        70008,
    )
    .await;
}

#[tokio::test]
async fn scopes_decide_refresh_and_id_tokens() {
    let sim = Sim::with_seed(&public_seed());
    let mut browser = Browser::new(&sim);
    let request = Authorize::new(PUBLIC_APP)
        .with("redirect_uri", "http://localhost/cb")
        .with("scope", "Files.Read.All");
    let reply = browser.sign_in_fully(&request, ADELE, "password").await;
    let tokens = json_status(redeem(&sim, &request, &reply["code"], &[]).await, 200).await;
    assert_eq!(
        tokens["scope"], "https://graph.microsoft.com/Files.Read.All",
        "{tokens}"
    );
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access: {tokens}"
    );
    assert!(tokens.get("id_token").is_none(), "no openid: {tokens}");
    // Asking for more scopes than consented asks again.
    let more = Authorize::new(PUBLIC_APP).with("redirect_uri", "http://localhost/cb");
    browser.get(&more.url(&sim)).await.page("consent");
}

#[tokio::test]
async fn a_redirect_uri_the_app_did_not_register_gets_an_error_page() {
    let sim = Sim::start();
    let mut browser = Browser::new(&sim);
    for uri in [
        "http://localhost/elsewhere",
        "https://localhost/console/oauth/callback",
        "http://[::1]:8080/console/oauth/callback",
        "https://evil.example.com/console/oauth/callback",
    ] {
        let request = Authorize::new(APP).with("redirect_uri", uri);
        let answer = browser.get(&request.url(&sim)).await;
        assert!(
            matches!(answer, Answer::Page { status: 400, .. }),
            "{uri}: {answer:?}"
        );
        let page = answer.page("error");
        assert!(
            page.contains("<p id=\"error-code\">AADSTS50011</p>"),
            "{page}"
        );
        let message = format!(
            "The redirect URI '{uri}' specified in the request does not match the redirect URIs configured for the application '{APP}'"
        );
        assert!(page.contains(&message), "{page}");
    }
    let cases = [
        (Authorize::new("no-such-app"), 700016),
        (Authorize::new(APP).without("redirect_uri"), 900971),
    ];
    for (request, code) in cases {
        let page = browser.get(&request.url(&sim)).await.page("error");
        assert!(page.contains(&format!("AADSTS{code}</p>")), "{page}");
    }
    let url = Authorize::new(APP)
        .url(&sim)
        .replace("/contoso/", "/fabrikam/");
    assert!(
        browser
            .get(&url)
            .await
            .page("error")
            .contains("AADSTS90002</p>")
    );
}

#[tokio::test]
async fn loopback_redirect_uris_match_on_any_port() {
    let sim = Sim::start();
    let mut browser = Browser::new(&sim);
    let uri = "http://localhost:53123/console/oauth/callback";
    let request = Authorize::new(APP).with("redirect_uri", uri);
    let reply = browser.sign_in_fully(&request, PARTNER, PASSWORD).await;
    // The token request names the redirect URI exactly as the authorization request did.
    let registered = [("redirect_uri", CALLBACK)];
    token_error(
        redeem(&sim, &request, &reply["code"], &registered).await,
        "invalid_grant",
        500112,
    )
    .await;
    json_status(redeem(&sim, &request, &reply["code"], &[]).await, 200).await;
    let other =
        Authorize::new(APP).with("redirect_uri", "http://127.0.0.1:9/console/oauth/callback");
    let reply = browser
        .get(&other.url(&sim))
        .await
        .reply("http://127.0.0.1:9/console/oauth/callback");
    assert!(reply.contains_key("code"), "{reply:?}");
}

#[tokio::test]
async fn errors_after_the_redirect_uri_go_back_to_the_app() {
    let sim = Sim::with_seed(&public_seed());
    let mut browser = Browser::new(&sim);
    let gateway = "https://gateway.example.com/console/oauth/callback";
    let app = || Authorize::new(PUBLIC_APP).with("redirect_uri", gateway);
    let cases = [
        (
            app().with("response_type", "token"),
            "unauthorized_client",
            700054,
        ),
        (
            app().with("response_type", "bogus"),
            "unsupported_response_type",
            70005,
        ),
        (app().without("response_type"), "invalid_request", 900144),
        (
            app().with("scope", "openid Files.Frobnicate"),
            "invalid_scope",
            70011,
        ),
        (
            app().with("scope", "api://other/read"),
            "invalid_resource",
            500011,
        ),
        (app().with("prompt", "sometimes"), "invalid_request", 90023),
        (
            app().with("code_challenge", "short"),
            "invalid_request",
            501491,
        ),
    ];
    for (request, error, code) in cases {
        let reply = browser.get(&request.url(&sim)).await.reply(gateway);
        app_error(&reply, &request, error, code);
    }
    // A public client must use PKCE; a confidential one may leave it out.
    let public = Authorize::new(PUBLIC_APP)
        .with("redirect_uri", "http://localhost/cb")
        .without("code_challenge");
    let reply = browser
        .get(&public.url(&sim))
        .await
        .reply("http://localhost/cb");
    app_error(&reply, &public, "invalid_request", 9002325);

    // A revoked (disabled) app.
    sim.control(&format!("/apps/{PUBLIC_APP}/revoke"), json!({}))
        .await;
    let request = Authorize::new(PUBLIC_APP).with("redirect_uri", "http://localhost/cb");
    let reply = browser
        .get(&request.url(&sim))
        .await
        .reply("http://localhost/cb");
    app_error(&reply, &request, "unauthorized_client", 7000112);
    sim.control(&format!("/apps/{PUBLIC_APP}/restore"), json!({}))
        .await;
    browser.get(&request.url(&sim)).await.page("signin");

    // response_mode=fragment puts the answer after '#'.
    let request = Authorize::new(PUBLIC_APP)
        .with("redirect_uri", "http://localhost/cb")
        .with("prompt", "none")
        .with("response_mode", "fragment");
    let location = browser.get(&request.url(&sim)).await.location();
    assert!(
        location.starts_with("http://localhost/cb#error=login_required"),
        "{location}"
    );
    // response_mode=form_post answers with a form that posts to the redirect URI.
    let request = request.with("response_mode", "form_post");
    let page = browser.get(&request.url(&sim)).await.page("form_post");
    assert!(
        page.contains("action=\"http://localhost/cb\"")
            && page.contains("name=\"error\" value=\"login_required\"")
            && page.contains(&format!(
                "name=\"state\" value=\"{}\"",
                request.get("state")
            )),
        "{page}"
    );
}
