//! The state store against both engines, the same checks each: embedded SQLite in a temp dir,
//! and a real PostgreSQL server started by the harness (tests/common/postgres.rs). Records and
//! who may change them, sealed secrets (absent from the SQLite file and from `pg_dump`), host
//! keys made once, the schema's version rule and the master key rules.

mod common;

use serde_json::json;
use spgate::config::{Database, Secret};
use spgate::state::alerts::{Alert, Raise, WhenOpen};
use spgate::state::grants::Grant;
use spgate::state::records::{By, Kind, SecretWrite};
use spgate::state::seal::Sealer;
use spgate::state::{Error, Store, host_keys::HostKey, key_file};

use common::postgres;

const FILE: &str = "/etc/spgate/spgate.toml";

/// One store under test: where it is, and how to read what it holds raw.
struct Place {
    database: Database,
    pg_name: Option<String>,
    dir: tempfile::TempDir,
}

impl Place {
    fn sqlite() -> Place {
        let dir = tempfile::tempdir().unwrap();
        Place {
            database: Database::Sqlite(dir.path().join("state/spgate.db")),
            pg_name: None,
            dir,
        }
    }

    fn postgres() -> Place {
        let name = postgres::database();
        Place {
            database: Database::Postgres {
                url: postgres::server().url(&name),
                password: None,
            },
            pg_name: Some(name),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("state")
    }

    async fn open(&self, key: Option<&Secret>) -> Result<Store, Error> {
        Store::open(&self.database, key, &self.state_dir()).await
    }

    /// Everything the database holds, as text: the SQLite files' bytes, or a `pg_dump`.
    fn raw(&self) -> String {
        match &self.pg_name {
            Some(name) => postgres::server().dump(name),
            None => {
                let mut all = Vec::new();
                for suffix in ["", "-wal", "-shm"] {
                    let path = self.state_dir().join(format!("spgate.db{suffix}"));
                    all.extend(std::fs::read(path).unwrap_or_default());
                }
                String::from_utf8_lossy(&all).into_owned()
            }
        }
    }

    /// Runs `sql` on the database directly.
    fn execute(&self, sql: &str) {
        match &self.pg_name {
            Some(name) => {
                postgres::server().psql(name, sql);
            }
            None => {
                let db = rusqlite::Connection::open(self.state_dir().join("spgate.db")).unwrap();
                db.execute_batch(sql).unwrap();
            }
        }
    }
}

fn key() -> Secret {
    Sealer::generate()
}

/// One test per engine for each check below.
macro_rules! on_both {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $check() { super::$check(super::Place::sqlite()).await })*
        }
        mod postgresql {
            $(#[tokio::test] async fn $check() { super::$check(super::Place::postgres()).await })*
        }
    };
}

on_both!(
    records_are_written_read_listed_and_deleted,
    a_record_the_file_manages_is_read_only_through_the_api,
    a_connection_secret_is_sealed_and_kept,
    host_keys_are_made_once_and_sealed,
    a_newer_schema_is_refused,
    a_store_opens_only_with_the_key_that_sealed_it,
    provisioning_follows_the_file,
    sign_ins_are_sealed_replaced_and_deleted,
    rekey_seals_every_secret_again,
    the_audit_is_kept_queried_and_pruned,
    one_alert_per_source_is_open_whoever_raises_it,
    alerts_of_earlier_files_are_imported_once,
    failed_logins_are_counted_expired_and_cleared,
    sync_state_round_trips_and_one_instance_holds_a_job,
);

