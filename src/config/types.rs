//! The validated configuration: what the rest of spgate reads.
//!
//! Every value here has been checked and has its default applied; consumers never see an
//! `Option` that merely means "not written in the file". Sections that switch a service on
//! (`[sftp]`, `[ftp]`, `[admin]`) are `Option`s: `None` means the service is off.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::{Permissions, Secret};

/// The whole validated gateway configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, to assemble it again with the state store's records.
    pub source: super::Source,
    /// `[state]`: where the gateway keeps its own files.
    pub state: State,
    /// `[sftp]`: the SFTP listener, `None` when off.
    pub sftp: Option<Sftp>,
    /// `[ftp]`: the FTP/FTPS listener, `None` when off.
    pub ftp: Option<Ftp>,
    /// `[admin]`: the admin HTTP listener, `None` when off.
    pub admin: Option<Admin>,
    /// `[audit]`: where the transfer audit log goes.
    pub audit: Audit,
    /// `[audit] retention`: how long the state store keeps audit events (default 30 days).
    pub audit_retention: std::time::Duration,
    /// `[limits]`: how many connections, sessions, channels and handles clients may hold.
    pub limits: ClientLimits,
    /// `[[connections]]`: SharePoint sites the gateway talks to, names unique.
    pub connections: Vec<Connection>,
    /// `[[users]]`: the accounts that may log in, names unique.
    pub users: Vec<User>,
    /// `[[syncs]]`: mirrored-folder jobs, names unique.
    pub syncs: Vec<SyncJob>,
    /// `[[notify]]`: where administrators are told of alerts, names unique.
    pub notify: Vec<Notify>,
}

impl Config {
    /// The connection called `name`.
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// The user called `name` (exact match).
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// A few lines saying what this configuration serves; no secrets.
    pub fn summary(&self) -> String {
        let listener = |name: &str, addr: Option<String>| match addr {
            Some(addr) => format!("{name}: {addr}"),
            None => format!("{name}: off"),
        };
        let mut lines = vec![
            format!("state dir: {}", self.state.dir.display()),
            listener("sftp", self.sftp.as_ref().map(|s| s.listen.to_string())),
            listener("ftp", self.ftp.as_ref().map(|f| f.listen.to_string())),
            listener("admin", self.admin.as_ref().map(|a| a.listen.to_string())),
        ];
        for c in &self.connections {
            lines.push(format!(
                "connection {}: {} drive {:?} ({})",
                c.name,
                c.site.url,
                c.drive,
                c.credential.kind()
            ));
        }
        for u in &self.users {
            let state = if u.enabled { "" } else { " (disabled)" };
            lines.push(format!(
                "user {}{state}: {} mount(s)",
                u.name,
                u.mounts.len()
            ));
        }
        for s in &self.syncs {
            lines.push(format!(
                "sync {}: {:?} every {:?}",
                s.name, s.direction, s.interval
            ));
        }
        lines.join("\n")
    }
}

/// `[state]`.
#[derive(Debug, Clone)]
pub struct State {
    /// Directory for host keys, tokens, alerts and the sync database.
    pub dir: PathBuf,
    /// The state store (default: SQLite at `<dir>/spgate.db`).
    pub database: Database,
    /// The master key secrets are sealed with in the store (see `crate::state`).
    pub secret_key: Option<Secret>,
}

/// `[state] database`: where the state store is.
#[derive(Debug, Clone)]
pub enum Database {
    /// Embedded SQLite, in this file.
    Sqlite(PathBuf),
    /// PostgreSQL at `url` (`postgres://user@host:port/db?sslmode=...`), with
    /// `[state] database_password`.
    Postgres {
        url: String,
        password: Option<Secret>,
    },
}

impl Database {
    /// The default: SQLite in `<dir>/spgate.db`.
    pub fn in_dir(dir: &std::path::Path) -> Database {
        Database::Sqlite(dir.join("spgate.db"))
    }
}

