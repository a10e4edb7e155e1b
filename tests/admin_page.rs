//! The status page rendered by a real headless browser (Debian's Chromium, which `.ci/run`
//! installs): a screenshot is taken and the DOM the browser built is checked.

mod common;
mod sync_support;

use common::{Ctx, spawn_serve};
use sync_support::quote_toml;

#[tokio::test(flavor = "multi_thread")]
async fn the_status_page_renders_in_chromium() {
    let Some(chromium) = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
    else {
        eprintln!("note: Chromium is not installed; the browser check is skipped");
        return;
    };
    let ctx = Ctx::new().await;
    let dir = tempfile::tempdir().unwrap();
    // No token on a loopback address: the page is open to local callers.
    let config = format!(
        "[state]\ndir = {state}\n\n[admin]\nlisten = \"127.0.0.1:0\"\n\n\
         {connection}",
        connection = ctx.connection_toml("partners-sp"),
        state = quote_toml(dir.path().join("state").to_str().unwrap()),
    );
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, config).unwrap();
    let log = dir.path().join("spgate.log");
    let (mut child, announced) = spawn_serve(&path, &log, &["admin"]);
    let admin = announced[0]
        .clone()
        .unwrap_or_else(|| panic!("no admin address:\n{}", common::file_tail(&log, 4000)));
    let url = format!("http://{admin}/");
    let shot = dir.path().join("status.png");
    let browser = |args: Vec<String>| {
        std::process::Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .args(args)
            .output()
            .expect("run chromium")
    };
    let dom = browser(vec!["--dump-dom".into(), url.clone()]);
    let dom = String::from_utf8_lossy(&dom.stdout).into_owned();
    for needle in [
        "<h1>spgate</h1>",
        "Connections",
        "partners-sp",
        "No open alerts.",
        "No sync jobs configured.",
    ] {
        assert!(
            dom.contains(needle),
            "{needle} missing from the rendered page:\n{dom}"
        );
    }
    let taken = browser(vec![
        format!("--screenshot={}", shot.display()),
        "--window-size=1200,800".into(),
        url,
    ]);
    let png = std::fs::read(&shot)
        .unwrap_or_else(|_| panic!("no screenshot: {}", String::from_utf8_lossy(&taken.stderr)));
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    assert!(
        png.len() > 5_000,
        "the screenshot is suspiciously small ({} bytes)",
        png.len()
    );
    let _ = child.kill();
    let _ = child.wait();
}