/// What a file declares is put, unchanged records are left alone, what it no longer declares
/// is deleted, and its connection secrets are sealed, never in a record.
async fn provisioning_follows_the_file(place: Place) {
    let store = place.open(Some(&key())).await.unwrap();
    let file = |users: &str, secret: &str| {
        let text = format!(
            "[state]\ndir = \"/nonexistent\"\n\
             [[connections]]\nname = \"sp\"\ntenant = \"t\"\nclient_id = \"c\"\n\
             site = \"https://contoso.sharepoint.com/sites/x\"\nclient_secret = \"{secret}\"\n\
             {users}"
        );
        spgate::config::parse_str(&text).unwrap()
    };
    let alice = "[[users]]\nname = \"alice\"\npassword_hash = \"$argon2id$x\"\n\
                 [[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\n";
    let bob = alice.replace("alice", "bob");
    let config = file(&format!("{alice}{bob}"), "Sealed-Pv9-secret");
    let done = store
        .provision(FILE, config.source.declared())
        .await
        .unwrap();
    assert_eq!((done.written.len(), done.deleted.len()), (3, 0), "{done:?}");
    let sp = store.get(Kind::Connections, "sp").await.unwrap().unwrap();
    assert_eq!(sp.secret.unwrap().expose(), "Sealed-Pv9-secret");
    assert!(sp.record.get("client_secret").is_none(), "{}", sp.record);
    assert_eq!(sp.managed_by.as_deref(), Some(FILE));
    // The same file again changes nothing.
    let again = store
        .provision(FILE, config.source.declared())
        .await
        .unwrap();
    assert!(
        again.written.is_empty() && again.deleted.is_empty(),
        "{again:?}"
    );
    // Bob removed from the file, the secret changed.
    let config = file(alice, "Rotated-Pv9-secret");
    let done = store
        .provision(FILE, config.source.declared())
        .await
        .unwrap();
    assert_eq!(done.written, vec![(Kind::Connections, "sp".to_string())]);
    assert_eq!(done.deleted, vec![(Kind::Users, "bob".to_string())]);
    let (records, managers) = store.records().await.unwrap();
    assert_eq!(records.users.len(), 1);
    assert_eq!(
        records.connections[0].secret.as_ref().unwrap().0,
        "Rotated-Pv9-secret"
    );
    assert!(
        managers
            .iter()
            .all(|(_, _, by)| by.as_deref() == Some(FILE))
    );
    // The assembled configuration is the file's.
    let assembled = config.with_records(&records).unwrap();
    assert_eq!(assembled.users[0].name, "alice");
    assert_eq!(assembled.connections[0].name, "sp");
    store.close().await;
    let raw = place.raw();
    assert!(raw.contains("alice"));
    assert!(
        !raw.contains("Pv9"),
        "a connection secret is readable in the database"
    );
}

async fn records_are_written_read_listed_and_deleted(place: Place) {
    let key = key();
    let store = place.open(Some(&key)).await.unwrap();
    assert_eq!(
        store.version().await.unwrap(),
        spgate::state::schema::VERSION
    );
    let alice = json!({"name": "alice", "password_hash": "$argon2id$x", "mounts": []});
    assert_eq!(
        store
            .put(Kind::Users, "alice", &alice, SecretWrite::Keep, By::Api)
            .await
            .unwrap(),
        1
    );
    let bob = json!({"name": "bob", "enabled": false});
    store
        .put(Kind::Users, "bob", &bob, SecretWrite::Keep, By::Api)
        .await
        .unwrap();
    let got = store.get(Kind::Users, "alice").await.unwrap().unwrap();
    assert_eq!((got.record, got.revision, got.managed_by), (alice, 1, None));
    assert!(got.updated_at > 1_700_000_000);
    let changed = json!({"name": "alice", "enabled": false});
    assert_eq!(
        store
            .put(Kind::Users, "alice", &changed, SecretWrite::Keep, By::Api)
            .await
            .unwrap(),
        2
    );
    let names: Vec<String> = store
        .list(Kind::Users)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["alice", "bob"]);
    // Kinds are apart.
    assert!(store.list(Kind::Syncs).await.unwrap().is_empty());
    assert!(store.delete(Kind::Users, "bob", By::Api).await.unwrap());
    assert!(!store.delete(Kind::Users, "bob", By::Api).await.unwrap());
    assert!(store.get(Kind::Users, "bob").await.unwrap().is_none());
    // A second opening finds it all (migrations are not applied twice).
    store.close().await;
    let again = place.open(Some(&key)).await.unwrap();
    assert_eq!(
        again
            .get(Kind::Users, "alice")
            .await
            .unwrap()
            .unwrap()
            .revision,
        2
    );
}

