//! The web console, driven in a real Chromium through WebDriver: an administrator signs in, adds
//! a delegated connection with "Sign in with Microsoft" against the simulator (choosing another
//! account in its account picker), picks a folder, creates a partner with a mount on it; the
//! partner uploads with OpenSSH sftp; the app is revoked and the alerts bar shows it on every
//! page; re-saving the connection clears it; a pull job with after-copy delete runs and shows
//! its history. Each step is checked through the simulator's Graph API, the admin API or the
//! store, and a screenshot of each is kept in `target/test-artifacts/console/`.
//!
//! The browser reaches the console as `localhost` and the simulator as `127.0.0.1`: two sites,
//! so the SameSite=Strict session cookie is not sent when the identity platform sends the
//! browser back, as with the real Microsoft.
//!
//! Also, without a browser: forms without the CSRF token or from another origin are refused,
//! nothing is reachable without signing in, the session cookie's attributes, the lockout after
//! failed sign-ins, `spgate admins`, and an app-only certificate generated in the console or
//! uploaded as PEM files (multipart), registered in the simulator's app, then signing in.

mod browser_support;
mod common;
mod console_support;
mod sftp_support;

use std::io::Write;
use std::process::{Command, Stdio};

use browser_support::Browser;
use common::*;
use console_support::{add_admin, element_text, input};
use reqwest::StatusCode;
use serde_json::{Value, json};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "console admin password 1";
const ADELE: &str = "adele@contoso.onmicrosoft.com";
const SVC: &str = "svc.spgate@contoso.onmicrosoft.com";

/// The default world plus a public client for the console (its redirect URIs on loopback,
/// where the port does not count), two users, and folders and files to pick and pull.
fn seed() -> String {
    let apps = r#"
[[tenants.apps]]
client_id = "spgate-console"
redirect_uris = ["http://localhost/console/oauth/callback"]
[[tenants.users]]
name = "adele@contoso.onmicrosoft.com"
display_name = "Adele Vance"
password = "adele-password"
[[tenants.users]]
name = "svc.spgate@contoso.onmicrosoft.com"
display_name = "spgate service"
password = "svc-password"
"#;
    let more = r#"folders = ["Inbound", "Outbound", "Archive"]
[[tenants.sites.drives.files]]
path = "Outbound/invoice-1.csv"
content = "id,amount\n1,100\n"
[[tenants.sites.drives.files]]
path = "Outbound/invoice-2.csv"
content = "id,amount\n2,200\n"
"#;
    common::seed(apps, more)
}

/// A gateway on the console seed with the admin endpoint, and an administrator.
async fn start() -> Gateway {
    let admin = format!("\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\n");
    let gateway = Gateway::start_full(Ctx::with_seed(&seed()).await, &[], "", "", |_| admin).await;
    add_admin(&gateway, ADMIN, ADMIN_PASSWORD);
    gateway
}

fn admin_addr(gateway: &Gateway) -> String {
    gateway.admin.clone().expect("the admin endpoint's address")
}

/// The console's address as the browser uses it: `localhost`, another site than the
/// simulator's `127.0.0.1`.
fn console(gateway: &Gateway, path: &str) -> String {
    let port = admin_addr(gateway).rsplit(':').next().unwrap().to_string();
    format!("http://localhost:{port}{path}")
}

async fn api(gateway: &Gateway, path: &str) -> Value {
    let response = reqwest::Client::new()
        .get(format!("http://{}{path}", admin_addr(gateway)))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{path}");
    response.json().await.unwrap()
}

async fn connection_state(gateway: &Gateway, name: &str) -> String {
    let all = api(gateway, "/api/v1/connections").await;
    all["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| c["state"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no connection {name} in {all}"))
}

