//! Each credential kind gets a token and lists the library root (client secret, certificate,
//! device code through `spgate connect`); a rotated refresh token survives a restart; and
//! `spgate check` tells a good connection from a bad secret.

mod common;
mod graph_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use graph_support::*;
use serde_json::json;
use spgate::connections::Connection;

/// Uploads a marker through the simulator's own API and checks that `connection` lists it.
async fn lists_root(world: &World, connection: &Connection, marker: &str) {
    world.ctx.put(marker, b"x").await;
    let tokens_before = world.count("token").await;
    let drive = connection.drive().await.expect("resolve the library");
    let names: Vec<String> = drive
        .list_all("/")
        .await
        .expect("list the root")
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(names.contains(&marker.to_string()), "{names:?}");
    assert_eq!(
        world.count("token").await,
        tokens_before + 1,
        "one token request"
    );
}

#[tokio::test]
async fn client_secret_gets_a_token_and_lists_the_root() {
    let world = World::new().await;
    let connection = world.open(&world.config("")).await;
    let token = connection.tokens.get().await.expect("token");
    assert!(!token.secret().is_empty());
    // The token is one the simulator accepts on its own Graph API.
    let resp = world
        .ctx
        .sim
        .http
        .get(world.ctx.d("/root"))
        .bearer_auth(token.secret())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let connection = world.open(&world.config("")).await;
    lists_root(&world, &connection, "secret-marker.txt").await;
}

