//! A real browser for the suites that test web pages: Debian's Chromium driven through WebDriver
//! by `chromedriver`, both started by the test itself (`.ci/run` installs the `chromium` and
//! `chromium-driver` packages). A missing binary fails the test; nothing is skipped.
//!
//! - [`Browser`]: one WebDriver session and the page actions the suites use (CSS selectors,
//!   panics with the selector and the driver's log on failure, waits bounded by [`TIMEOUT`]);
//! - [`Cookie`]: what the browser holds for a cookie, as the WebDriver cookie endpoint reports it;
//! - [`driver`]: the `chromedriver` process, on a port it picks itself (`--port=0`), in its own
//!   process group so that dropping it also ends the Chromium it started, even when a test
//!   panics.
//!
//! Screenshots go to `target/test-artifacts/<artifacts>/NN-<name>.png`; the driver's log stays
//! in a temp dir that is kept (and named on stderr) when the test fails.
#![allow(dead_code)]

mod driver;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::time::{Instant, sleep};

use driver::Driver;

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The longest any wait (driver start, page load, element, text) may take.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// How often a wait re-checks its condition.
const POLL: Duration = Duration::from_millis(25);

/// Chromium's switches. The network is closed on the test machines: without the
/// background-networking switches Chromium stalls on refused connections.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
];

/// A cookie as the browser holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cookie {
    pub name: String,
    pub value: String,
    pub http_only: bool,
    /// `Strict`, `Lax` or `None`, as the browser reports it.
    pub same_site: Option<String>,
    pub secure: bool,
}

/// A Chromium session. Every method panics on failure, naming what it was doing.
pub struct Browser {
    client: Client,
    driver: Driver,
    artifacts: PathBuf,
    shots: AtomicU32,
}