impl State {
    /// Whether `other` names the same store with the same key (a reload cannot change them).
    pub fn same_store(&self, other: &State) -> bool {
        let key = |s: &State| s.secret_key.as_ref().map(|k| k.expose().to_string());
        let database = |s: &State| match &s.database {
            Database::Sqlite(path) => (path.display().to_string(), None),
            Database::Postgres { url, password } => (
                url.clone(),
                password.as_ref().map(|p| p.expose().to_string()),
            ),
        };
        self.dir == other.dir && database(self) == database(other) && key(self) == key(other)
    }
}

/// `[sftp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sftp {
    /// Address the SSH/SFTP server binds.
    pub listen: SocketAddr,
    /// Expect a PROXY protocol header (v1 or v2) on each connection.
    pub proxy_protocol: bool,
    /// Connections not logged in this long after they opened are closed (OpenSSH's
    /// `LoginGraceTime`).
    pub login_grace_time: Duration,
}

/// `[ftp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ftp {
    /// Address of the control connection listener.
    pub listen: SocketAddr,
    /// Ports used for passive-mode data connections.
    pub passive_ports: RangeInclusive<u16>,
    /// Host name or IP announced in PASV replies (for NAT); `None` = the local address.
    pub passive_host: Option<String>,
    /// Idle sessions are closed after this long.
    pub idle_timeout: Duration,
    /// Control connections not logged in this long after they opened are closed, whatever
    /// they send meanwhile (`NOOP` does not extend it). Not applied in PROXY protocol mode.
    pub login_grace_time: Duration,
    /// Text of the 220 greeting.
    pub greeting: String,
    /// Certificate and key for explicit FTPS (`AUTH TLS`); `None` = no FTPS.
    pub tls: Option<CertKey>,
    /// Who must use FTPS.
    pub tls_required: TlsRequired,
    /// PROXY protocol mode: control AND passive data connections arrive through the balancer on
    /// `listen`, each with a v1 header; `Some(the balancer's control port)`, which tells the two
    /// kinds apart (a header's destination port).
    pub proxy_protocol: Option<u16>,
}

/// A PEM certificate (chain) and its private key, as file paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKey {
    /// PEM certificate (chain) file.
    pub cert: PathBuf,
    /// PEM private key file.
    pub key: PathBuf,
}

/// `ftp.tls_required`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsRequired {
    /// FTPS is optional for everyone.
    None,
    /// Every user must use FTPS.
    All,
    /// Each user's `ftp_tls_required` decides (see [`User::ftp_tls_required`]).
    PerUser,
}

/// `[limits]`: what clients may hold at once, for both protocols. Over a connection limit a
/// connection is refused at once; `0` in `max_sessions_per_user` means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimits {
    /// Open client connections in all (default 1000).
    pub max_connections: usize,
    /// Open connections from one address (an IPv6 /64 counts as one; default 20).
    pub max_per_address: usize,
    /// Connections not logged in yet (default 100); when full, the oldest of them is closed to
    /// make room.
    pub max_unauthenticated: usize,
    /// Sessions of one user at once (default 0: no limit).
    pub max_sessions_per_user: usize,
    /// SFTP session channels on one SSH connection (default 4).
    pub max_channels_per_connection: usize,
    /// Open SFTP file and directory handles of one login, over all its channels (default 256).
    pub max_handles_per_login: usize,
}

impl Default for ClientLimits {
    fn default() -> ClientLimits {
        ClientLimits {
            max_connections: 1000,
            max_per_address: 20,
            max_unauthenticated: 100,
            max_sessions_per_user: 0,
            max_channels_per_connection: 4,
            max_handles_per_login: 256,
        }
    }
}

/// `[audit]`: one JSON line per login, upload, download, delete and rename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audit {
    /// No audit log.
    Off,
    /// Standard output.
    Stdout,
    /// `<state dir>/audit.jsonl`, rotated at `max_bytes` (`audit.jsonl.1` is the newest old
    /// file), keeping `keep` old files.
    File { max_bytes: u64, keep: u32 },
}