async fn a_record_the_file_manages_is_read_only_through_the_api(place: Place) {
    let store = place.open(Some(&key())).await.unwrap();
    let job = json!({"name": "nightly", "direction": "push"});
    store
        .put(
            Kind::Syncs,
            "nightly",
            &job,
            SecretWrite::Keep,
            By::Config(FILE),
        )
        .await
        .unwrap();
    let refused = store
        .put(
            Kind::Syncs,
            "nightly",
            &json!({"name": "nightly"}),
            SecretWrite::Keep,
            By::Api,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Managed { file, .. } if file == FILE),
        "{refused:?}"
    );
    assert!(refused.to_string().contains(FILE), "{refused}");
    assert!(matches!(
        store.delete(Kind::Syncs, "nightly", By::Api).await,
        Err(Error::Managed { .. })
    ));
    let kept = store.get(Kind::Syncs, "nightly").await.unwrap().unwrap();
    assert_eq!((kept.record, kept.revision), (job, 1));
    assert_eq!(kept.managed_by.as_deref(), Some(FILE));
    // The file may change and remove it; it then belongs to nobody.
    store
        .put(
            Kind::Syncs,
            "nightly",
            &json!({"name": "nightly"}),
            SecretWrite::Keep,
            By::Config(FILE),
        )
        .await
        .unwrap();
    assert!(
        store
            .delete(Kind::Syncs, "nightly", By::Config(FILE))
            .await
            .unwrap()
    );
    // An API record taken over by the file becomes the file's.
    store
        .put(Kind::Users, "carol", &json!({}), SecretWrite::Keep, By::Api)
        .await
        .unwrap();
    store
        .put(
            Kind::Users,
            "carol",
            &json!({"x": 1}),
            SecretWrite::Keep,
            By::Config(FILE),
        )
        .await
        .unwrap();
    assert!(matches!(
        store
            .put(Kind::Users, "carol", &json!({}), SecretWrite::Keep, By::Api)
            .await,
        Err(Error::Managed { .. })
    ));
}

/// Puts connection `acme` with `secret` through the API: its record.
async fn put_acme(store: &Store, secret: &Secret) -> serde_json::Value {
    let record = json!({"name": "acme", "tenant": "contoso"});
    store
        .put(
            Kind::Connections,
            "acme",
            &record,
            SecretWrite::Set(secret),
            By::Api,
        )
        .await
        .unwrap();
    record
}

async fn a_connection_secret_is_sealed_and_kept(place: Place) {
    let store = place.open(Some(&key())).await.unwrap();
    let secret = Secret::new("client-secret-Xq7-visible-only-sealed");
    let record = put_acme(&store, &secret).await;
    let got = store.get(Kind::Connections, "acme").await.unwrap().unwrap();
    assert_eq!(got.secret.unwrap().expose(), secret.expose());
    // Saving without a secret keeps the one stored.
    store
        .put(
            Kind::Connections,
            "acme",
            &record,
            SecretWrite::Keep,
            By::Api,
        )
        .await
        .unwrap();
    let got = store.get(Kind::Connections, "acme").await.unwrap().unwrap();
    assert!(!format!("{got:?}").contains("Xq7"));
    assert_eq!(got.secret.unwrap().expose(), secret.expose());
    // Users and sync jobs have none.
    assert!(
        store
            .put(
                Kind::Users,
                "u",
                &json!({}),
                SecretWrite::Set(&secret),
                By::Api
            )
            .await
            .is_err()
    );
    store.close().await;
    let raw = place.raw();
    assert!(raw.contains("contoso"), "the raw read sees the records");
    assert!(
        !raw.contains("Xq7"),
        "the secret is readable in the database"
    );
}

async fn host_keys_are_made_once_and_sealed(place: Place) {
    let store = place.open(Some(&key())).await.unwrap();
    let first = HostKey {
        algorithm: "ssh-ed25519".into(),
        public_key: "ssh-ed25519 AAAAfirst".into(),
        private_key: Secret::new("-----BEGIN OPENSSH PRIVATE KEY-----\nFIRSTprivate\n"),
    };
    let second = HostKey {
        public_key: "ssh-ed25519 AAAAsecond".into(),
        private_key: Secret::new("SECONDprivate"),
        ..first.clone()
    };
    assert!(store.add_host_key(&first).await.unwrap());
    assert!(!store.add_host_key(&second).await.unwrap());
    let keys = store.host_keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].public_key, first.public_key);
    assert_eq!(keys[0].private_key.expose(), first.private_key.expose());
    store.close().await;
    let raw = place.raw();
    assert!(raw.contains("AAAAfirst"));
    assert!(!raw.contains("FIRSTprivate") && !raw.contains("SECONDprivate"));
}