impl Browser {
    /// Starts `chromedriver` and a headless Chromium with a fresh profile; screenshots go to
    /// `target/test-artifacts/<artifacts>/`, emptied first.
    pub async fn start(artifacts: &str) -> Browser {
        let driver = Driver::start().await;
        // reqwest enables rustls' ring provider and spgate aws-lc-rs: name the one to use.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let client = ClientBuilder::rustls()
            .expect("rustls for the WebDriver client")
            .capabilities(capabilities(&driver.dir().join("profile")))
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| panic!("open a Chromium session: {e}\n{}", driver.log()));
        let artifacts = artifacts_dir().join(artifacts);
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts)
            .unwrap_or_else(|e| panic!("create {}: {e}", artifacts.display()));
        Browser {
            client,
            driver,
            artifacts,
            shots: AtomicU32::new(0),
        }
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        let done = self.client.goto(url).await;
        self.ok(done, &format!("go to {url}"));
    }

    pub async fn click(&self, css: &str) {
        let done = self.find(css).await.click().await;
        self.ok(done, &format!("click {css}"));
    }

    /// Clears the field, then types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let field = self.find(css).await;
        let done = field.clear().await;
        self.ok(done, &format!("clear {css}"));
        let done = field.send_keys(text).await;
        self.ok(done, &format!("type into {css}"));
    }

    /// Selects the `<option>` whose value is `value` in the `<select>` at `css`.
    pub async fn select(&self, css: &str, value: &str) {
        let done = self.find(css).await.select_by_value(value).await;
        self.ok(done, &format!("select {value:?} in {css}"));
    }

    /// Ticks (`on`) or unticks the checkbox at `css`, clicking it only if it must change.
    pub async fn check(&self, css: &str, on: bool) {
        let checkbox = self.find(css).await;
        let ticked = checkbox.is_selected().await;
        if self.ok(ticked, &format!("read {css}")) != on {
            let done = checkbox.click().await;
            self.ok(done, &format!("click {css}"));
        }
    }

    /// Submits the form at `css` as `requestSubmit()` does: validation and submit handlers
    /// run, no button is the submitter (click one to send its name and value).
    pub async fn submit(&self, css: &str) {
        let form = self.find(css).await;
        let sent = self
            .client
            .execute("arguments[0].requestSubmit();", vec![json!(form)])
            .await;
        self.ok(sent, &format!("submit {css}"));
    }

    /// The rendered text of the element at `css`.
    pub async fn text(&self, css: &str) -> String {
        let text = self.find(css).await.text().await;
        self.ok(text, &format!("read the text of {css}"))
    }

    /// The current value of the form field at `css` (what was typed or chosen, not the
    /// `value` attribute the page was served with).
    pub async fn find_value(&self, css: &str) -> String {
        let value = self.find(css).await.prop("value").await;
        self.ok(value, &format!("read the value of {css}"))
            .unwrap_or_default()
    }

    /// The current page's HTML as the browser now has it.
    pub async fn source(&self) -> String {
        let source = self.client.source().await;
        self.ok(source, "read the page source")
    }

    pub async fn url(&self) -> String {
        let url = self.client.current_url().await;
        self.ok(url, "read the URL").to_string()
    }

    /// Waits until an element matches `css`.
    pub async fn wait_for(&self, css: &str) {
        let found = self
            .client
            .wait()
            .at_most(TIMEOUT)
            .every(POLL)
            .for_element(Locator::Css(css))
            .await;
        if let Err(e) = found {
            let (url, source) = (self.url().await, self.source().await);
            panic!(
                "wait for {css}: {e}\non {url}:\n{source}\n{}",
                self.driver.log()
            );
        }
    }

    /// Waits until the element at `css` exists and its text contains `needle`.
    pub async fn wait_text(&self, css: &str, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = None;
        while Instant::now() < deadline {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(needle) {
                    return;
                }
                seen = Some(text);
            }
            sleep(POLL).await;
        }
        panic!(
            "{needle:?} not in {css} after {TIMEOUT:?} (text: {seen:?}) on {}\n{}",
            self.url().await,
            self.source().await
        );
    }

    /// Every cookie the browser holds for the current page.
    pub async fn cookies(&self) -> Vec<Cookie> {
        let cookies = self.client.get_all_cookies().await;
        let cookies = self.ok(cookies, "read the cookies");
        cookies
            .iter()
            .map(|c| Cookie {
                name: c.name().to_owned(),
                value: c.value().to_owned(),
                http_only: c.http_only().unwrap_or(false),
                same_site: c.same_site().map(|s| s.to_string()),
                secure: c.secure().unwrap_or(false),
            })
            .collect()
    }

    /// Saves a PNG of the viewport as `NN-<name>.png` in the artifacts dir; answers its path.
    pub async fn shot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await;
        let png = self.ok(png, &format!("take screenshot {name}"));
        let n = self.shots.fetch_add(1, Ordering::Relaxed) + 1;
        let path = self.artifacts.join(format!("{n:02}-{name}.png"));
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Ends the session (Chromium quits), then stops `chromedriver`.
    pub async fn close(mut self) {
        let closed = self.client.clone().close().await;
        self.ok(closed, "end the session");
        self.driver.stop();
    }

    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self.client.find(Locator::Css(css)).await;
        self.ok(found, &format!("find {css}"))
    }

    /// `result`'s value, or a panic naming `doing` and showing the driver's log.
    fn ok<T, E: std::fmt::Display>(&self, result: Result<T, E>, doing: &str) -> T {
        result.unwrap_or_else(|e| panic!("{doing}: {e}\n{}", self.driver.log()))
    }
}

/// The session's capabilities: Debian's Chromium with [`CHROMIUM_ARGS`] and `profile`, and
/// WebDriver timeouts no longer than [`TIMEOUT`].
fn capabilities(profile: &Path) -> serde_json::Map<String, Value> {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let limit = TIMEOUT.as_millis() as u64;
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": { "binary": CHROMIUM, "args": args },
        "timeouts": { "implicit": 0, "pageLoad": limit, "script": limit },
    });
    let Value::Object(caps) = caps else {
        unreachable!("a JSON object")
    };
    caps
}

/// `$CARGO_TARGET_DIR/test-artifacts`, or the crate's `target/test-artifacts`.
fn artifacts_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("test-artifacts")
}
