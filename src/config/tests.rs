//! Tests of the whole pipeline: TOML text (+ environment) -> [`Config`] or a keyed [`Error`].
//! This file covers valid configurations and defaults; `tests/` holds the error and environment
//! cases.

use std::time::Duration;

use super::*;

mod bad_values;
mod environment;
mod notify;

const STATE: &str = "[state]\ndir = \"/var/lib/spgate\"\n";

const CONNECTION: &str = r#"
[[connections]]
name = "sp"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
site = "https://contoso.sharepoint.com/sites/partners"
client_secret = "literal-secret-value"
"#;

const KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHKAaBHWMnL+He+bTAO8GGjhzVTELUqQyBuelVdMgVoZ alice@laptop";

const FULL: &str = r#"
[state]
dir = "/var/lib/spgate"

[sftp]
listen = "127.0.0.1:2022"

[ftp]
listen = "[::]:21"
passive_ports = [40000, 40010]
passive_host = "ftp.example.com"
idle_timeout = "1h30m"
login_grace_time = "30s"
greeting = "hello"
tls = { cert = "/etc/spgate/ftp.crt", key = "/etc/spgate/ftp.key" }
tls_required = "per-user"
proxy_protocol = true

[admin]
listen = "127.0.0.1:8080"

[[connections]]
name = "secret"
tenant = "contoso.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
site = "https://contoso.sharepoint.com/sites/partners"
client_secret = "literal-secret-value"

[[connections]]
name = "cert"
tenant = "00000000-0000-0000-0000-000000000001"
client_id = "app"
site = "https://contoso.sharepoint.com/teams/ops"
drive = "Shared Files"
authority = "https://login.microsoftonline.us/"
graph_url = "https://graph.microsoft.us"
certificate = { cert = "/etc/spgate/app.crt", key = "/etc/spgate/app.key" }

[[connections]]
name = "device"
tenant = "contoso.com"
client_id = "app"
site = "https://contoso.sharepoint.com/sites/x"
auth = "device_code"

[[users]]
name = "alice"
password_hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"
authorized_keys = ["KEY"]
allow_from = ["10.0.0.0/8", "192.0.2.7"]
ftp_tls_required = true

[[users.mounts]]
path = "/"
connection = "secret"
remote = "Partners/In"
permissions = "*"
names = "refuse"

[[users.mounts]]
path = "/local/"
local = "/srv/drop"
permissions = ["list", "read", "write"]

[[users.mounts]]
path = "/ro"
connection = "cert"

[[users]]
name = "bob"
enabled = false

[[syncs]]
name = "outbox"
local = "/srv/outbox"
connection = "device"
remote = "/Outbox"
names = "refuse"
direction = "push"
after_copy = "delete"
interval = "30s"
conflict = "newer"
max_delete = { percent = 10, count = 100 }
exclude = ["*.tmp", "~$*"]
enabled = false
"#;

fn full() -> String {
    FULL.replace("KEY", KEY)
}

/// The error message for `toml`.
fn error(toml: &str) -> String {
    parse_str(toml)
        .expect_err("config should be rejected")
        .to_string()
}