async fn a_newer_schema_is_refused(place: Place) {
    let key = key();
    let store = place.open(Some(&key)).await.unwrap();
    store.close().await;
    place.execute("INSERT INTO spgate_schema (version, name, applied_at) VALUES (99, 'future', 0)");
    let refused = place.open(Some(&key)).await.unwrap_err();
    assert!(
        matches!(refused, Error::Newer { found: 99, .. }),
        "{refused:?}"
    );
    assert!(refused.to_string().contains("newer"), "{refused}");
}

async fn a_store_opens_only_with_the_key_that_sealed_it(place: Place) {
    let key = key();
    let store = place.open(Some(&key)).await.unwrap();
    store.close().await;
    let other = place.open(Some(&Sealer::generate())).await.unwrap_err();
    assert!(
        other.to_string().contains("not with the key given"),
        "{other}"
    );
    assert!(!other.to_string().contains(key.expose()));
    let bad = place
        .open(Some(&Secret::new("not-a-key")))
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("keygen"), "{bad}");
    let without = place.open(None).await;
    match place.pg_name {
        // PostgreSQL never makes a key of its own: instances must share one.
        Some(_) => {
            let e = without.unwrap_err();
            assert!(e.to_string().contains("secret_key"), "{e}");
        }
        // SQLite keeps its own key only for a store that has none yet.
        None => {
            let e = without.unwrap_err();
            assert!(e.to_string().contains("no key"), "{e}");
            assert!(!key_file(&place.state_dir()).exists());
        }
    }
}

/// Without `[state] secret_key`, a new SQLite store makes a key of its own (0600) and keeps
/// using it.
#[tokio::test]
async fn a_new_sqlite_store_keeps_a_key_of_its_own() {
    use std::os::unix::fs::PermissionsExt;
    let place = Place::sqlite();
    let store = place.open(None).await.unwrap();
    let secret = Secret::new("pw-Zk4");
    store
        .put(
            Kind::Connections,
            "c",
            &json!({}),
            SecretWrite::Set(&secret),
            By::Api,
        )
        .await
        .unwrap();
    let id = store.key_id().to_string();
    store.close().await;
    let file = key_file(&place.state_dir());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = place.open(None).await.unwrap();
    assert_eq!(again.key_id(), id);
    let got = again.get(Kind::Connections, "c").await.unwrap().unwrap();
    assert_eq!(got.secret.unwrap().expose(), "pw-Zk4");
    assert!(!place.raw().contains("Zk4"));
}

/// Several instances starting at once on one new PostgreSQL database: the schema is made once.
#[tokio::test]
async fn instances_starting_together_migrate_once() {
    let place = Place::postgres();
    let key = key();
    let opens = (0..4).map(|_| place.open(Some(&key)));
    for opened in futures_util::future::join_all(opens).await {
        opened.unwrap();
    }
    let name = place.pg_name.as_deref().unwrap();
    let rows = postgres::server().psql(name, "SELECT count(*) FROM spgate_schema");
    assert_eq!(rows.trim(), spgate::state::schema::VERSION.to_string());
}

fn grant(token: &str) -> Grant {
    Grant {
        refresh_token: Secret::new(token),
        client_id: "spgate-demo".into(),
        tenant: "contoso".into(),
        account: Some("ops@contoso.example".into()),
        updated_at: 1_790_000_000,
        access: None,
    }
}

async fn sign_ins_are_sealed_replaced_and_deleted(place: Place) {
    let key = key();
    let store = place.open(Some(&key)).await.unwrap();
    assert!(store.grant("acme").await.unwrap().is_none());
    store
        .put_grant("acme", &grant("rt-FIRST-9f2"))
        .await
        .unwrap();
    store
        .put_grant("acme", &grant("rt-SECOND-4c1"))
        .await
        .unwrap();
    let got = store.grant("acme").await.unwrap().unwrap();
    assert_eq!(got.refresh_token.expose(), "rt-SECOND-4c1");
    assert_eq!(got.account.as_deref(), Some("ops@contoso.example"));
    assert!(
        !format!("{got:?}").contains("SECOND"),
        "Debug shows the token"
    );
    store.close().await;
    let raw = place.raw();
    assert!(
        raw.contains("ops@contoso.example"),
        "the raw read sees the grant"
    );
    assert!(!raw.contains("rt-SECOND") && !raw.contains("rt-FIRST"));
    let store = place.open(Some(&key)).await.unwrap();
    store.delete_grant("acme").await.unwrap();
    assert!(store.grant("acme").await.unwrap().is_none());
}

