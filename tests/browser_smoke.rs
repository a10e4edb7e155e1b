//! The browser harness itself: a small form served by axum on port 0, driven through
//! [`Browser`] in Debian's Chromium (fill, select, check, click, submit, waits, cookies,
//! screenshot). Fails when chromium or chromedriver is missing.

mod browser_support;

use std::collections::HashMap;
use std::time::Instant;

use axum::Form;
use axum::Router;
use axum::http::header::SET_COOKIE;
use axum::response::{AppendHeaders, Html, IntoResponse};
use axum::routing::{get, post};
use browser_support::Browser;

const PAGE: &str = r#"<!doctype html>
<html><head><title>smoke</title></head><body>
<form id="greet" method="post" action="/hello">
  <input id="who" name="who" value="placeholder">
  <select id="colour" name="colour">
    <option value="red">Red</option><option value="blue">Blue</option>
  </select>
  <label><input id="agree" type="checkbox" name="agree" value="yes"> agree</label>
  <button id="preview" type="button"
    onclick="document.getElementById('echo').textContent = 'typed ' + who.value">Preview</button>
  <button type="submit">Send</button>
</form>
<p id="echo"></p>
</body></html>"#;

async fn page() -> impl IntoResponse {
    (
        AppendHeaders([(
            SET_COOKIE,
            "session=s3cret; Path=/; HttpOnly; SameSite=Strict",
        )]),
        Html(PAGE),
    )
}

async fn hello(Form(form): Form<HashMap<String, String>>) -> Html<String> {
    let field = |name: &str| {
        html_escape::encode_text(form.get(name).map_or("-", String::as_str)).into_owned()
    };
    Html(format!(
        "<!doctype html><p id=\"greeting\">Hello, {}: {}, agree={}</p>",
        field("who"),
        field("colour"),
        field("agree"),
    ))
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_drives_a_form() {
    let started = Instant::now();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/", get(page))
        .route("/hello", post(hello));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let browser = Browser::start("browser_smoke").await;
    browser.goto(&format!("{base}/")).await;
    browser.wait_for("#greet").await;
    assert_eq!(browser.find_value("#who").await, "placeholder");
    browser.fill("#who", "Ada <Lovelace>").await;
    assert_eq!(browser.find_value("#who").await, "Ada <Lovelace>");
    browser.select("#colour", "blue").await;
    browser.check("#agree", true).await;
    browser.check("#agree", true).await; // already ticked: left as is
    browser.click("#preview").await;
    browser.wait_text("#echo", "typed Ada <Lovelace>").await;
    assert!(browser.source().await.contains("id=\"echo\""));

    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c.name == "session")
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    assert_eq!(session.value, "s3cret");
    assert!(session.http_only, "{session:?}");
    assert_eq!(session.same_site.as_deref(), Some("Strict"), "{session:?}");
    assert!(!session.secure, "{session:?}");

    browser.submit("#greet").await;
    browser
        .wait_text("#greeting", "Hello, Ada <Lovelace>: blue, agree=yes")
        .await;
    assert_eq!(browser.url().await, format!("{base}/hello"));
    assert_eq!(
        browser.text("#greeting").await,
        "Hello, Ada <Lovelace>: blue, agree=yes"
    );

    let shot = browser.shot("greeting").await;
    assert!(
        shot.ends_with("browser_smoke/01-greeting.png"),
        "{}",
        shot.display()
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG: {}",
        shot.display()
    );
    browser.close().await;
    eprintln!("browser smoke test took {:?}", started.elapsed());
}