/// `[admin]`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// Address the admin HTTP server binds.
    pub listen: SocketAddr,
    /// Bearer token required by the admin API; `None` only on loopback addresses.
    pub token: Option<Secret>,
    /// `readiness = "full"` (default): `/readyz` also fails while a connection is disabled or a
    /// sync job's last run failed; `"listeners"`: only until the listeners are bound.
    pub ready_needs_health: bool,
    /// `tls`: HTTPS with this certificate and key (the console's cookie is then Secure).
    pub tls: Option<CertKey>,
    /// `public_url`: the address browsers reach the endpoint at (behind a proxy), e.g.
    /// `https://spgate.example.com`; the console's sign-in redirect URI is made from it.
    /// Without it, from the request's `Host`.
    pub public_url: Option<String>,
}

/// One `[[connections]]` entry: a SharePoint document library and how to sign in to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Connection {
    /// Unique name, `[A-Za-z0-9_-]+`; mounts and syncs refer to it.
    pub name: String,
    /// Entra ID tenant (GUID or domain).
    pub tenant: String,
    /// Application (client) id of the app registration.
    pub client_id: String,
    /// The SharePoint site.
    pub site: Site,
    /// Document library name (default `Documents`).
    pub drive: String,
    /// Identity platform base URL, no trailing slash.
    pub authority: String,
    /// Microsoft Graph base URL, no trailing slash.
    pub graph_url: String,
    /// How the gateway obtains tokens.
    pub credential: Credential,
    /// How hard the gateway may drive this connection.
    pub limits: Limits,
}

/// Per-connection request limits and transfer sizes.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Requests in flight at once (default 8).
    pub max_concurrent_requests: usize,
    /// Optional cap on requests started per second.
    pub requests_per_second: Option<f64>,
    /// Upload-session fragment size in bytes: a multiple of 320 KiB (default 10 MiB).
    pub upload_chunk_bytes: u64,
    /// Ranged GETs in flight at once for one file being read sequentially (default 4; 1: one
    /// streaming GET per file).
    pub download_streams: usize,
    /// Queued uploads (`upload_commit = "queued"`) sent at once (default 4).
    pub upload_workers: usize,
    /// Bytes per ranged GET when `download_streams` > 1 (default 8 MiB). Files under two
    /// blocks are read with one streaming GET.
    pub download_block_bytes: u64,
    /// Attempts after a transient failure (5xx, network) before giving up (default 6).
    pub max_retries: u32,
    /// Longest wait for a response or the next piece of a body (default 60 s).
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent_requests: 8,
            requests_per_second: None,
            upload_chunk_bytes: 10 * 1024 * 1024,
            download_streams: 4,
            upload_workers: 4,
            download_block_bytes: 8 * 1024 * 1024,
            max_retries: 6,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// A SharePoint site URL split into what Graph's `/sites/{host}:{path}` addressing needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// The URL as written (trailing slash removed).
    pub url: String,
    /// Host name, lower-cased, with `:port` if the URL had one.
    pub host: String,
    /// Server-relative path: `/sites/NAME` or `/teams/NAME`.
    pub path: String,
}

/// A connection's credential: exactly one per connection.
#[derive(Debug, Clone, PartialEq)]
pub enum Credential {
    /// OAuth client credentials with a client secret.
    ClientSecret(Secret),
    /// OAuth client credentials with a certificate (signed client assertion).
    Certificate {
        /// The PEM certificate.
        cert: Pem,
        /// Its PEM private key.
        key: Pem,
    },
    /// Delegated sign-in with the device code flow (token kept in the state dir).
    DeviceCode,
}

impl Credential {
    /// The kind, in words: `app-only, client secret`, `app-only, certificate`, `delegated`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::ClientSecret(_) => "app-only, client secret",
            Credential::Certificate { .. } => "app-only, certificate",
            Credential::DeviceCode => "delegated",
        }
    }
}

/// A PEM document: a file (read at each use, so a renewed file is taken up), or the text
/// itself, as the console and the API keep a certificate and its key in the store. Printed
/// without the text.
#[derive(Debug, Clone, PartialEq)]
pub enum Pem {
    File(PathBuf),
    Text(Secret),
}