#[test]
fn full_config_parses() {
    let config = parse_str(&full()).unwrap();
    assert_eq!(config.state.dir, Path::new("/var/lib/spgate"));
    assert_eq!(
        config.sftp.as_ref().unwrap().listen.to_string(),
        "127.0.0.1:2022"
    );

    let ftp = config.ftp.as_ref().unwrap();
    assert_eq!(ftp.listen.to_string(), "[::]:21");
    assert_eq!(ftp.passive_ports, 40000..=40010);
    assert_eq!(ftp.passive_host.as_deref(), Some("ftp.example.com"));
    assert_eq!(ftp.idle_timeout, Duration::from_secs(5400));
    assert_eq!(ftp.login_grace_time, Duration::from_secs(30));
    assert_eq!(ftp.greeting, "hello");
    assert_eq!(
        ftp.tls.as_ref().unwrap().key,
        Path::new("/etc/spgate/ftp.key")
    );
    assert_eq!(ftp.tls_required, TlsRequired::PerUser);
    assert_eq!(ftp.proxy_protocol, Some(21));

    let admin = config.admin.as_ref().unwrap();
    assert_eq!(admin.listen.to_string(), "127.0.0.1:8080");
    assert!(admin.token.is_none());

    let [secret, cert, device] = &config.connections[..] else {
        panic!("three connections")
    };
    assert!(
        matches!(&secret.credential, Credential::ClientSecret(s) if s.expose() == "literal-secret-value")
    );
    assert_eq!(secret.drive, "Documents");
    assert_eq!(secret.authority, "https://login.microsoftonline.com");
    assert_eq!(secret.graph_url, "https://graph.microsoft.com");
    assert_eq!(secret.site.host, "contoso.sharepoint.com");
    assert_eq!(secret.site.path, "/sites/partners");
    assert!(
        matches!(&cert.credential, Credential::Certificate { cert: Pem::File(cert), .. } if cert == Path::new("/etc/spgate/app.crt"))
    );
    assert_eq!(cert.drive, "Shared Files");
    assert_eq!(cert.authority, "https://login.microsoftonline.us");
    assert_eq!(cert.site.path, "/teams/ops");
    assert!(matches!(device.credential, Credential::DeviceCode));

    let alice = config.user("alice").unwrap();
    assert!(alice.enabled && alice.ftp_tls_required);
    assert_eq!(alice.authorized_keys[0].algorithm, "ssh-ed25519");
    assert_eq!(alice.allow_from[1].to_string(), "192.0.2.7/32");
    let [root, local, ro] = &alice.mounts[..] else {
        panic!("three mounts")
    };
    assert_eq!(root.path, "/");
    assert_eq!(
        root.target,
        MountTarget::SharePoint {
            connection: "secret".into(),
            remote: "/Partners/In".into(),
            names: Names::Refuse,
            commit: UploadCommit::Queued,
        }
    );
    assert_eq!(root.permissions, Permissions::all());
    assert_eq!(local.path, "/local");
    assert_eq!(
        local.target,
        MountTarget::Local {
            dir: "/srv/drop".into()
        }
    );
    assert!(local.permissions.allows(Permission::Write));
    assert!(!local.permissions.allows(Permission::Delete));
    assert_eq!(format!("{:?}", ro.permissions), r#"{"list", "read"}"#);
    assert!(matches!(
        &ro.target,
        MountTarget::SharePoint { remote, names: Names::Encode, .. } if remote == "/"
    ));
    assert!(!config.user("bob").unwrap().enabled);

    let sync = &config.syncs[0];
    assert_eq!(sync.names, Names::Refuse);
    assert_eq!(sync.direction, Direction::Push);
    assert_eq!(sync.after_copy, AfterCopy::Delete);
    assert_eq!(sync.interval, Duration::from_secs(30));
    assert_eq!(sync.conflict, Conflict::Newer);
    assert_eq!(
        sync.max_delete,
        MaxDelete {
            percent: 10,
            count: Some(100)
        }
    );
    assert_eq!(sync.exclude, ["*.tmp", "~$*"]);
    assert!(!sync.enabled);
}

#[test]
fn minimal_config_turns_everything_off() {
    let config = parse_str(STATE).unwrap();
    assert!(config.sftp.is_none() && config.ftp.is_none() && config.admin.is_none());
    assert!(config.connections.is_empty() && config.users.is_empty() && config.syncs.is_empty());
}

#[test]
fn empty_sections_take_defaults() {
    let config = parse_str(&format!("{STATE}[sftp]\n[ftp]\n[admin]\n")).unwrap();
    assert_eq!(config.sftp.unwrap().listen.to_string(), "0.0.0.0:2222");
    let ftp = config.ftp.unwrap();
    assert_eq!(ftp.listen.to_string(), "0.0.0.0:2121");
    assert_eq!(ftp.passive_ports, 50000..=50100);
    assert_eq!(ftp.idle_timeout, Duration::from_secs(600));
    assert_eq!(ftp.login_grace_time, Duration::from_secs(120));
    assert_eq!(ftp.tls_required, TlsRequired::None);
    assert!(ftp.tls.is_none() && ftp.proxy_protocol.is_none());
    let admin = config
        .admin
        .expect("an [admin] section turns the endpoint on");
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9090");
    assert!(admin.token.is_none() && admin.ready_needs_health);

    let off = parse_str(&format!(
        "{STATE}[sftp]\nenabled = false\n[ftp]\nenabled = false\n"
    ))
    .unwrap();
    assert!(off.sftp.is_none() && off.ftp.is_none());
}

#[test]
fn sync_defaults() {
    let toml = format!(
        "{STATE}{CONNECTION}[[syncs]]\nname = \"s\"\nlocal = \"/l\"\nconnection = \"sp\"\nremote = \"r\"\ndirection = \"two-way\"\n"
    );
    let sync = &parse_str(&toml).unwrap().syncs[0];
    assert_eq!(sync.remote, "/r");
    assert_eq!(sync.names, Names::Encode);
    assert_eq!(sync.after_copy, AfterCopy::Keep);
    assert_eq!(sync.interval, Duration::from_secs(300));
    assert_eq!(sync.conflict, Conflict::KeepBoth);
    assert_eq!(
        sync.max_delete,
        MaxDelete {
            percent: 50,
            count: None
        }
    );
    assert!(sync.enabled && sync.exclude.is_empty());
}

#[test]
fn download_limits_default_and_parse() {
    let config = parse_str(&format!("{STATE}{CONNECTION}")).unwrap();
    let limits = &config.connections[0].limits;
    assert_eq!(limits.download_streams, 4);
    assert_eq!(limits.download_block_bytes, 8 << 20);
    let config = parse_str(&format!(
        "{STATE}{CONNECTION}download_streams = 1\ndownload_block_mib = 2\n"
    ))
    .unwrap();
    let limits = &config.connections[0].limits;
    assert_eq!(limits.download_streams, 1);
    assert_eq!(limits.download_block_bytes, 2 << 20);
}

#[test]
fn the_state_store_defaults_to_sqlite_in_the_state_dir() {
    let config = parse_str(STATE).unwrap();
    let Database::Sqlite(path) = &config.state.database else {
        panic!("{:?}", config.state.database)
    };
    assert_eq!(path, std::path::Path::new("/var/lib/spgate/spgate.db"));
    assert!(config.state.secret_key.is_none());
    let config = parse_str(&format!(
        "{STATE}database = \"postgres://spgate@db.internal:5432/spgate?sslmode=require\"\n\
         database_password = \"pg-pw-literal\"\nsecret_key = \"key-literal\"\n"
    ))
    .unwrap();
    let Database::Postgres { url, password } = &config.state.database else {
        panic!("{:?}", config.state.database)
    };
    assert_eq!(
        url,
        "postgres://spgate@db.internal:5432/spgate?sslmode=require"
    );
    assert_eq!(password.as_ref().unwrap().expose(), "pg-pw-literal");
    assert_eq!(
        config.state.secret_key.as_ref().unwrap().expose(),
        "key-literal"
    );
    let shown = format!("{:?}", config.state);
    assert!(
        !shown.contains("pg-pw-literal") && !shown.contains("key-literal"),
        "{shown}"
    );
    let other = parse_str(&format!(
        "{STATE}database = \"sqlite:/srv/spgate/state.db\"\n"
    ))
    .unwrap();
    assert!(!config.state.same_store(&other.state));
    assert!(config.state.same_store(&config.state.clone()));
    // A password in the URL would end up wherever the URL is shown.
    let message = error(&format!(
        "{STATE}database = \"postgres://spgate:hunter2@db/spgate\"\n"
    ));
    assert!(message.contains("database_password"), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let message = error(&format!("{STATE}database = \"mysql://db/spgate\"\n"));
    assert!(message.contains("state.database"), "{message}");
}

#[test]
fn limits_default_and_parse() {
    let config = parse_str(STATE).unwrap();
    assert_eq!(config.limits, ClientLimits::default());
    assert_eq!(config.limits.max_connections, 1000);
    assert_eq!(config.limits.max_per_address, 20);
    assert_eq!(config.limits.max_unauthenticated, 100);
    assert_eq!(config.limits.max_sessions_per_user, 0);
    let config = parse_str(&format!(
        "{STATE}[limits]\nmax_sessions_per_user = 2\nmax_handles_per_login = 10\n"
    ))
    .unwrap();
    assert_eq!(config.limits.max_sessions_per_user, 2);
    assert_eq!(config.limits.max_handles_per_login, 10);
    assert_eq!(config.limits.max_channels_per_connection, 4);
}

#[test]
fn example_file_parses() {
    let config = parse_str(include_str!("../../config/example.toml")).unwrap();
    assert_eq!(config.connections.len(), 3);
    assert!(config.users.iter().any(|u| u.mounts.len() >= 2));
    assert_eq!(config.syncs.len(), 1);
    assert_eq!(config.notify.len(), 2);
}