async fn rekey_seals_every_secret_again(place: Place) {
    let old = key();
    let store = place.open(Some(&old)).await.unwrap();
    let secret = Secret::new("client-secret-REKEY-1");
    put_acme(&store, &secret).await;
    let host = HostKey {
        algorithm: "ssh-ed25519".into(),
        public_key: "ssh-ed25519 AAAArekey".into(),
        private_key: Secret::new("HOST-PRIVATE-REKEY"),
    };
    store.add_host_key(&host).await.unwrap();
    store.put_grant("acme", &grant("rt-REKEY-7")).await.unwrap();
    let new = key();
    assert_eq!(store.rekey(&new).await.unwrap(), 3);
    store.close().await;

    let refused = place.open(Some(&old)).await.unwrap_err();
    assert!(
        refused.to_string().contains("not with the key given"),
        "{refused}"
    );
    let store = place.open(Some(&new)).await.unwrap();
    let got = store.get(Kind::Connections, "acme").await.unwrap().unwrap();
    assert_eq!(got.secret.unwrap().expose(), secret.expose());
    assert_eq!(
        store.host_keys().await.unwrap()[0].private_key.expose(),
        "HOST-PRIVATE-REKEY"
    );
    let grant = store.grant("acme").await.unwrap().unwrap();
    assert_eq!(grant.refresh_token.expose(), "rt-REKEY-7");
    // A failed rekey (a value sealed with neither key) changes nothing.
    place.execute(
        "UPDATE grants SET refresh_token = 'v1.00000000.garbage' WHERE connection = 'acme'",
    );
    assert!(store.rekey(&key()).await.is_err());
    store.close().await;
    assert!(
        place.open(Some(&new)).await.is_ok(),
        "the failed rekey changed the key"
    );
    let raw = place.raw();
    for secret in ["REKEY-1", "HOST-PRIVATE", "rt-REKEY"] {
        assert!(!raw.contains(secret), "{secret} is readable");
    }
}