impl Pem {
    /// Whether a configuration value is PEM text rather than a file's path.
    pub fn is_text(value: &str) -> bool {
        value.trim_start().starts_with("-----BEGIN ")
    }

    /// The document's bytes.
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            Pem::File(path) => std::fs::read(path),
            Pem::Text(text) => Ok(text.expose().as_bytes().to_vec()),
        }
    }

    /// The key that signs spgate's client assertions, read from private key `pem`, or why it
    /// cannot: the Microsoft identity platform verifies client assertions signed RS256 or PS256
    /// only, so an EC or Ed25519 key, however valid, would be refused at every sign-in. Never
    /// quotes the key.
    pub fn signing_key(pem: &[u8]) -> Result<jsonwebtoken::EncodingKey, String> {
        use jsonwebtoken::EncodingKey;
        if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            return Ok(key);
        }
        let kind = if EncodingKey::from_ec_pem(pem).is_ok() {
            "an EC key"
        } else if EncodingKey::from_ed_pem(pem).is_ok() {
            "an Ed25519 key"
        } else {
            return Err(
                "not a PEM private key that can be read (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
                    .into(),
            );
        };
        Err(format!(
            "{kind}: Microsoft Entra ID accepts certificate credentials signed with RSA keys only \
             (RS256/PS256); make an RSA key (openssl req -x509 -newkey rsa:2048 ...) or generate \
             one in the console"
        ))
    }
}

/// One `[[users]]` entry.
#[derive(Debug, Clone)]
pub struct User {
    /// Unique login name.
    pub name: String,
    /// Argon2 PHC string (`$argon2id$...`); `None` = no password login.
    pub password_hash: Option<String>,
    /// Public keys accepted for SSH public-key login.
    pub authorized_keys: Vec<AuthorizedKey>,
    /// Networks the user may connect from; empty = anywhere.
    pub allow_from: Vec<IpNet>,
    /// A disabled user cannot log in.
    pub enabled: bool,
    /// Whether this user must use FTPS, after applying `ftp.tls_required`.
    pub ftp_tls_required: bool,
    /// The user's virtual file system, in file order.
    pub mounts: Vec<Mount>,
}

/// One OpenSSH public key line: `<algorithm> <base64> [comment]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizedKey {
    /// Key type token, e.g. `ssh-ed25519`.
    pub algorithm: String,
    /// The base64 key blob (its embedded type matches `algorithm`).
    pub base64: String,
    /// Trailing comment, possibly empty.
    pub comment: String,
}

/// One `[[users.mounts]]` entry: a virtual directory backed by SharePoint or a local directory.
#[derive(Debug, Clone)]
pub struct Mount {
    /// Normalised absolute virtual path (`/`, `/inbox`, `/a/b`), unique per user.
    pub path: String,
    /// What backs the path.
    pub target: MountTarget,
    /// What the user may do below the path.
    pub permissions: Permissions,
}

/// The storage behind a [`Mount`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountTarget {
    /// A folder in a connection's document library.
    SharePoint {
        /// Name of a defined [`Connection`].
        connection: String,
        /// Normalised absolute folder path inside the library (`/` = library root).
        remote: String,
        /// What happens to names SharePoint refuses.
        names: Names,
        /// When a client's close of an upload is answered.
        commit: UploadCommit,
    },
    /// A directory on the gateway host.
    Local {
        /// The directory.
        dir: PathBuf,
    },
}

/// One `[[syncs]]` entry: a local folder mirrored with a SharePoint folder.
#[derive(Debug, Clone)]
pub struct SyncJob {
    /// Unique job name.
    pub name: String,
    /// Local directory.
    pub local: PathBuf,
    /// Name of a defined [`Connection`].
    pub connection: String,
    /// Normalised absolute folder path inside the connection's library.
    pub remote: String,
    /// What happens to local names SharePoint refuses.
    pub names: Names,
    /// Which way files flow.
    pub direction: Direction,
    /// What happens to a source file after a verified copy (push/pull only).
    pub after_copy: AfterCopy,
    /// Time between scheduled runs.
    pub interval: Duration,
    /// How two-way conflicts are resolved.
    pub conflict: Conflict,
    /// Per-run deletion guard.
    pub max_delete: MaxDelete,
    /// Glob patterns of paths (relative to the job root) never synced.
    pub exclude: Vec<String>,
    /// A disabled job is never run by the scheduler.
    pub enabled: bool,
}

