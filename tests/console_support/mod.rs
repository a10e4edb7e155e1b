//! The console without a browser: an administrator made with `spgate admins add`, a sign-in
//! through the form over HTTP, and reading what a page shows (cookies, inputs, links).

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;

use crate::common::Gateway;

/// `spgate admins add NAME` with the password on stdin.
pub fn add_admin(gateway: &Gateway, name: &str, password: &str) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(["admins", "add", name, "--config"])
        .arg(gateway.dir.path().join("spgate.toml"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run spgate admins add");
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "admins add: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Signs in through the sign-in form: the session cookie (`name=value`) and the whole
/// `Set-Cookie` line that set it.
pub async fn sign_in(
    http: &reqwest::Client,
    base: &str,
    name: &str,
    password: &str,
) -> (String, String) {
    let form = http
        .get(format!("{base}/console/login"))
        .send()
        .await
        .unwrap();
    let pairing = set_cookie(&form, "spgate_console_signin=");
    let token = input(&form.text().await.unwrap(), "token");
    let signed = http
        .post(format!("{base}/console/login"))
        .header("cookie", pairing)
        .form(&[
            ("name", name),
            ("password", password),
            ("token", &token),
            ("next", "/console/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let line = set_cookie_line(&signed, "spgate_console=");
    (line.split(';').next().unwrap().to_string(), line)
}

/// The whole `Set-Cookie` line of `response` for the cookie starting with `prefix`.
pub fn set_cookie_line(response: &reqwest::Response, prefix: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with(prefix))
        .unwrap_or_else(|| panic!("no cookie {prefix}"))
        .to_string()
}

/// The `name=value` of the cookie starting with `prefix` that `response` sets.
pub fn set_cookie(response: &reqwest::Response, prefix: &str) -> String {
    let line = set_cookie_line(response, prefix);
    line.split(';').next().unwrap().to_string()
}

/// Text of HTML with minijinja's escapes undone.
pub fn unescape(text: &str) -> String {
    text.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Every value of attribute `attr` (unescaped) in the elements of `html` that carry `marker`.
pub fn attrs(html: &str, marker: &str, attr: &str) -> Vec<String> {
    html.split('<')
        .filter(|element| element.contains(marker))
        .filter_map(|element| {
            let start = element.find(&format!(" {attr}=\""))? + attr.len() + 3;
            let end = start + element[start..].find('"')?;
            Some(unescape(&element[start..end]))
        })
        .collect()
}

/// The value of the input with `name` (hidden or not).
pub fn input(html: &str, name: &str) -> String {
    attrs(html, &format!("name=\"{name}\""), "value")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no input {name} in {html}"))
}

/// The text of the element with id `id` in `html` (up to its first tag inside).
pub fn element_text(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    unescape(&rest[..rest.find('<').unwrap()])
}