#[tokio::test]
async fn certificate_gets_a_token_and_lists_the_root() {
    let keys = tempfile::tempdir().unwrap();
    let (cert, key) = (keys.path().join("c.pem"), keys.path().join("k.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args(["-days", "1", "-subj", "/CN=spgate-graph-test"])
        .output()
        .expect("the openssl command-line tool is needed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The demo app keeps its secret and also trusts this certificate.
    let app = format!(
        "certificate = '''\n{}'''\n",
        std::fs::read_to_string(&cert).unwrap()
    );
    let world = World::with_seed(&seed(&app, "")).await;
    let credential = format!("certificate = {{ cert = {cert:?}, key = {key:?} }}");
    let config = parse(&world.toml_for("contoso", &credential, ""));
    let connection = world.open(&config).await;
    lists_root(&world, &connection, "cert-marker.txt").await;
    assert!(!connection.health.is_disabled());
}

/// Runs `spgate connect` as a child, approves the code it prints, and waits for exit 0.
async fn device_sign_in(world: &World, config: &Path) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(["connect", NAME, "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn spgate connect");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let code = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("spgate connect printed no code");
        if let Some((_, code)) = line.split_once("enter the code ") {
            break code.trim().to_string();
        }
    };
    world
        .ctx
        .sim
        .control("/devicecode/approve", json!({ "user_code": code }))
        .await;
    let status = tokio::task::spawn_blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        rx.recv_timeout(Duration::from_secs(30))
            .expect("spgate connect did not exit")
            .expect("wait")
    })
    .await
    .unwrap();
    // The child has exited: its stdout is at EOF, so the reader thread ends and this returns.
    let rest: Vec<String> = rx.iter().collect();
    assert!(
        status.status.success(),
        "connect failed: {rest:?} {}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(rest.iter().any(|l| l.starts_with("signed in")), "{rest:?}");
}

fn device_seed() -> String {
    format!("device_code_interval_secs = 1\n{}", seed("", ""))
}

/// The refresh token saved in the state store.
async fn saved_refresh_token(world: &World) -> String {
    let store = world.paths().store().await.expect("open the state store");
    let grant = store.grant(NAME).await.expect("read the grant");
    grant
        .expect("a saved sign-in")
        .refresh_token
        .expose()
        .to_string()
}

/// The SQLite store's bytes, its write-ahead log included.
fn raw_store(world: &World) -> String {
    let mut raw = Vec::new();
    for file in ["spgate.db", "spgate.db-wal"] {
        raw.extend(std::fs::read(world.state.path().join(file)).unwrap_or_default());
    }
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn device_code_sign_in_then_the_connection_lists_the_root() {
    let world = World::with_seed(&device_seed()).await;
    let toml = world.toml_for("contoso", "auth = \"device_code\"", "");
    device_sign_in(&world, &world.write_config("spgate.toml", &toml)).await;
    let connection = world.open(&parse(&toml)).await;
    lists_root(&world, &connection, "device-marker.txt").await;
}

#[tokio::test]
async fn a_rotated_refresh_token_survives_a_restart_sealed_in_the_store() {
    let mut world = World::with_seed(&device_seed()).await;
    let toml = world.toml_for("contoso", "auth = \"device_code\"", "");
    device_sign_in(&world, &world.write_config("spgate.toml", &toml)).await;
    let first = saved_refresh_token(&world).await;

    // A: one token; the refresh token rotates and the new one is saved.
    let a = world.open(&parse(&toml)).await;
    let access = a.tokens.get().await.expect("token from the saved sign-in");
    drop(a);
    let second = saved_refresh_token(&world).await;
    assert_ne!(first, second, "the refresh token rotated");
    // Neither refresh token nor the access token is readable in the database.
    let raw = raw_store(&world);
    assert!(
        raw.contains("spgate-demo"),
        "the raw read sees the grant's app"
    );
    for (what, secret) in [("first", &first), ("second", &second)] {
        assert!(
            !raw.contains(secret.as_str()),
            "the {what} refresh token is in the clear"
        );
    }
    assert!(
        !raw.contains(access.secret()),
        "an access token is in the database"
    );
    assert!(
        !world.state.path().join("tokens").exists(),
        "no token files"
    );

    // The spent refresh token is refused by the simulator itself.
    let resp = world
        .ctx
        .sim
        .token_request(
            "contoso",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", APP),
                ("refresh_token", &first),
            ],
        )
        .await;
    assert_eq!(resp.status(), 400, "the old refresh token is spent");

    // B, after a "restart" with every access token expired, works from the rotated token.
    world.expire_tokens().await;
    let b = world.open(&parse(&toml)).await;
    lists_root(&world, &b, "restart-marker.txt").await;
    assert_ne!(saved_refresh_token(&world).await, second, "rotated again");
    assert!(!b.health.is_disabled());
}

#[tokio::test]
async fn a_sign_in_saved_by_an_earlier_version_is_imported_once() {
    let world = World::with_seed(&device_seed()).await;
    let toml = world.toml_for("contoso", "auth = \"device_code\"", "");
    device_sign_in(&world, &world.write_config("spgate.toml", &toml)).await;
    // As an earlier spgate left it: the grant in tokens/NAME.json, none in the store.
    let token = saved_refresh_token(&world).await;
    let store = world.paths().store().await.unwrap();
    store.delete_grant(NAME).await.unwrap();
    let tokens = world.state.path().join("tokens");
    std::fs::create_dir(&tokens).unwrap();
    let old = tokens.join(format!("{NAME}.json"));
    let saved = json!({
        "refresh_token": token, "client_id": APP, "tenant": "contoso", "user": null,
        "updated": "2026-06-01T10:00:00Z",
    });
    std::fs::write(&old, saved.to_string()).unwrap();

    let connection = world.open(&parse(&toml)).await;
    lists_root(&world, &connection, "imported-marker.txt").await;
    let imported = tokens.join(format!("{NAME}.json.imported"));
    assert!(
        !old.exists() && imported.exists(),
        "the old file is left as .imported"
    );
    let rotated = saved_refresh_token(&world).await;
    assert_ne!(
        rotated, token,
        "the imported token was used and rotated in the store"
    );
    // Imported once: with a sign-in in the store, a file put back (here with the spent token)
    // is not read again, and stays where it is.
    std::fs::write(&old, saved.to_string()).unwrap();
    world.ctx.sim.control("/tokens/expire", json!({})).await;
    let again = world.open(&parse(&toml)).await;
    // The access token saved with the sign-in is refused (expired): the refresh uses the
    // store's refresh token, not the file's spent one.
    let listed = match again.drive().await {
        Ok(drive) => drive
            .list_all("/")
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    assert!(listed.is_ok(), "{listed:?} {:?}", again.health.alert());
    assert_ne!(saved_refresh_token(&world).await, rotated);
    assert!(old.exists(), "the file was imported again");
}

/// Three instances on one PostgreSQL store need a token at once, 100 requests among them: the
/// refresh is made once, under the sign-in's row lock, and the access token it saves serves
/// the other instances (they never spend the same refresh token, which the simulator, like
/// Entra ID, refuses the second time: the connection would be disabled). After Graph refuses
/// that token (expired), the next refresh is made once again, and no refresh token is lost.
#[tokio::test]
async fn instances_sharing_a_postgresql_store_refresh_once_for_all() {
    use spgate::config::{Database, State};
    use spgate::connections::store::Paths;
    let mut world = World::with_seed(&device_seed()).await;
    let toml = world.toml_for("contoso", "auth = \"device_code\"", "");
    device_sign_in(&world, &world.write_config("spgate.toml", &toml)).await;
    let signed_in = world
        .paths()
        .store()
        .await
        .unwrap()
        .grant(NAME)
        .await
        .unwrap();
    let state = State {
        dir: world.state.path().join("shared"),
        database: Database::Postgres {
            url: common::postgres::server().url(&common::postgres::database()),
            password: None,
        },
        secret_key: Some(spgate::state::seal::Sealer::generate()),
    };
    Paths::in_state(&state)
        .save_grant(NAME, &signed_in.unwrap())
        .await
        .unwrap();

    let config = parse(&toml);
    // Each instance's store is open before they refresh, so that the refreshes overlap.
    let mut instances = Vec::new();
    for _ in 0..3 {
        let paths = Paths::in_state(&state);
        paths.store().await.unwrap();
        instances.push(
            Connection::open(&config.connections[0], &paths)
                .await
                .unwrap(),
        );
    }
    let requests = world.count("token").await;
    let gets = (0..100).map(|i| instances[i % 3].tokens.get());
    let got = futures_util::future::join_all(gets).await;
    assert!(got.iter().all(Result::is_ok), "{got:?}");
    assert!(instances.iter().all(|c| !c.health.is_disabled()));
    assert_eq!(
        world.count("token").await,
        requests + 1,
        "one refresh for the three instances"
    );
    let first = got[0].as_ref().unwrap().clone();
    assert!(got.iter().all(|t| t.as_ref().unwrap() == &first));

    // Graph refuses the shared token (it expired early): every instance lists the root again,
    // at once. One refresh again, with the rotated refresh token.
    world.expire_tokens().await;
    let requests = world.count("token").await;
    let lists = instances.iter().map(|c| async move {
        let drive = c.drive().await.expect("resolve the library");
        drive.list_all("/").await.map(|l| l.len())
    });
    let listed = futures_util::future::join_all(lists).await;
    assert!(listed.iter().all(Result::is_ok), "{listed:?}");
    assert_eq!(
        world.count("token").await,
        requests + 1,
        "one refresh again"
    );
    // The token saved last is the live one: a fourth instance refreshes with it.
    world.expire_tokens().await;
    let fourth = Connection::open(&config.connections[0], &Paths::in_state(&state))
        .await
        .unwrap();
    lists_root(&world, &fourth, "shared-marker.txt").await;
}

#[tokio::test]
async fn check_command_reports_ok_and_failed() {
    let world = World::new().await;
    let good = world.write_config("good.toml", &world.toml(""));
    let out = spgate(&["check"], &good);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("connection {NAME}:")), "{text}");
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("ok      library:") && l.contains(&world.ctx.drive)),
        "{text}"
    );

    let bad_state = tempfile::tempdir().unwrap();
    let bad = world
        .toml_for("contoso", "client_secret = \"wrong-secret\"", "")
        .replace(
            world.state.path().to_str().unwrap(),
            bad_state.path().to_str().unwrap(),
        );
    let bad = world.write_config("bad.toml", &bad);
    let out = spgate(&["check"], &bad);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let failed = text
        .lines()
        .find(|l| l.trim_start().starts_with("FAILED  token:"))
        .unwrap_or_else(|| panic!("no FAILED line: {text}"));
    assert!(failed.contains("7000215"), "{failed}");
    assert!(text.contains(&format!("connection {NAME}:")), "{text}");
    assert!(
        !text.contains("wrong-secret"),
        "the secret is never printed"
    );
    // The good connection's state was not touched by the bad one.
    assert!(stdout(&spgate(&["alerts"], &good)).contains("no open alerts"));
}