/// `names` of a SharePoint mount or a sync job: what happens to a name SharePoint refuses
/// (`a:b.txt`, `con.txt`, a trailing dot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Names {
    /// Stored under a look-alike name (`a：b.txt`) and shown to clients as written (the
    /// mapping is [`crate::graph::lookalike`]).
    #[default]
    Encode,
    /// Refused, with the rule it breaks.
    Refuse,
}

/// `upload_commit` of a SharePoint mount: when the client hears that an upload is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UploadCommit {
    /// Once the file is durably in the upload queue; SharePoint gets it in the background.
    #[default]
    Queued,
    /// Once SharePoint has stored it (the client's close waits for the whole upload).
    Close,
    /// Waits up to this long for SharePoint's verdict, then answers as `Queued`.
    CloseWithin(Duration),
}

/// `syncs[].direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Local -> SharePoint.
    Push,
    /// SharePoint -> local.
    Pull,
    /// Both ways.
    TwoWay,
}

/// `syncs[].after_copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterCopy {
    /// Leave the source file in place.
    Keep,
    /// Delete the source file once the copy is verified.
    Delete,
}

/// `syncs[].conflict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Keep both versions; the older one gets a conflict suffix.
    KeepBoth,
    /// The local version wins.
    PreferLocal,
    /// The SharePoint version wins.
    PreferRemote,
    /// The version with the newer modification time wins.
    Newer,
}

/// `syncs[].max_delete`: a run that would delete more than this aborts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxDelete {
    /// Maximum share of the synced files deleted in one run, 0-100 (default 50).
    pub percent: u8,
    /// Maximum number of deletions in one run; `None` = no count limit.
    pub count: Option<u64>,
}

/// `[[notify]]`: one target of alert notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct Notify {
    /// Unique; default `TYPE-N` (`webhook-1`, `email-2`: the type and the target's position).
    pub name: String,
    /// What it is sent (default: every kind), sorted.
    pub events: Vec<crate::events::Kind>,
    /// A daily summary at this time (UTC), if set.
    pub digest: Option<chrono::NaiveTime>,
    /// Tries per notification before it is given up (default 8).
    pub attempts: u32,
    /// How long one try may take (default 10 s).
    pub timeout: Duration,
    pub channel: NotifyChannel,
}

/// How a [`Notify`] target is reached.
#[derive(Debug, Clone, PartialEq)]
pub enum NotifyChannel {
    Webhook(Webhook),
    Email(Smtp),
}

/// `type = "webhook"`: an HTTP(S) endpoint that is POSTed JSON.
#[derive(Clone, PartialEq)]
pub struct Webhook {
    pub url: reqwest::Url,
    /// Signs each body (HMAC-SHA256), if set.
    pub secret: Option<Secret>,
}

/// Shows the URL's scheme and host only: its path or query may hold a token.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field(
                "url",
                &format_args!(
                    "{}://{}/...",
                    self.url.scheme(),
                    self.url.host_str().unwrap_or_default()
                ),
            )
            .field("secret", &self.secret)
            .finish()
    }
}

/// `type = "email"`: an SMTP server and the message's addresses.
#[derive(Debug, Clone, PartialEq)]
pub struct Smtp {
    pub host: String,
    /// Default 587 with STARTTLS, 25 without.
    pub port: u16,
    /// STARTTLS required (default); false: plain SMTP (a local relay or test sink).
    pub starttls: bool,
    /// A PEM file of certificates trusted for the server besides the public roots (a relay
    /// with a certificate of the organisation's own CA); checked to hold one when loaded.
    pub ca: Option<std::path::PathBuf>,
    /// `username` and `password`, if the server wants a login.
    pub login: Option<(String, Secret)>,
    pub from: lettre::message::Mailbox,
    pub to: Vec<lettre::message::Mailbox>,
}