async fn the_audit_is_kept_queried_and_pruned(place: Place) {
    use spgate::state::audit::{Entry, Query};
    let store = place.open(Some(&key())).await.unwrap();
    let entry = |time_ms: i64, user: &str, action: &str, outcome: &str| {
        let event = format!(r#"{{"user":"{user}","action":"{action}","t":{time_ms}}}"#);
        Entry::new(time_ms, user, action, outcome, event)
    };
    store
        .append_audit(&[
            entry(1_000, "alice", "upload", "ok"),
            entry(2_000, "bob", "login", "failed"),
            entry(3_000, "alice", "login", "ok"),
            entry(4_000, "alice", "upload", "failed"),
        ])
        .await
        .unwrap();
    let times = |entries: Vec<Entry>| entries.iter().map(|e| e.time_ms).collect::<Vec<_>>();
    let all = Query {
        limit: 10,
        ..Query::default()
    };
    assert_eq!(
        times(store.audit(&all).await.unwrap()),
        [4_000, 3_000, 2_000, 1_000]
    );
    let alice_uploads = Query {
        user: Some("alice".into()),
        action: Some("upload".into()),
        ..all.clone()
    };
    assert_eq!(
        times(store.audit(&alice_uploads).await.unwrap()),
        [4_000, 1_000]
    );
    let failed = Query {
        outcome: Some("failed".into()),
        since_ms: Some(2_000),
        ..all.clone()
    };
    assert_eq!(times(store.audit(&failed).await.unwrap()), [4_000, 2_000]);
    let page = Query {
        before_ms: Some(3_000),
        limit: 1,
        ..all.clone()
    };
    let got = store.audit(&page).await.unwrap();
    assert_eq!(times(got.clone()), [2_000]);
    assert!(got[0].event.contains(r#""user":"bob""#));
    assert_eq!(store.prune_audit(2_500).await.unwrap(), 2);
    assert_eq!(times(store.audit(&all).await.unwrap()), [4_000, 3_000]);
    // Events of one millisecond are paged one by one, none skipped or repeated.
    store
        .append_audit(&[
            entry(5_000, "carol", "upload", "ok"),
            entry(5_000, "dave", "upload", "ok"),
            entry(5_000, "erin", "upload", "ok"),
        ])
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = Query {
            since_ms: Some(5_000),
            after,
            limit: 1,
            ..Query::default()
        };
        let got = store.audit(&page).await.unwrap();
        let Some(last) = got.last() else { break };
        seen.push(last.user.clone());
        after = spgate::state::audit::parse_cursor(&last.cursor());
    }
    seen.sort();
    assert_eq!(seen, ["carol", "dave", "erin"]);
}

fn raise<'a>(source: &'a str, message: &'a str, time_ms: i64) -> Raise<'a> {
    Raise {
        source,
        code: "invalid_client",
        message,
        action: "renew the secret",
        fingerprint: Some("fp"),
        time_ms,
    }
}

/// Two instances raising the same source at once leave one open alert, the first one held
/// (`Keep`) or superseded by a different one (`Replace`); each raise and clear moves the health
/// counter, which other instances follow; cleared alerts stay as history until pruned.
async fn one_alert_per_source_is_open_whoever_raises_it(place: Place) {
    let key = key();
    let one = place.open(Some(&key)).await.unwrap();
    let two = place.open(Some(&key)).await.unwrap();
    let before = one.counters().await.unwrap();
    let (first, second) = (raise("sp", "expired", 1_000), raise("sp", "revoked", 1_001));
    let (a, b) = tokio::join!(
        one.raise_alert(&first, WhenOpen::Keep),
        two.raise_alert(&second, WhenOpen::Keep),
    );
    let ((a, raised_a), (b, raised_b)) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b, "both answer the one open alert");
    assert!(raised_a ^ raised_b, "exactly one raised it");
    assert_eq!(one.open_alerts().await.unwrap().len(), 1);
    let after = two.counters().await.unwrap();
    assert_eq!(after.health, before.health + 1);
    assert_eq!(after.records, before.records, "records did not change");

    // Replace: the same alert again is kept, a different one supersedes it.
    let (same, raised) = one
        .raise_alert(&raise("sp", &a.message, 2_000), WhenOpen::Replace)
        .await
        .unwrap();
    assert!(!raised && same == a);
    let (newer, raised) = one
        .raise_alert(&raise("sp", "another cause", 3_000), WhenOpen::Replace)
        .await
        .unwrap();
    assert!(raised && newer.message == "another cause");
    one.raise_alert(&raise("sync:job", "skipped", 3_500), WhenOpen::Replace)
        .await
        .unwrap();

    let cleared = two
        .clear_alert("sp", "enabled again: saved", 4_000)
        .await
        .unwrap();
    assert_eq!(cleared.map(|c| c.id), Some(newer.id));
    assert!(
        two.clear_alert("sp", "again", 4_001)
            .await
            .unwrap()
            .is_none()
    );
    assert!(two.open_alert("sp").await.unwrap().is_none());
    let history = one.alert_history(Some("sp"), None, 10).await.unwrap();
    let whys: Vec<_> = history.iter().map(|h| h.cleared_why.as_deref()).collect();
    assert_eq!(
        whys,
        [
            Some("enabled again: saved"),
            Some("superseded by a newer alert")
        ]
    );
    assert_eq!(
        one.alert_history(None, Some(3_500), 10)
            .await
            .unwrap()
            .len(),
        2
    );

    // Pruning deletes what was cleared before the bound; open alerts stay however old.
    assert_eq!(one.prune_alerts(3_500).await.unwrap(), 1);
    assert_eq!(one.prune_alerts(10_000).await.unwrap(), 1);
    let left = one.alert_history(None, None, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].source, "sync:job");
}

