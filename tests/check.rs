//! `spgate check` against the simulator: each failure an administrator meets first (an app
//! allowed to read but not write, a mount's folder that does not exist, an app not granted on
//! the site, a mistyped site) is reported with what to do and exit status 1; a good
//! configuration passes with a real write probe (created and deleted in SharePoint); and check
//! leaves the state directory byte for byte as it was, alerts included.

mod common;
mod graph_support;

use std::collections::BTreeMap;
use std::path::Path;

use graph_support::{World, spgate, stdout};

/// The default world, plus an app allowed to read only, one granted only the finance site
/// (Sites.Selected), an `Inbound` folder in the partners library, and the finance site.
fn seed() -> String {
    let apps = r#"
[[tenants.apps]]
client_id = "reader"
secret = "reader-secret"
access = "read"
[[tenants.apps]]
client_id = "elsewhere"
secret = "elsewhere-secret"
sites = ["finance"]
"#;
    let more = r#"folders = ["Inbound"]
[[tenants.sites]]
hostname = "contoso.sharepoint.com"
name = "finance"
[[tenants.sites.drives]]
name = "Documents"
"#;
    common::seed(apps, more)
}

/// A configuration of one connection (`app`, its secret, `site`) and a user whose mount on
/// `remote` may list, read and write.
fn config(world: &World, app: &str, secret: &str, site: &str, remote: &str) -> String {
    format!(
        "[state]\ndir = {state:?}\n\n[[connections]]\nname = \"sp\"\ntenant = \"contoso\"\n\
         client_id = \"{app}\"\nclient_secret = \"{secret}\"\n\
         site = \"https://contoso.sharepoint.com/sites/{site}\"\n\
         authority = \"{base}\"\ngraph_url = \"{base}\"\n\n\
         [[users]]\nname = \"alice\"\npassword_hash = \"{hash}\"\n\
         mounts = [{{ path = \"/\", connection = \"sp\", remote = \"{remote}\", permissions = [\"list\", \"read\", \"write\"] }}]\n",
        state = world.state.path().to_str().unwrap(),
        base = world.base(),
        hash = spgate::users::hash_password("alice password 1"),
    )
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let name = e.path().strip_prefix(dir).unwrap().display().to_string();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

/// Runs check on `toml`: its exit code and output.
fn check(configs: &Path, name: &str, toml: &str) -> (Option<i32>, String) {
    let file = configs.join(name);
    std::fs::write(&file, toml).unwrap();
    let out = spgate(&["check"], &file);
    (out.status.code(), stdout(&out))
}

/// The `what to do` line after the FAILED line containing `what`.
fn advice<'a>(text: &'a str, what: &str) -> &'a str {
    let mut lines = text
        .lines()
        .skip_while(|l| !(l.contains("FAILED") && l.contains(what)));
    assert!(
        lines.next().is_some(),
        "no FAILED line with {what:?}:\n{text}"
    );
    let todo = lines.next().unwrap_or_default().trim();
    todo.strip_prefix("what to do: ")
        .unwrap_or_else(|| panic!("no advice after {what:?}:\n{text}"))
}

