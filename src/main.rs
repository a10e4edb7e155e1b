//! The `spgate` command: parses arguments and calls into the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use spgate::logging;

#[derive(Parser)]
#[command(
    name = "spgate",
    version,
    about = "SFTP and FTP/FTPS gateway in front of Microsoft SharePoint"
)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = logging::Format::Text)]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: SFTP (and later FTP) over the configured users, mounts and connections.
    Serve {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Try spgate at once: a simulated SharePoint site, partner demo/demo over SFTP and FTP,
    /// the web console (admin/demo), metrics and the audit log; it prints how to use each. An
    /// address that is taken is replaced by a free port (and the demo says so).
    Demo {
        /// Where the demo's SFTP server listens.
        #[arg(long, default_value = "127.0.0.1:2222")]
        sftp: SocketAddr,
        /// Where the demo's FTP server listens (plain FTP; passive ports 50000-50100).
        #[arg(long, default_value = "127.0.0.1:2121")]
        ftp: SocketAddr,
        /// Where the demo's admin endpoint listens (web console, API, /metrics, /readyz).
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: SocketAddr,
        /// Where the simulated SharePoint (Graph API) listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        sim: SocketAddr,
    },
    /// Read a password (twice, without echo) and print its argon2id hash for `password_hash`.
    Passwd,
    /// Print a new random master key for `[state] secret_key` (base64 of 32 bytes).
    Keygen,
    /// Seal every secret in the state store again with a new master key (spgate stopped): a
    /// new one in `<state dir>/secret.key` when `[state] secret_key` is not set, else --to.
    Rekey {
        #[command(flatten)]
        config: ConfigArg,
        /// The new key: `env:VAR`, `file:PATH` or the key itself (`spgate keygen` prints one).
        #[arg(long, value_name = "KEY")]
        to: Option<String>,
    },
    /// Copy the SQLite state store to FILE, consistently, while spgate runs or not (a
    /// PostgreSQL store: pg_dump).
    Backup {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Replace the SQLite state store with the backup FILE (spgate stopped); the store it
    /// replaces is kept beside it.
    Restore {
        file: PathBuf,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Run the offline Microsoft Graph (SharePoint) simulator.
    Sim {
        /// Address to listen on (port 0 picks a free port; the bound address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Base of the absolute URLs the simulator hands out (when behind a proxy).
        #[arg(long)]
        public_url: Option<String>,
        /// Seed file (TOML) with tenants, apps, sites, drives and initial content.
        #[arg(long)]
        seed: Option<PathBuf>,
        /// Directory for file content (default: a temporary directory).
        #[arg(long)]
        data: Option<PathBuf>,
        /// Simulated distance: lan (none), realistic (80 ms, 40 MB/s), far (200 ms, 10 MB/s).
        #[arg(long, value_enum)]
        profile: Option<spgate::sim::Profile>,
        /// Added round-trip time, e.g. `80ms` (replaces the profile's).
        #[arg(long, value_parser = humantime::parse_duration)]
        latency: Option<Duration>,
        /// Each round trip varies uniformly by up to this much either way (never below zero).
        #[arg(long, value_parser = humantime::parse_duration)]
        jitter: Option<Duration>,
        /// Bandwidth per connection and direction in decimal MB/s, e.g. `40` or `2.5`; 0 is
        /// unlimited (replaces the profile's).
        #[arg(long, value_name = "MB/s")]
        bandwidth: Option<spgate::sim::Bandwidth>,
    },
    /// Check a configuration, then each connection step by step (token, site, library) and the
    /// folders of its mounts and sync jobs (exists, lists, a write probe where they write),
    /// with what to do about each failure; exits 1 on any. Changes no state (but a delegated
    /// sign-in's rotated refresh token).
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Only validate the file; contact nothing.
        #[arg(long)]
        offline: bool,
    },
    /// Sign in a device-code connection (auth = "device_code") and save its refresh token.
    Connect {
        /// The connection's name.
        name: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Connections: their state (with no action), their records; add, change, remove one, or
    /// enable a disabled one again.
    Connections {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: Option<ConnectionsAction>,
    },
    /// List open alerts (connections disabled by failed sign-ins, sync jobs that need help).
    Alerts {
        #[command(flatten)]
        config: ConfigArg,
    },
    /// The upload queue (`upload_commit = "queued"`): list it, retry or discard a quarantined
    /// upload.
    Queue {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: QueueAction,
    },
    /// Logins locked after repeated failures, as the state store keeps them for every server
    /// using it: list them, or clear them (in force at once, running servers included).
    Lockouts {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: Option<LockoutsAction>,
    },
    /// The instances serving from the state store (every `spgate serve` on it): id, host,
    /// version, state (up, stopped, or gone: no heartbeat for 30 s), sessions, queued uploads
    /// and the sync jobs each runs.
    Cluster {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Alert notifications (`[[notify]]`): send a test notification to every target, or to the
    /// one named, at once (no retries); exits 1 if one was not delivered.
    Notify {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: NotifyAction,
    },
    /// The web console's administrators (kept in the state store): add, passwd, list, remove.
    Admins {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: AdminsAction,
    },
    /// Users kept in the state store: list, show, add, replace, enable, disable, delete. Works
    /// with `spgate serve` running (it puts changes in force within a second) or stopped.
    Users {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: Option<UsersAction>,
    },
    /// Mirrored folders: sync jobs' records (add, change, remove), run one now, or show every
    /// job's state.
    #[command(alias = "sync")]
    Syncs {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        action: SyncAction,
    },
}

#[derive(Subcommand)]
enum NotifyAction {
    /// Send a test notification to each target (or the one named) and say what became of it.
    Test {
        /// Only this target.
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum QueueAction {
    /// Every queued upload: waiting, being uploaded, or quarantined (with the reason).
    List,
    /// Put a quarantined upload back in line (after fixing what refused it).
    Retry { id: i64 },
    /// Drop a quarantined upload and its file.
    Discard { id: i64 },
}

#[derive(Subcommand)]
enum UsersAction {
    /// Every user, with who manages it (the configuration file, or the API and this command).
    List {
        /// The users as JSON, as the admin API shows them.
        #[arg(long)]
        json: bool,
    },
    /// One user as JSON (without its password hash).
    Show { name: String },
    /// Add a user with one mount: a SharePoint folder (--connection, --remote) or a local one
    /// (--local); or, with --json FILE (- for stdin), the user as the configuration file's
    /// `[[users]]` would declare it, in JSON.
    Add {
        name: String,
        #[command(flatten)]
        user: UserArgs,
    },
    /// Replace a user with the record in --json FILE (- for stdin); its password stays unless
    /// the record gives `password` or `password_hash`.
    Set {
        name: String,
        #[arg(long, value_name = "FILE")]
        json: PathBuf,
    },
    /// Let a disabled user log in again.
    Enable { name: String },
    /// Refuse a user's logins and close its open sessions.
    Disable { name: String },
    /// Give a user a new password: asked twice on a terminal, else read from stdin.
    Passwd { name: String },
    /// Delete a user and close its open sessions.
    #[command(alias = "remove")]
    Delete { name: String },
}

#[derive(clap::Args)]
struct UserArgs {
    /// The SharePoint connection of the mount.
    #[arg(long, conflicts_with_all = ["local", "json"])]
    connection: Option<String>,
    /// The folder in the connection's library (default /).
    #[arg(long, requires = "connection")]
    remote: Option<String>,
    /// A folder on this host instead of SharePoint.
    #[arg(long, conflicts_with = "json")]
    local: Option<String>,
    /// Where the mount appears to the user (default /).
    #[arg(long, conflicts_with = "json")]
    path: Option<String>,
    /// A permission (repeat it; default all: *).
    #[arg(long = "permission", conflicts_with = "json")]
    permissions: Vec<String>,
    /// Set a password: asked twice on a terminal, else read from the first line of stdin.
    #[arg(long)]
    password: bool,
    /// A file of OpenSSH public keys (one per line) the user may log in with.
    #[arg(long, value_name = "FILE", conflicts_with = "json")]
    keys: Option<PathBuf>,
    /// An address or network (CIDR) the user may log in from (repeat it; default anywhere).
    #[arg(long, conflicts_with = "json")]
    allow_from: Vec<String>,
    /// The whole user as JSON (- for stdin).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
}

impl UserArgs {
    /// The record these arguments describe.
    fn record(self) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        if let Some(file) = &self.json {
            let mut record = read_json(file)?;
            if self.password {
                record.insert(
                    "password_hash".into(),
                    spgate::users::prompt_and_hash()?.into(),
                );
            }
            return Ok(record);
        }
        let authorized_keys = match &self.keys {
            Some(file) => std::fs::read_to_string(file)
                .with_context(|| format!("{}", file.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect(),
            None => Vec::new(),
        };
        let password_hash = match self.password {
            true => Some(spgate::users::prompt_and_hash()?),
            false => None,
        };
        Ok(spgate::manage::NewUser {
            connection: self.connection,
            remote: self.remote,
            local: self.local.map(absolute).transpose()?,
            path: self.path,
            permissions: self.permissions,
            password_hash,
            authorized_keys,
            allow_from: self.allow_from,
        }
        .record())
    }
}

/// `spgate syncs run` and `status`, over the file's jobs and the store's.
async fn run_or_status_of(config: &ConfigArg, action: SyncAction) -> anyhow::Result<bool> {
    let config = config.load_with_store().await?;
    let out = &mut std::io::stdout();
    match action {
        SyncAction::Run {
            job,
            dry_run,
            force,
            resync,
        } => {
            // Interrupted (Ctrl-C), the job waits for its next due time: a server does not
            // go on at once with a run asked for by hand, perhaps with --force.
            let options = spgate::sync::run::Options {
                dry_run,
                force,
                resync,
                hand_over: false,
            };
            let stop = shutdown_token();
            Ok(spgate::sync::command::run_job(&config, &job, options, &stop, out).await?)
        }
        SyncAction::Status => {
            spgate::sync::command::status(&config, out).await?;
            Ok(true)
        }
        _ => unreachable!("record actions are handled by manage"),
    }
}

/// A change to record `name` of `section`: its `fields`, made anew (`create`) or replaced.
fn change(
    section: spgate::config::Section,
    name: String,
    fields: serde_json::Map<String, serde_json::Value>,
    create: bool,
) -> spgate::session::control::Change {
    spgate::session::control::Change {
        section,
        name,
        fields,
        create,
    }
}

/// A JSON object from `file` (`-`: stdin).
fn read_json(file: &std::path::Path) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("{}", file.display()))?
    };
    match serde_json::from_str(&text).with_context(|| format!("{}", file.display()))? {
        serde_json::Value::Object(record) => Ok(record),
        _ => anyhow::bail!("{}: expected a JSON object", file.display()),
    }
}

#[derive(Subcommand)]
enum AdminsAction {
    /// Add an administrator: the password is asked twice on a terminal, else read from the
    /// first line of stdin.
    Add { name: String },
    /// Give an administrator a new password (its console sessions end).
    Passwd { name: String },
    /// Every administrator.
    List,
    /// Remove an administrator (its console sessions end).
    #[command(alias = "delete")]
    Remove { name: String },
}

#[derive(Subcommand)]
enum ClusterAction {
    /// List the instances and their state.
    Status,
}

#[derive(Subcommand)]
enum LockoutsAction {
    /// End the locks of one user (every address), or of everyone with --all.
    Clear {
        #[arg(required_unless_present = "all")]
        user: Option<String>,
        #[arg(long, conflicts_with = "user")]
        all: bool,
    },
}

#[derive(Subcommand)]
enum SyncAction {
    /// Run one job in the foreground, with progress and a summary.
    Run {
        /// The job's name.
        job: String,
        /// Print the plan; change nothing, not even the sync state.
        #[arg(long)]
        dry_run: bool,
        /// Allow this run past the max-delete and empty-folder guards.
        #[arg(long)]
        force: bool,
        /// Forget the job's baseline and rebuild it copy-only (deletes nothing).
        #[arg(long)]
        resync: bool,
    },
    /// Each job's last run, next run and open problems.
    Status,
    /// Every job's record, with who manages it.
    List {
        /// The jobs as JSON, as the admin API shows them.
        #[arg(long)]
        json: bool,
    },
    /// One job as JSON, as the admin API shows it.
    Show { name: String },
    /// Add a job from flags, or with --json FILE (- for stdin) as the configuration file's
    /// `[[syncs]]` would declare it, in JSON.
    Add {
        name: String,
        #[command(flatten)]
        job: Box<SyncArgs>,
    },
    /// Replace a job with the record in --json FILE (- for stdin).
    Set {
        name: String,
        #[arg(long, value_name = "FILE")]
        json: PathBuf,
    },
    /// Schedule a disabled job again.
    Enable { name: String },
    /// Stop scheduling a job (its state stays).
    Disable { name: String },
    /// Delete a job.
    #[command(alias = "delete")]
    Remove { name: String },
}

#[derive(clap::Args)]
struct ConfigArg {
    /// The configuration file (TOML); SPGATE_SECTION__KEY environment variables override keys.
    #[arg(long, short, env = "SPGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
}

impl ConfigArg {
    fn load(&self) -> anyhow::Result<spgate::config::Config> {
        let path = self
            .config
            .as_ref()
            .context("give the configuration with --config FILE (or SPGATE_CONFIG)")?;
        spgate::config::load(path).with_context(|| format!("{}", path.display()))
    }

    /// [`ConfigArg::load_with_store`] changing nothing: the store is read only if it exists,
    /// and left as it was (`spgate check`).
    async fn load_unchanged(&self) -> anyhow::Result<spgate::config::Config> {
        let file = self.load()?;
        let Some(store) = spgate::state::Store::open_existing(&file.state).await? else {
            return Ok(file);
        };
        let config = spgate::session::control::assemble_for_commands(&store, &file).await;
        store.close().await;
        config.map_err(anyhow::Error::msg)
    }

    /// [`ConfigArg::load`] with the users, connections and sync jobs made through the API and
    /// the CLI, from the state store.
    async fn load_with_store(&self) -> anyhow::Result<spgate::config::Config> {
        let file = self.load()?;
        let store = spgate::manage::open(&file).await?;
        let config = spgate::session::control::assemble_for_commands(&store, &file).await;
        store.close().await;
        config.map_err(anyhow::Error::msg)
    }
}

#[derive(Subcommand)]
enum ConnectionsAction {
    /// Every connection's record, with who manages it.
    List {
        /// The connections as JSON, as the admin API shows them.
        #[arg(long)]
        json: bool,
    },
    /// One connection as JSON, as the admin API shows it (its secret never).
    Show { name: String },
    /// Add a connection from flags, or with --json FILE (- for stdin) as the configuration
    /// file's `[[connections]]` would declare it, in JSON.
    Add {
        name: String,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Replace a connection with the record in --json FILE (- for stdin); its client secret
    /// stays unless the record gives `client_secret`. Saving re-enables it.
    Set {
        name: String,
        #[arg(long, value_name = "FILE")]
        json: PathBuf,
    },
    /// Enable a disabled connection again and clear its alert.
    Enable { name: String },
    /// Delete a connection no user or sync job uses.
    #[command(alias = "delete")]
    Remove { name: String },
}

/// A connection's keys as flags; the names are the configuration file's.
#[derive(clap::Args, serde::Serialize)]
struct ConnectionArgs {
    /// The Entra ID tenant (GUID or domain).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// The app registration's application (client) id.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    /// The SharePoint site's URL.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<String>,
    /// The document library (default Documents).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    drive: Option<String>,
    /// The identity platform's base URL (default Microsoft's).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    authority: Option<String>,
    /// Microsoft Graph's base URL (default Microsoft's).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    graph_url: Option<String>,
    /// Sign in as the app with a client secret: asked on a terminal, else read from stdin.
    #[arg(long, conflicts_with_all = ["certificate", "device_code"])]
    #[serde(skip)]
    client_secret: bool,
    /// Sign in as the app with a certificate: its PEM file (with --key).
    #[arg(long, value_name = "FILE", requires = "key", conflicts_with_all = ["json", "device_code"])]
    #[serde(skip)]
    certificate: Option<String>,
    /// The certificate's private key (PEM file).
    #[arg(long, value_name = "FILE", requires = "certificate")]
    #[serde(skip)]
    key: Option<String>,
    /// Sign in as a user (`spgate connect NAME` afterwards).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip)]
    device_code: bool,
    /// The whole connection as JSON (- for stdin).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    json: Option<PathBuf>,
}

impl ConnectionArgs {
    /// The record these arguments describe.
    fn record(self) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        let mut record = match &self.json {
            Some(file) => read_json(file)?,
            None => as_record(&self)?,
        };
        if let (Some(cert), Some(key)) = (&self.certificate, &self.key) {
            record.insert(
                "certificate".into(),
                serde_json::json!({ "cert": cert, "key": key }),
            );
        }
        if self.device_code {
            record.insert("auth".into(), "device_code".into());
        }
        if self.client_secret {
            let secret = spgate::users::prompt_secret("Client secret: ")?;
            record.insert("client_secret".into(), secret.into());
        }
        Ok(record)
    }
}

/// A sync job's keys as flags; the names are the configuration file's.
#[derive(clap::Args, serde::Serialize)]
struct SyncArgs {
    /// The folder on this host.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    local: Option<String>,
    /// The SharePoint connection.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<String>,
    /// The folder in the connection's library (default /).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    remote: Option<String>,
    /// push, pull or two-way.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    direction: Option<String>,
    /// What happens to the source after a verified copy: keep (default) or delete.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    after_copy: Option<String>,
    /// How often it runs, e.g. 5m (default 15m).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    /// Two-way conflicts: keep-both (default), newer, prefer-local or prefer-remote.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    conflict: Option<String>,
    /// Names SharePoint refuses: encode (default) or refuse.
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Option::is_none")]
    names: Option<String>,
    /// A glob of paths left out (repeat it).
    #[arg(long, conflicts_with = "json")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exclude: Vec<String>,
    /// The whole job as JSON (- for stdin).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    json: Option<PathBuf>,
}

impl SyncArgs {
    /// The record these arguments describe.
    fn record(mut self) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
        self.local = self.local.map(absolute).transpose()?;
        match &self.json {
            Some(file) => read_json(file),
            None => as_record(&self),
        }
    }
}

/// `path` made absolute against the working directory (records have no file to start from).
fn absolute(path: String) -> anyhow::Result<String> {
    let path = std::path::absolute(&path).with_context(|| path.clone())?;
    path.to_str()
        .map(str::to_string)
        .context("the path is not UTF-8")
}

/// The flags `args` serialises to, as a record.
fn as_record(
    args: &impl serde::Serialize,
) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    match serde_json::to_value(args)? {
        serde_json::Value::Object(record) => Ok(record),
        _ => anyhow::bail!("flags serialise to a JSON object"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            logging::init(cli.log_format, "info,libunftp=warn");
            spgate::serve::run(config.load()?, config.config.clone(), shutdown_token())
                .await
                .context("spgate serve")?;
        }
        Command::Demo {
            sftp,
            ftp,
            admin,
            sim,
        } => {
            logging::init(cli.log_format, "info,libunftp=warn");
            let addresses = spgate::demo::Addresses {
                sim,
                sftp,
                ftp,
                admin,
            };
            spgate::demo::run(addresses, shutdown_token())
                .await
                .context("spgate demo")?;
        }
        Command::Passwd => {
            println!("{}", spgate::users::prompt_and_hash()?);
        }
        Command::Keygen => {
            println!("{}", spgate::state::seal::Sealer::generate().expose());
        }
        Command::Rekey { config, to } => {
            logging::init(cli.log_format, "warn");
            let to = to
                .map(|raw| spgate::config::Secret::from_reference("--to", &raw))
                .transpose()?;
            if !spgate::manage::rekey(&config.load()?, to, &mut std::io::stdout()).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Backup { file, config } => {
            logging::init(cli.log_format, "warn");
            spgate::manage::backup(&config.load()?, &file, &mut std::io::stdout()).await?;
        }
        Command::Restore { file, config } => {
            logging::init(cli.log_format, "warn");
            spgate::manage::restore(&config.load()?, &file, &mut std::io::stdout()).await?;
        }
        Command::Sim {
            listen,
            public_url,
            seed,
            data,
            profile,
            latency,
            jitter,
            bandwidth,
        } => {
            logging::init(cli.log_format, "info");
            let link = profile
                .map(spgate::sim::Profile::link)
                .unwrap_or_default()
                .with(latency, jitter, bandwidth);
            let options = spgate::sim::Options {
                listen,
                public_url,
                seed,
                data,
                link,
            };
            spgate::sim::serve(options, shutdown_signal())
                .await
                .context("spgate sim")?;
        }
        Command::Check { config, offline } => {
            logging::init(cli.log_format, "warn");
            let config = match offline {
                true => config.load()?,
                false => config.load_unchanged().await?,
            };
            println!("configuration OK\n{}", config.summary());
            if !offline && !spgate::check::check(&config, &mut std::io::stdout()).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Connect { name, config } => {
            logging::init(cli.log_format, "warn");
            // The file's connections and those made through the API or the CLI alike.
            let config = config.load_with_store().await?;
            if !spgate::operate::connect(&config, &name, &mut std::io::stdout()).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Connections { config, action } => {
            logging::init(cli.log_format, "warn");
            let out = &mut std::io::stdout();
            use spgate::manage;
            let kind = spgate::config::Section::Connections;
            let done = match action {
                None => {
                    let config = config.load_with_store().await?;
                    spgate::operate::connections(&config, out).await?;
                    true
                }
                Some(ConnectionsAction::Enable { name }) => {
                    let config = config.load_with_store().await?;
                    spgate::operate::enable(&config, &name, out).await?
                }
                Some(ConnectionsAction::List { json }) => {
                    manage::list(&config.load()?, kind, json, out).await?
                }
                Some(ConnectionsAction::Show { name }) => {
                    manage::show(&config.load()?, kind, &name, out).await?
                }
                Some(ConnectionsAction::Add { name, connection }) => {
                    let change = change(kind, name, connection.record()?, true);
                    manage::save(&config.load()?, change, out).await?
                }
                Some(ConnectionsAction::Set { name, json }) => {
                    let change = change(kind, name, read_json(&json)?, false);
                    manage::save(&config.load()?, change, out).await?
                }
                Some(ConnectionsAction::Remove { name }) => {
                    manage::delete(&config.load()?, kind, &name, out).await?
                }
            };
            if !done {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Syncs { config, action } => {
            logging::init(cli.log_format, "warn");
            use spgate::manage;
            let kind = spgate::config::Section::Syncs;
            let out = &mut std::io::stdout();
            let done = match action {
                SyncAction::List { json } => manage::list(&config.load()?, kind, json, out).await?,
                SyncAction::Show { name } => {
                    manage::show(&config.load()?, kind, &name, out).await?
                }
                SyncAction::Add { name, job } => {
                    let change = change(kind, name, job.record()?, true);
                    manage::save(&config.load()?, change, out).await?
                }
                SyncAction::Set { name, json } => {
                    let change = change(kind, name, read_json(&json)?, false);
                    manage::save(&config.load()?, change, out).await?
                }
                SyncAction::Enable { name } => {
                    manage::set_enabled(&config.load()?, kind, &name, true, out).await?
                }
                SyncAction::Disable { name } => {
                    manage::set_enabled(&config.load()?, kind, &name, false, out).await?
                }
                SyncAction::Remove { name } => {
                    manage::delete(&config.load()?, kind, &name, out).await?
                }
                run_or_status => run_or_status_of(&config, run_or_status).await?,
            };
            if !done {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Queue { config, action } => {
            logging::init(cli.log_format, "warn");
            let config = config.load()?;
            let mut out = std::io::stdout();
            let done = match action {
                QueueAction::List => spgate::operate::queue_list(&config, &mut out).await?,
                QueueAction::Retry { id } => {
                    spgate::operate::queue_retry(&config, id, &mut out).await?
                }
                QueueAction::Discard { id } => {
                    spgate::operate::queue_discard(&config, id, &mut out).await?
                }
            };
            if !done {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Notify {
            config,
            action: NotifyAction::Test { name },
        } => {
            logging::init(cli.log_format, "warn");
            let config = config.load()?;
            let out = &mut std::io::stdout();
            if !spgate::notify::test(&config.notify, name.as_deref(), out).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Lockouts { config, action } => {
            logging::init(cli.log_format, "warn");
            let config = config.load()?;
            let clear = action
                .as_ref()
                .map(|LockoutsAction::Clear { user, .. }| user.as_deref());
            if !spgate::operate::lockouts(&config, clear, &mut std::io::stdout()).await? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Cluster {
            config,
            action: ClusterAction::Status,
        } => {
            logging::init(cli.log_format, "warn");
            let config = config.load()?;
            let store = spgate::connections::store::Paths::of(&config)
                .store()
                .await?;
            spgate::cluster::print(&store, &mut std::io::stdout()).await?;
        }
        Command::Users { config, action } => {
            logging::init(cli.log_format, "warn");
            let config = config.load()?;
            let out = &mut std::io::stdout();
            use spgate::manage;
            let kind = spgate::config::Section::Users;
            let done = match action.unwrap_or(UsersAction::List { json: false }) {
                UsersAction::List { json } => manage::list(&config, kind, json, out).await?,
                UsersAction::Show { name } => manage::show(&config, kind, &name, out).await?,
                UsersAction::Add { name, user } => {
                    let change = change(kind, name, user.record()?, true);
                    manage::save(&config, change, out).await?
                }
                UsersAction::Set { name, json } => {
                    let change = change(kind, name, read_json(&json)?, false);
                    manage::save(&config, change, out).await?
                }
                UsersAction::Enable { name } => {
                    manage::set_enabled(&config, kind, &name, true, out).await?
                }
                UsersAction::Disable { name } => {
                    manage::set_enabled(&config, kind, &name, false, out).await?
                }
                UsersAction::Passwd { name } => {
                    let hash = spgate::users::prompt_and_hash()?;
                    manage::set_password(&config, &name, hash, out).await?
                }
                UsersAction::Delete { name } => manage::delete(&config, kind, &name, out).await?,
            };
            if !done {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Admins { config, action } => {
            logging::init(cli.log_format, "warn");
            let config = config.load()?;
            let out = &mut std::io::stdout();
            use spgate::manage;
            let done = match action {
                AdminsAction::Add { name } => {
                    let hash = spgate::users::prompt_and_hash()?;
                    manage::put_admin(&config, &name, &hash, true, out).await?
                }
                AdminsAction::Passwd { name } => {
                    let hash = spgate::users::prompt_and_hash()?;
                    manage::put_admin(&config, &name, &hash, false, out).await?
                }
                AdminsAction::List => manage::list_admins(&config, out).await?,
                AdminsAction::Remove { name } => manage::remove_admin(&config, &name, out).await?,
            };
            if !done {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Alerts { config } => {
            logging::init(cli.log_format, "warn");
            spgate::operate::alerts(&config.load()?, &mut std::io::stdout()).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
/// A token cancelled on SIGINT or SIGTERM.
fn shutdown_token() -> tokio_util::sync::CancellationToken {
    let token = tokio_util::sync::CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down; letting transfers finish");
        cancel.cancel();
    });
    token
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