/// Waits (30 s at most) until `condition` holds.
async fn eventually<F, Fut>(what: &str, condition: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !condition().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Signs in to the simulator's page as `upn` (its sign-in form is showing), consenting if
/// asked.
async fn microsoft_form(b: &Browser, upn: &str, password: &str) {
    b.wait_for("#upn").await;
    b.fill("#upn", upn).await;
    b.fill("#password", password).await;
    b.shot(&format!(
        "microsoft-signin-{}",
        upn.split('@').next().unwrap()
    ))
    .await;
    b.click("#signin").await;
    consent_if_asked(b).await;
}

async fn consent_if_asked(b: &Browser) {
    // Either the consent page or the console's landing page comes next.
    b.wait_for("#accept, #message").await;
    if b.source().await.contains("id=\"accept\"") {
        b.shot("microsoft-consent").await;
        b.click("#accept").await;
    }
}

/// After the identity platform sent the browser back: the landing page, then the connection.
async fn back_signed_in(b: &Browser, upn: &str) {
    b.wait_text("#message", &format!("Signed in as {upn}"))
        .await;
    b.shot("console-landing").await;
    b.wait_for("#signed-in").await;
    b.wait_text("#account", upn).await;
    b.wait_text("#test-result", "Test passed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_runs_spgate_from_the_console() {
    let mut gateway = start().await;
    let ctx = &gateway.ctx;
    let b = Browser::start("console").await;

    // Signing in: any console page leads to the sign-in form first.
    b.goto(&console(&gateway, "/console/partners")).await;
    b.wait_for("#password").await;
    assert!(
        b.url().await.contains("/console/login"),
        "{}",
        b.url().await
    );
    b.shot("signin-form").await;
    b.fill("#name", ADMIN).await;
    b.fill("#password", ADMIN_PASSWORD).await;
    b.click("#signin").await;
    b.wait_for("#new-partner").await;
    assert!(
        b.url().await.ends_with("/console/partners"),
        "back where it was going"
    );
    b.shot("signed-in").await;
    let session = b
        .cookies()
        .await
        .into_iter()
        .find(|c| c.name == "spgate_console")
        .expect("the session cookie");
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "{session:?}");

    // A delegated connection, saved before anyone signed in: the test says so.
    b.goto(&console(&gateway, "/console/connections/new")).await;
    b.fill("#name", "sharepoint").await;
    b.fill("#site", "https://contoso.sharepoint.com/sites/partners")
        .await;
    b.fill("#tenant", "contoso").await;
    b.fill("#client_id", "spgate-console").await;
    b.click("#kind-delegated").await;
    b.click("details summary").await;
    b.fill("#authority", &ctx.sim.base).await;
    b.fill("#graph_url", &ctx.sim.base).await;
    b.shot("connection-form").await;
    b.click("#save").await;
    b.wait_text("#test-result", "Nobody has signed in yet")
        .await;
    b.shot("connection-saved-unsigned").await;
    assert!(
        b.text("#redirect-uri")
            .await
            .starts_with("http://localhost:"),
        "the redirect URI to register is shown"
    );

    // "Sign in with Microsoft": the browser has no Microsoft session yet, so the form shows.
    b.click("#microsoft").await;
    microsoft_form(&b, ADELE, "adele-password").await;
    back_signed_in(&b, ADELE).await;
    assert_eq!(connection_state(&gateway, "sharepoint").await, "enabled");

    // Again, choosing another account: the picker offers Adele (signed in in this browser)
    // and "use another account"; single sign-on would have taken Adele silently.
    b.click("#microsoft").await;
    b.wait_for("#use-another").await;
    assert!(b.source().await.contains(ADELE), "the picker lists Adele");
    b.shot("microsoft-picker-one").await;
    b.click("#use-another").await;
    microsoft_form(&b, SVC, "svc-password").await;
    back_signed_in(&b, SVC).await;

    // And once more with both accounts signed in: the second is picked in the picker.
    b.click("#microsoft").await;
    let second = format!("[data-upn=\"{SVC}\"]");
    b.wait_for(&second).await;
    assert!(
        b.source().await.contains(ADELE),
        "the picker lists both accounts"
    );
    b.shot("microsoft-picker-two").await;
    b.click(&second).await;
    consent_if_asked(&b).await;
    back_signed_in(&b, SVC).await;
    let signins = ctx
        .sim
        .http
        .get(ctx.sim.ctl("/signins"))
        .send()
        .await
        .unwrap();
    let signins: Value = signins.json().await.unwrap();
    let last = signins["signins"]
        .as_array()
        .or_else(|| signins.as_array())
        .and_then(|s| s.last().cloned())
        .unwrap_or_else(|| panic!("sign-ins recorded: {signins}"));
    assert_eq!(last["user"], SVC, "{signins}");
    assert_eq!(last["prompt"], "select_account", "{signins}");

    // The folder picker: the library's folders, then Inbound, then a partner on it.
    b.click("#browse").await;
    b.wait_for("a.folder[data-path=\"/Inbound\"]").await;
    let listed = b.source().await;
    assert!(
        listed.contains("Outbound/") && listed.contains("Archive/"),
        "{listed}"
    );
    b.shot("picker-root").await;
    b.click("a.folder[data-path=\"/Inbound\"]").await;
    b.wait_text("#at", "/Inbound").await;
    b.shot("picker-inbound").await;
    b.click("#new-partner").await;
    b.wait_for("#m0_remote").await;
    assert_eq!(
        b.find_value("#m0_remote").await,
        "/Inbound",
        "the partner form is filled from the picker"
    );
    b.fill("#name", "acme").await;
    let public_key = std::fs::read_to_string(gateway.key().with_extension("pub")).unwrap();
    b.fill("#authorized_keys", public_key.trim()).await;
    b.check("#m0_perm_overwrite", true).await;
    b.shot("partner-form").await;
    b.click("#save").await;
    b.wait_for("#test-login").await;
    b.shot("partner-saved").await;
    let user = api(&gateway, "/api/v1/users/acme").await;
    assert_eq!(user["mounts"][0]["connection"], "sharepoint", "{user}");
    assert_eq!(user["mounts"][0]["remote"], "/Inbound", "{user}");

    // The partner uploads; the file is in SharePoint.
    gateway.write_local("report.csv", b"first upload\n");
    let local = gateway.client_dir().join("report.csv");
    gateway
        .sftp_ok("acme", &format!("put {} /report.csv\n", local.display()))
        .await;
    eventually("the upload reaches SharePoint", || async {
        ctx.item_at("Inbound/report.csv").await.is_some()
    })
    .await;
    let item = ctx.item("Inbound/report.csv").await;
    assert_eq!(
        ctx.download(item["id"].as_str().unwrap()).await,
        b"first upload\n"
    );

    // The test-login helper shows what the partner sees.
    b.goto(&console(&gateway, "/console/partners/acme")).await;
    b.click("#test-login").await;
    b.wait_text("#message", "report.csv").await;
    b.shot("partner-test-login").await;

    // Revoke the app: the next token refresh fails for good. The partner's next upload is
    // taken (mounts made in the console answer once the file is queued), and sending it to
    // SharePoint disables the connection; the alerts bar shows it on every page.
    ctx.sim
        .control("/apps/spgate-console/revoke", json!({}))
        .await;
    ctx.sim.control("/tokens/expire", json!({})).await;
    // The test's own token expired with every other.
    gateway.ctx.token = gateway.ctx.sim.app_token().await;
    let ctx = &gateway.ctx;
    gateway.write_local("second.csv", b"second upload\n");
    let second_local = gateway.client_dir().join("second.csv");
    gateway
        .sftp_ok(
            "acme",
            &format!("put {} /second.csv\n", second_local.display()),
        )
        .await;
    eventually("the connection is disabled", || async {
        connection_state(&gateway, "sharepoint").await == "disabled"
    })
    .await;
    assert!(ctx.item_at("Inbound/second.csv").await.is_none());
    for (i, page) in [
        "/console/",
        "/console/connections",
        "/console/partners",
        "/console/syncs",
        "/console/activity",
        "/console/alerts",
        "/console/connections/sharepoint",
    ]
    .iter()
    .enumerate()
    {
        b.goto(&console(&gateway, page)).await;
        b.wait_text("#alerts-bar", "sharepoint").await;
        assert_eq!(
            b.text("#alert-count").await,
            "1",
            "{page}: {}",
            b.text("#alerts-bar").await
        );
        if i == 0 || page.ends_with("alerts") {
            b.shot(&format!("alerts-bar{}", page.replace('/', "-")))
                .await;
        }
    }
    let alerts = b.source().await;
    assert!(alerts.contains("AADSTS50173"), "the AADSTS code is shown");
    assert!(alerts.contains("What to do"), "and what to do");

    // Re-save the connection unchanged (the app restored): the bar clears, the upload held
    // in the queue reaches SharePoint, and the partner uploads again.
    ctx.sim
        .control("/apps/spgate-console/restore", json!({}))
        .await;
    b.goto(&console(&gateway, "/console/connections/sharepoint"))
        .await;
    b.click("#save").await;
    b.wait_text("#test-result", "Test passed").await;
    assert!(
        !b.source().await.contains("alerts-bar"),
        "the alerts bar is gone"
    );
    b.shot("connection-resaved").await;
    assert_eq!(connection_state(&gateway, "sharepoint").await, "enabled");
    eventually("the held upload reaches SharePoint", || async {
        ctx.item_at("Inbound/second.csv").await.is_some()
    })
    .await;
    let item = ctx.item("Inbound/second.csv").await;
    assert_eq!(
        ctx.download(item["id"].as_str().unwrap()).await,
        b"second upload\n"
    );
    gateway.write_local("third.csv", b"third upload\n");
    let third_local = gateway.client_dir().join("third.csv");
    gateway
        .sftp_ok(
            "acme",
            &format!("put {} /third.csv\n", third_local.display()),
        )
        .await;
    eventually("the new upload reaches SharePoint", || async {
        ctx.item_at("Inbound/third.csv").await.is_some()
    })
    .await;
    let item = ctx.item("Inbound/third.csv").await;
    assert_eq!(
        ctx.download(item["id"].as_str().unwrap()).await,
        b"third upload\n"
    );

    // A pull job with after-copy delete, run now, and its history.
    let pulled = gateway.dir.path().join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    b.goto(&console(&gateway, "/console/syncs/new")).await;
    b.fill("#name", "invoices").await;
    b.fill("#local", pulled.to_str().unwrap()).await;
    b.select("#connection", "sharepoint").await;
    b.fill("#remote", "/Outbound").await;
    b.click("#direction-pull").await;
    b.click("#after-delete").await;
    b.fill("#interval", "1h").await;
    b.shot("sync-form").await;
    b.click("#save").await;
    b.wait_for("#run").await;
    b.click("#run").await;
    b.wait_for("#queued").await;
    b.shot("sync-queued").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        b.goto(&console(&gateway, "/console/syncs/invoices")).await;
        let page = b.source().await;
        if page.contains("class=\"outcome\">success") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no successful run in the history:\n{page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(
        b.text("#history .run .downloaded").await.split(' ').next(),
        Some("2")
    );
    b.shot("sync-history").await;
    assert_eq!(
        std::fs::read_to_string(pulled.join("invoice-1.csv")).unwrap(),
        "id,amount\n1,100\n"
    );
    assert_eq!(
        std::fs::read_to_string(pulled.join("invoice-2.csv")).unwrap(),
        "id,amount\n2,200\n"
    );
    assert!(
        ctx.child_names("Outbound").await.is_empty(),
        "after-copy delete removed the pulled files from SharePoint"
    );

    // Signing out ends the session.
    b.click("#logout").await;
    b.wait_for("#signin").await;
    b.goto(&console(&gateway, "/console/")).await;
    b.wait_for("#signin").await;
    b.close().await;
}

/// Signs in with reqwest: the session cookie's value and Set-Cookie line, and the CSRF token.
async fn sign_in(http: &reqwest::Client, base: &str) -> (String, String, String) {
    let (cookie, line) = console_support::sign_in(http, base, ADMIN, ADMIN_PASSWORD).await;
    let page = http
        .get(format!("{base}/console/partners/new"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (cookie, line, input(&page, "csrf"))
}

/// One sign-in as the administrator with `password` from a fresh form: the answer's status.
async fn attempt_sign_in(http: &reqwest::Client, base: &str, password: &str) -> StatusCode {
    let page = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let pairing = page.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let token = input(&page.text().await.unwrap(), "token");
    http.post(format!("{base}/console/login"))
        .header("cookie", pairing)
        .form(&[("name", ADMIN), ("password", password), ("token", &token)])
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn forms_need_a_session_and_its_csrf_token() {
    let gateway = start().await;
    let base = format!("http://{}", admin_addr(&gateway));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let partner = [
        ("name", "mallory"),
        ("enabled", "on"),
        ("password", "mallory password 1"),
        ("mount_count", "1"),
        ("m0_local", "/tmp"),
        ("m0_perm", "list"),
    ];
    let users = || async {
        api(&gateway, "/api/v1/users").await["users"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = users().await;

    // Without a session: every page and form leads to the sign-in page; nothing changes.
    for path in [
        "/console/",
        "/console/connections",
        "/console/partners/new",
        "/console/activity/audit.csv",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/console/login"),
            "{path}"
        );
    }
    let r = http
        .post(format!("{base}/console/partners"))
        .form(&partner)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(users().await, before, "no partner made without a session");

    // The session cookie: HttpOnly, SameSite=Strict, not Secure without TLS.
    let (cookie, line, csrf) = sign_in(&http, &base).await;
    assert!(line.contains("HttpOnly"), "{line}");
    assert!(line.contains("SameSite=Strict"), "{line}");
    assert!(!line.contains("Secure"), "{line}");

    // Without the token, with a wrong one, or from another origin: refused.
    let post = |form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut request = http
            .post(format!("{base}/console/partners"))
            .header("cookie", &cookie)
            .form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    let form = |csrf: &str| {
        let mut f: Vec<(&'static str, String)> =
            partner.iter().map(|(k, v)| (*k, v.to_string())).collect();
        f.push(("csrf", csrf.to_string()));
        f
    };
    let mut without = form("");
    without.pop();
    assert_eq!(
        post(without, None).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(form("forged"), None).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(form(&csrf), Some("https://evil.example"))
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(users().await, before, "no partner made by a forged form");
    let made = post(form(&csrf), None).await.unwrap();
    assert_eq!(
        made.status(),
        StatusCode::SEE_OTHER,
        "{}",
        made.text().await.unwrap()
    );
    assert_eq!(users().await, before + 1, "the real form works");

    // "Sign in with Microsoft" is tied to the browser that started it: the flow's cookie
    // (SameSite=Lax, so that it comes back from Microsoft's site) must come back with it.
    let sim = gateway.ctx.sim.base.clone();
    let created = reqwest::Client::new()
        .put(format!("http://{}/api/v1/connections/delegated", admin_addr(&gateway)))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"tenant": "contoso", "client_id": "spgate-console", "auth": "delegated",
            "site": "https://contoso.sharepoint.com/sites/partners", "authority": sim, "graph_url": sim}))
        .send()
        .await
        .unwrap();
    assert!(
        created.status().is_success(),
        "{}",
        created.text().await.unwrap()
    );
    let started = http
        .post(format!("{base}/console/connections/delegated/microsoft"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), StatusCode::SEE_OTHER);
    let to = started.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with(&format!("{sim}/contoso/oauth2/v2.0/authorize?")),
        "{to}"
    );
    assert!(
        to.contains("code_challenge_method=S256") && to.contains("prompt=select_account"),
        "{to}"
    );
    let flow = started.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        flow.contains("SameSite=Lax") && flow.contains("HttpOnly"),
        "{flow}"
    );
    let flow = flow.split(';').next().unwrap().to_string();
    let state = to
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("state="))
        .expect("a state")
        .to_string();
    let callback = format!("{base}/console/oauth/callback?state={state}&code=not-a-code");
    let elsewhere = http.get(&callback).send().await.unwrap();
    assert_eq!(elsewhere.status(), StatusCode::FORBIDDEN, "another browser");
    assert!(elsewhere.text().await.unwrap().contains("another browser"));
    let again = http
        .get(&callback)
        .header("cookie", &flow)
        .send()
        .await
        .unwrap();
    let page = again.text().await.unwrap();
    assert!(
        page.contains("unknown, was already used"),
        "one use only, even refused: {page}"
    );

    // Signing out ends the session for good.
    let r = http
        .post(format!("{base}/console/logout"))
        .header("cookie", &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = http
        .get(format!("{base}/console/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the old cookie opens nothing"
    );

    // Five wrong passwords lock the administrator out from this address, even with the right
    // one afterwards.
    for _ in 0..5 {
        let status = attempt_sign_in(&http, &base, "wrong").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(
        attempt_sign_in(&http, &base, ADMIN_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    let locked = api(&gateway, "/api/v1/lockouts").await;
    assert!(locked.to_string().contains("admin:root"), "{locked}");

    // spgate admins: list, a duplicate refused, remove.
    let out = gateway.spgate(&["admins", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(ADMIN));
    let again = Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(["admins", "add", ADMIN, "--config"])
        .arg(gateway.dir.path().join("spgate.toml"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "no password on stdin, or a duplicate: refused"
    );
    let out = gateway.spgate(&["admins", "remove", ADMIN]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = gateway.spgate(&["admins", "list"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&format!("{ADMIN}\t")));
}

#[tokio::test]
async fn the_console_over_tls_marks_its_cookies_secure() {
    let admin = |dir: &std::path::Path| {
        format!(
            "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{ADMIN_TOKEN}\"\ntls = {}\n",
            self_signed(dir, "admin")
        )
    };
    let gateway = Gateway::start_full(Ctx::with_seed(&seed()).await, &[], "", "", admin).await;
    add_admin(&gateway, ADMIN, ADMIN_PASSWORD);
    let base = format!("https://{}", admin_addr(&gateway));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let health = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "the endpoint answers HTTPS"
    );
    let plain = reqwest::Client::new()
        .get(format!("http://{}/healthz", admin_addr(&gateway)))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no plain HTTP"
    );
    let (_, line, _) = sign_in(&http, &base).await;
    assert!(line.contains("; Secure"), "{line}");
    assert!(
        line.contains("HttpOnly") && line.contains("SameSite=Strict"),
        "{line}"
    );
    let api = http
        .get(format!("{base}/api/v1/connections"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        api.status(),
        StatusCode::OK,
        "the API keeps its bearer token over TLS"
    );
}

/// A `multipart/form-data` body as a browser sends a form with file inputs: its content type
/// and bytes. `files` are (field, file name, text).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &str, &str)]) -> (String, String) {
    const BOUNDARY: &str = "----spgateTestBoundary7c1f";
    let mut body = String::new();
    for (name, value) in fields {
        body += &format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        );
    }
    for (name, file, text) in files {
        body += &format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: application/x-pem-file\r\n\r\n{text}\r\n"
        );
    }
    body += &format!("--{BOUNDARY}--\r\n");
    (format!("multipart/form-data; boundary={BOUNDARY}"), body)
}

/// The SHA-1 fingerprint `openssl` computes for PEM certificate `pem`, as upper-case hex.
fn openssl_thumbprint(pem: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the openssl command-line tool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(pem.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl x509: {out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    let (_, hex) = line.trim().split_once('=').expect("a fingerprint line");
    hex.replace(':', "").to_uppercase()
}

#[tokio::test]
async fn an_app_only_certificate_is_generated_or_uploaded_in_the_console() {
    let gateway = start().await;
    let base = format!("http://{}", admin_addr(&gateway));
    let sim = gateway.ctx.sim.base.clone();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (cookie, _, csrf) = sign_in(&http, &base).await;
    let post = |path: &str, fields: Vec<(&str, &str)>, files: Vec<(&str, &str, &str)>| {
        let (content_type, body) = multipart(&fields, &files);
        http.post(format!("{base}{path}"))
            .header("cookie", &cookie)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let get = |path: &str| {
        http.get(format!("{base}{path}"))
            .header("cookie", &cookie)
            .send()
    };
    // Saves the form (which must be taken) and answers the connection's page with the test's
    // result, as the browser sees it after the redirect.
    let save = |path: &'static str, extra: Vec<(&'static str, &'static str)>, files| {
        let mut fields = connection_form(&csrf, &sim);
        fields.extend(extra);
        let saved = post(path, fields, files);
        let get = &get;
        async move {
            let saved = saved.await.unwrap();
            let status = saved.status();
            assert_eq!(
                status,
                StatusCode::SEE_OTHER,
                "{}",
                saved.text().await.unwrap()
            );
            let page = get("/console/connections/cert?test=1").await.unwrap();
            let page = page.text().await.unwrap();
            (element_text(&page, "test-result"), page)
        }
    };

    // A multipart form is refused without the session's token, as a URL-encoded one is.
    let mut forged = connection_form("", &sim);
    forged.extend([("name", "forged"), ("generate", "on")]);
    let refused = post("/console/connections", forged, vec![]).await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    // "Generate a new key pair": saved, shown with its thumbprint; the test fails until the
    // certificate is uploaded to the app registration.
    let generate = vec![("name", "cert"), ("generate", "on")];
    let (tested, page) = save("/console/connections", generate, vec![]).await;
    assert!(tested.starts_with("Test failed"), "{tested}");
    assert_eq!(element_text(&page, "subject"), "CN=spgate cert");
    let thumbprint = element_text(&page, "thumbprint");
    let download = get("/console/connections/cert/certificate.pem")
        .await
        .unwrap();
    assert_eq!(download.status(), StatusCode::OK);
    let disposition = download.headers()["content-disposition"].to_str().unwrap();
    assert!(disposition.contains("spgate-cert.pem"), "{disposition}");
    let generated = download.text().await.unwrap();
    assert_eq!(
        openssl_thumbprint(&generated),
        thumbprint,
        "Entra's thumbprint"
    );

    // The record keeps the certificate; the key (PKCS #8, unlike the SSH host keys in the
    // state directory) is sealed apart, in no file in clear.
    let record = api(&gateway, "/api/v1/connections/cert").await;
    assert_eq!(record["certificate"]["cert"], generated.trim(), "{record}");
    assert!(record["certificate"].get("key").is_none(), "{record}");
    assert_eq!(record["has_private_key"], true, "{record}");
    for entry in walkdir::WalkDir::new(gateway.dir.path())
        .into_iter()
        .flatten()
    {
        let bytes = std::fs::read(entry.path()).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("-----BEGIN PRIVATE KEY-----"),
            "a private key in clear in {}",
            entry.path().display()
        );
    }

    // Uploaded to the app registration, and the connection saved again (which enables it:
    // the failed sign-in disabled it) with the certificate fields blank: both are kept, and it
    // signs in with them.
    assert_eq!(
        sim_upload_certificate(&sim, &generated).await,
        StatusCode::NO_CONTENT
    );
    let (tested, page) = save("/console/connections/cert", vec![], vec![]).await;
    assert!(tested.starts_with("Test passed"), "{tested}");
    assert_eq!(element_text(&page, "thumbprint"), thumbprint);

    // A key pasted where the certificate goes is refused, and not shown back.
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("app.crt"), dir.path().join("app.key"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        ])
        .args(["-subj", "/CN=uploaded", "-keyout"])
        .arg(&key_file)
        .arg("-out")
        .arg(&cert_file)
        .output()
        .expect("the openssl command-line tool");
    assert!(made.status.success(), "{made:?}");
    let cert_pem = std::fs::read_to_string(&cert_file).unwrap();
    let key_pem = std::fs::read_to_string(&key_file).unwrap();
    let mut form = connection_form(&csrf, &sim);
    form.push(("cert_pem", &key_pem));
    let refused = post("/console/connections/cert", form, vec![])
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = refused.text().await.unwrap();
    assert!(html.contains("not a PEM certificate"), "{html}");
    let key_body = key_pem.lines().nth(1).unwrap();
    assert!(!html.contains(key_body), "the key is not shown back");

    // PEM files uploaded: the new certificate replaces the generated one; it signs in once
    // registered (and the connection saved again).
    let files = vec![
        ("cert_upload", "app.crt", cert_pem.as_str()),
        ("key_upload", "app.key", key_pem.as_str()),
    ];
    let (tested, page) = save("/console/connections/cert", vec![], files).await;
    assert_eq!(
        element_text(&page, "thumbprint"),
        openssl_thumbprint(&cert_pem)
    );
    assert!(
        tested.starts_with("Test failed"),
        "not registered yet: {tested}"
    );
    sim_upload_certificate(&sim, &cert_pem).await;
    let (tested, _) = save("/console/connections/cert", vec![], vec![]).await;
    assert!(tested.starts_with("Test passed"), "{tested}");
}

/// The fields of the certificate connection's form, all but the certificate's.
fn connection_form<'a>(csrf: &'a str, sim: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("site", "https://contoso.sharepoint.com/sites/partners"),
        ("tenant", "contoso"),
        ("client_id", "spgate-demo"),
        ("kind", "certificate"),
        ("authority", sim),
        ("graph_url", sim),
    ]
}

/// Uploads PEM certificate `pem` to the simulator's app `spgate-demo`: the status.
async fn sim_upload_certificate(sim: &str, pem: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{sim}/_sim/apps/spgate-demo/certificate"))
        .body(pem.to_string())
        .send()
        .await
        .unwrap()
        .status()
}