#[tokio::test]
async fn check_reports_each_failure_with_what_to_do_and_changes_no_state() {
    let world = World::with_seed(&seed()).await;
    let configs = tempfile::tempdir().unwrap();

    // A state store made by an earlier command, as a running server would leave it.
    let good = config(&world, "spgate-demo", "demo-secret", "partners", "/Inbound");
    let file = configs.path().join("made.toml");
    std::fs::write(&file, &good).unwrap();
    let listed = spgate(&["users", "list"], &file);
    assert!(listed.status.success(), "{listed:?}");
    let before = snapshot(world.state.path());
    assert!(
        before.keys().any(|k| k.ends_with(".db")),
        "{:?}",
        before.keys()
    );

    // All good: every step passes, and the write probe really wrote and deleted a file.
    let stats = world.ctx.sim.stats().await["by_kind"].clone();
    let (code, text) = check(configs.path(), "good.toml", &good);
    assert_eq!(code, Some(0), "{text}");
    for step in [
        "ok      token:",
        "ok      site:",
        "ok      library: Documents",
    ] {
        assert!(text.contains(step), "{step}:\n{text}");
    }
    assert!(
        text.contains("ok      user alice, mount / -> /Inbound: exists, listed, write probe created and deleted"),
        "{text}"
    );
    let after = world.ctx.sim.stats().await["by_kind"].clone();
    assert_eq!(
        after["simple_upload"].as_u64().unwrap(),
        stats["simple_upload"].as_u64().unwrap() + 1,
        "one probe uploaded"
    );
    assert_eq!(
        after["delete"].as_u64().unwrap(),
        stats["delete"].as_u64().unwrap() + 1,
        "and deleted"
    );
    let left = world.names("Inbound").await;
    assert!(
        left.iter().all(|n| !n.starts_with(".spgate-check-")),
        "{left:?}"
    );

    // An app allowed to read only: the write probe is refused; grant it write.
    let toml = config(&world, "reader", "reader-secret", "partners", "/Inbound");
    let (code, text) = check(configs.path(), "reader.toml", &toml);
    assert_eq!(code, Some(1), "{text}");
    let todo = advice(&text, "cannot be written");
    assert!(todo.contains("can read but not write"), "{todo}");
    assert!(todo.contains("\"roles\": [\"write\"]"), "{todo}");
    assert!(todo.contains("Sites.ReadWrite.All"), "{todo}");

    // A mount's folder that does not exist.
    let toml = config(
        &world,
        "spgate-demo",
        "demo-secret",
        "partners",
        "/Outbound",
    );
    let (code, text) = check(configs.path(), "missing.toml", &toml);
    assert_eq!(code, Some(1), "{text}");
    let todo = advice(&text, "there is no such folder in library 'Documents'");
    assert_eq!(
        todo,
        "create the folder in SharePoint, or fix `remote` of user alice, mount /"
    );

    // An app not granted on the site (Sites.Selected, granted only finance).
    let toml = config(
        &world,
        "elsewhere",
        "elsewhere-secret",
        "partners",
        "/Inbound",
    );
    let (code, text) = check(configs.path(), "elsewhere.toml", &toml);
    assert_eq!(code, Some(1), "{text}");
    let todo = advice(
        &text,
        "site https://contoso.sharepoint.com/sites/partners: access denied",
    );
    assert!(
        todo.starts_with("the app is not granted on this site"),
        "{todo}"
    );
    assert!(
        todo.contains(&format!(
            "GET {}/v1.0/sites/contoso.sharepoint.com:/sites/partners?$select=id",
            world.base()
        )),
        "{todo}"
    );
    assert!(todo.contains("\"id\": \"elsewhere\""), "{todo}");
    assert!(
        text.contains("skipped 1 mount(s) and sync job(s) on it"),
        "{text}"
    );

    // A mistyped site: the closest site the app can see is named.
    let toml = config(&world, "spgate-demo", "demo-secret", "partner", "/Inbound");
    let (code, text) = check(configs.path(), "typo.toml", &toml);
    assert_eq!(code, Some(1), "{text}");
    let todo = advice(&text, "there is no such site");
    assert!(
        todo.contains(
            "sites the app can see with a close name: https://contoso.sharepoint.com/sites/partners"
        ),
        "{todo}"
    );

    // A wrong secret: the token step fails with the identity platform's code and what to do.
    let toml = config(
        &world,
        "spgate-demo",
        "wrong-secret",
        "partners",
        "/Inbound",
    );
    let (code, text) = check(configs.path(), "secret.toml", &toml);
    assert_eq!(code, Some(1), "{text}");
    let todo = advice(&text, "7000215");
    assert!(todo.contains("client secret"), "{todo}");
    assert!(
        !text.contains("wrong-secret"),
        "the secret is never printed"
    );

    // Not a byte of the state changed: no alert, no migration, no key.
    let now = snapshot(world.state.path());
    let changed: Vec<(&String, usize, Option<usize>)> = now
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k, v.len(), before.get(k).map(Vec::len)))
        .collect();
    let gone: Vec<&String> = before.keys().filter(|k| !now.contains_key(*k)).collect();
    assert!(
        changed.is_empty() && gone.is_empty(),
        "changed {changed:?}, gone {gone:?}"
    );
    let alerts = stdout(&spgate(&["alerts"], &file));
    assert!(alerts.contains("no open alerts"), "{alerts}");
}

#[tokio::test]
async fn check_makes_no_state_directory() {
    let world = World::with_seed(&seed()).await;
    let configs = tempfile::tempdir().unwrap();
    let missing = world.state.path().join("not-yet");
    let toml = config(&world, "spgate-demo", "demo-secret", "partners", "/Inbound").replace(
        world.state.path().to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    let (code, text) = check(configs.path(), "fresh.toml", &toml);
    assert_eq!(code, Some(0), "{text}");
    assert!(!missing.exists(), "check made {}", missing.display());

    // A delegated connection nobody signed in: said so, with how to sign in; still no state.
    let delegated = toml.replace("client_secret = \"demo-secret\"", "auth = \"delegated\"");
    let (code, text) = check(configs.path(), "delegated.toml", &delegated);
    assert_eq!(code, Some(1), "{text}");
    let todo = advice(&text, "token: nobody has signed in");
    assert!(todo.contains("spgate connect sp"), "{todo}");
    assert!(!missing.exists(), "check made {}", missing.display());
}
