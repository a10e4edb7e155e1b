//! A revoked app disables its connection: the operation fails with `Kind::Disabled`, an alert
//! is raised (library, state store, `spgate alerts`, `spgate connections`), later operations
//! fail fast without sending anything, and only an administrator brings it back — with
//! `spgate connections enable` or by changing the connection's configuration.

mod common;
mod graph_support;

use std::time::{Duration, Instant};

use graph_support::*;
use serde_json::json;
use spgate::connections::health::{self, Alert};
use spgate::graph::Kind;

/// The open alerts, as the state store has them.
async fn open_alerts(world: &World) -> Vec<Alert> {
    let store = world.paths().store().await.unwrap();
    health::open_alerts(&store).await.unwrap()
}

/// Revokes the demo app and expires its tokens; `drive` was working until now.
async fn revoke(world: &mut World) {
    world
        .ctx
        .sim
        .control("/apps/spgate-demo/revoke", json!({}))
        .await;
    // The test's own Graph view keeps a token issued before the revocation.
    let token = world.ctx.token.clone();
    world.ctx.sim.control("/tokens/expire", json!({})).await;
    world.ctx.token = token;
}

async fn restore(world: &mut World) {
    world
        .ctx
        .sim
        .control("/apps/spgate-demo/restore", json!({}))
        .await;
    world.ctx.token = world.ctx.sim.app_token().await;
}

#[tokio::test]
async fn a_revoked_app_disables_the_connection_until_enabled() {
    let mut world = World::new().await;
    let (connection, drive) = world.drive("").await;
    drive.stat("/").await.expect("works before the revocation");
    revoke(&mut world).await;

    let e = drive.stat("/").await.expect_err("the app is revoked");
    assert_eq!(e.kind, Kind::Disabled, "{e}");
    assert!(e.message.contains("7000222"), "{e}");
    let alert = connection.health.alert().expect("an alert is raised");
    assert!(alert.code.contains("7000222"), "{alert:?}");
    assert_eq!(alert.connection, NAME);
    assert!(alert.action.contains("client secret"), "{alert:?}");
    let open = open_alerts(&world).await;
    assert_eq!(open.len(), 1, "{open:?}");
    assert!(open[0].code.contains("7000222"));

    // Further operations fail fast and send nothing, not even a token request.
    let before = world.ctx.sim.stats().await;
    for op in 0..5 {
        let started = Instant::now();
        let result = match op % 3 {
            0 => drive.stat("/").await.map(|_| ()),
            1 => drive.list_all("/").await.map(|_| ()),
            _ => put_result(&drive, "/after.txt").await,
        };
        assert!(started.elapsed() < Duration::from_millis(100), "fails fast");
        assert_kind(result, Kind::Disabled, "while disabled");
    }
    assert_eq!(world.ctx.sim.stats().await, before, "no request was sent");

    // The CLI sees the alert in the state directory.
    let config = world.write_config("spgate.toml", &world.toml(""));
    let text = stdout(&spgate(&["alerts"], &config));
    assert!(text.contains(NAME) && text.contains("7000222"), "{text}");
    assert!(text.contains("what to do"), "{text}");
    let text = stdout(&spgate(&["connections"], &config));
    assert!(text.contains(&format!("{NAME}\tdisabled")), "{text}");

    // Reopening with the same configuration keeps it disabled, even after the app is restored.
    restore(&mut world).await;
    let again = world.open(&world.config("")).await;
    assert!(again.health.is_disabled());
    let before = world.requests().await;
    assert_kind(again.drive().await.map(|_| ()), Kind::Disabled, "reopened");
    assert_eq!(world.requests().await, before);

    // The administrator enables it; a new connection works and the alert is gone.
    let out = spgate(&["connections", "enable", NAME], &config);
    assert!(
        out.status.success(),
        "{}{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("enabled"), "{}", stdout(&out));
    assert!(open_alerts(&world).await.is_empty());
    assert!(stdout(&spgate(&["alerts"], &config)).contains("no open alerts"));
    assert!(stdout(&spgate(&["connections"], &config)).contains(&format!("{NAME}\tenabled")));
    let (fresh, drive) = world.drive("").await;
    put(&drive, "/back.txt", b"back").await;
    assert_eq!(world.item("back.txt").await["size"], 4);
    assert!(fresh.health.alert().is_none());
}

async fn put_result(drive: &spgate::graph::Drive, path: &str) -> spgate::graph::Result<()> {
    drive.upload(path, &b"x"[..], 1, None).await.map(|_| ())
}

#[tokio::test]
async fn a_changed_configuration_enables_a_disabled_connection() {
    let mut world = World::new().await;
    let (connection, drive) = world.drive("").await;
    drive.stat("/").await.unwrap();
    revoke(&mut world).await;
    assert_kind(drive.stat("/").await, Kind::Disabled, "revoked");
    assert!(connection.health.is_disabled());
    restore(&mut world).await;

    // Settings outside the connection's identity (limits) do not count as a change.
    let limits = world.config("max_retries = 2");
    assert!(world.open(&limits).await.health.is_disabled());

    // The tenant written as its domain is the same tenant to the simulator, but a different
    // configuration to spgate: the connection starts enabled again.
    let changed = parse(&world.toml_for(
        "contoso.onmicrosoft.com",
        "client_secret = \"demo-secret\"",
        "",
    ));
    let reopened = world.open(&changed).await;
    assert!(!reopened.health.is_disabled());
    assert!(open_alerts(&world).await.is_empty());
    let drive = reopened.drive().await.expect("works again");
    assert!(drive.stat("/").await.unwrap().is_dir);
    let store = world.paths().store().await.unwrap();
    let history = health::history(&store, Some(NAME), None, 10).await.unwrap();
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(
        history[0].cleared.is_some()
            && history[0]
                .cleared_why
                .as_deref()
                .is_some_and(|why| why.contains("configuration changed")),
        "{history:?}"
    );
}

#[tokio::test]
async fn a_wrong_secret_disables_without_retrying() {
    let world = World::new().await;
    let config = parse(&world.toml_for("contoso", "client_secret = \"nope\"", ""));
    let connection = world.open(&config).await;
    let before = world.count("token").await;
    assert_kind(
        connection.drive().await.map(|_| ()),
        Kind::Disabled,
        "bad secret",
    );
    assert_eq!(
        world.count("token").await,
        before + 1,
        "one token request, no retries"
    );
    let alert = connection.health.alert().unwrap();
    assert!(alert.code.contains("7000215"), "{alert:?}");
    assert!(!alert.message.contains("nope") && !alert.action.contains("nope"));
}