/// The import of an earlier version's alert files happens once per store, whichever instance
/// does it first; an imported open alert whose source has one open already is kept as cleared.
async fn alerts_of_earlier_files_are_imported_once(place: Place) {
    let key = key();
    let store = place.open(Some(&key)).await.unwrap();
    store
        .raise_alert(&raise("sp", "open already", 5_000), WhenOpen::Keep)
        .await
        .unwrap();
    let old = |id: &str, source: &str, cleared: Option<i64>| Alert {
        id: id.into(),
        source: source.into(),
        code: "c".into(),
        message: format!("old {id}"),
        action: "a".into(),
        fingerprint: None,
        raised_ms: 1_000,
        cleared_ms: cleared,
        cleared_why: cleared.map(|_| "cleared: fixed".into()),
    };
    let files = [
        old("1", "other", Some(2_000)),
        old("2", "other", None),
        old("3", "sp", None),
    ];
    assert!(store.import_alerts(&files, "dir-a", 6_000).await.unwrap());
    let again = place.open(Some(&key)).await.unwrap();
    assert!(
        !again.import_alerts(&files, "dir-a", 7_000).await.unwrap(),
        "once per state directory"
    );
    let open: Vec<String> = store
        .open_alerts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.message)
        .collect();
    assert_eq!(open, ["old 2", "open already"]);
    let history = store.alert_history(None, None, 10).await.unwrap();
    assert_eq!(history.len(), 4, "{history:?}");
    let three = history.iter().find(|a| a.id == "3").unwrap();
    assert_eq!(three.cleared_ms, Some(6_000));

    // Another instance's directory is imported too; its open alert of a source open already
    // is kept as cleared.
    let theirs = [old("4", "other", None), old("5", "third", None)];
    assert!(again.import_alerts(&theirs, "dir-b", 8_000).await.unwrap());
    let open: Vec<String> = store
        .open_alerts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(open.len(), 3, "{open:?}");
    assert!(open.contains(&"2".to_string()) && open.contains(&"5".to_string()));
}

/// A streak counts failures in a row, starts again after its expiry, ends with a success;
/// listing shows streaks long enough and recent enough; clearing one user leaves the others.
async fn failed_logins_are_counted_expired_and_cleared(place: Place) {
    let store = place.open(Some(&key())).await.unwrap();
    let net = "10.0.0.1/32";
    for n in 1..=5 {
        assert_eq!(
            store
                .login_failed("alice", net, 1_000 * n, 0)
                .await
                .unwrap(),
            n
        );
    }
    // A failure after the streak expired starts a new one.
    assert_eq!(
        store
            .login_failed("alice", net, 400_000, 300_000)
            .await
            .unwrap(),
        1
    );
    for n in 2..=5 {
        store
            .login_failed("alice", net, 400_000 + n, 300_000)
            .await
            .unwrap();
    }
    for user in ["bob", "carol"] {
        for n in 0..5 {
            store
                .login_failed(user, net, 400_000 + n, 300_000)
                .await
                .unwrap();
        }
    }
    store
        .login_failed("dave", net, 400_000, 300_000)
        .await
        .unwrap();
    let locked: Vec<String> = store
        .lockouts(5, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.user)
        .collect();
    assert_eq!(locked, ["alice", "bob", "carol"]);
    assert!(
        store.lockouts(5, 500_000).await.unwrap().is_empty(),
        "all older"
    );

    store.login_succeeded("bob", net).await.unwrap();
    assert!(store.login_failures("bob", net).await.unwrap().is_none());
    let cleared = store.clear_lockouts(Some("alice")).await.unwrap();
    assert_eq!(cleared.len(), 1);
    assert_eq!(cleared[0].failures, 5);
    assert_eq!(
        store.clear_lockouts(None).await.unwrap().len(),
        2,
        "carol, dave"
    );
    assert_eq!(store.login_failed("eve", net, 1_000, 0).await.unwrap(), 1);
    assert_eq!(store.prune_lockouts(1_001).await.unwrap(), 1);
}

/// The sync jobs' state on both engines: a baseline of more rows than one statement takes,
/// snapshots with their links, runs numbered per job with their totals, problems, and the run
/// lock taken by one of two instances racing for it.
async fn sync_state_round_trips_and_one_instance_holds_a_job(place: Place) {
    use spgate::sync::store::{RemoteChange, Store as SyncStore};
    use spgate::sync::{Baseline, Counts, Outcome, Problem, RemoteItem};
    let key = key();
    let one = SyncStore::new(std::sync::Arc::new(place.open(Some(&key)).await.unwrap()));
    let two = SyncStore::new(std::sync::Arc::new(place.open(Some(&key)).await.unwrap()));
    let row = |n: usize| Baseline {
        path: format!("dir/file-{n:04}.txt"),
        is_dir: n == 0,
        remote_id: format!("id-{n}"),
        remote_etag: Some(format!("\"e{n}\"")),
        remote_ctag: None,
        remote_size: 5 << 32,
        remote_hash: Some("h".into()),
        remote_modified: 1_700_000_000,
        local_size: 5 << 32,
        local_modified: 1_700_000_001,
        local_hash: None,
    };
    let rows: Vec<Baseline> = (0..250).map(row).collect();
    one.put_baseline("j", &rows).await.unwrap();
    // Another case of a name replaces its row.
    let mut upper = row(7);
    upper.path = "DIR/FILE-0007.TXT".into();
    two.put_baseline("j", &[upper.clone()]).await.unwrap();
    let read = two.baseline("j").await.unwrap();
    assert_eq!(read.len(), 250);
    assert_eq!(read[0], upper, "ordered by path: upper case first");
    assert!(read[1].is_dir && read[1].remote_size == 5 << 32);
    two.remove_baseline(
        "j",
        &["dir/file-0001.txt".into(), "dir/file-0002.txt".into()],
    )
    .await
    .unwrap();
    assert_eq!(one.baseline("j").await.unwrap().len(), 248);

    let item = |id: &str, name: &str| RemoteItem {
        id: id.into(),
        parent_id: "root".into(),
        name: name.into(),
        is_dir: false,
        size: 1,
        etag: None,
        ctag: None,
        hash: None,
        modified: 5,
    };
    let mut full = RemoteChange {
        replace_all: true,
        upserts: (0..150).map(|n| item(&format!("i{n:03}"), "x")).collect(),
        removals: Vec::new(),
        drive_id: "d".into(),
        root_id: "root".into(),
        delta_link: Some("L1".into()),
        full_scan_at: Some(9),
    };
    one.apply_remote("j", &full).await.unwrap();
    full.replace_all = false;
    full.upserts = vec![item("i000", "renamed")];
    full.removals = vec!["i001".into(), "i002".into()];
    full.delta_link = Some("L2".into());
    full.full_scan_at = None;
    two.apply_remote("j", &full).await.unwrap();
    let snapshot = one.snapshot("j").await.unwrap();
    assert_eq!(
        (snapshot.items.len(), snapshot.full_scan_at),
        (148, Some(9))
    );
    assert_eq!(snapshot.delta_link.as_deref(), Some("L2"));
    assert_eq!(snapshot.items[0].name, "renamed");

    let first = one.start_run("j").await.unwrap();
    let counts = Counts {
        uploaded: 2,
        bytes_up: 3 << 33,
        ..Counts::default()
    };
    one.finish_run("j", first, &counts, Outcome::Success, None)
        .await
        .unwrap();
    assert_eq!(two.start_run("k").await.unwrap(), 1, "numbered per job");
    let second = two.start_run("j").await.unwrap();
    assert_eq!((first, second), (1, 2));
    assert_eq!(one.start_run("j").await.unwrap(), 3);
    let runs = one.runs("j", 10).await.unwrap();
    assert_eq!(runs[1].outcome, Some(Outcome::Interrupted));
    let (by_outcome, totals) = two.totals("j").await.unwrap();
    assert_eq!(
        by_outcome,
        [
            ("interrupted".into(), 1),
            ("running".into(), 1),
            ("success".into(), 1)
        ]
    );
    assert_eq!(totals.bytes_up, 3 << 33);
    assert!(one.last_success("j").await.unwrap().is_some());

    let problem = Problem {
        side: "remote",
        path: "bad:name".into(),
        reason: "invalid name".into(),
    };
    one.set_problems("j", std::slice::from_ref(&problem))
        .await
        .unwrap();
    two.set_problems("j", &[problem]).await.unwrap();
    assert_eq!(one.problems("j").await.unwrap().len(), 1);

    let stale = std::time::Duration::from_secs(60);
    let (a, b) = tokio::join!(
        one.try_lock("job", "instance-1", stale),
        two.try_lock("job", "instance-2", stale)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.is_none() ^ b.is_none(), "one holds the job: {a:?} {b:?}");
    let holder = one.lock_holder("job").await.unwrap().unwrap();
    assert!(two.unlock("job", &holder.owner).await.unwrap());
    assert!(
        one.try_lock("job", "instance-1", stale)
            .await
            .unwrap()
            .is_none()
    );
}
