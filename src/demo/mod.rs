//! `spgate demo`: the whole gateway on one machine, nothing to configure. The simulator runs
//! in-process with a seeded site; the gateway serves SFTP, plain FTP and the admin endpoint
//! (console, API, metrics) on loopback to a partner `demo` (password `demo`) with a SharePoint
//! mount and a local mount; the console's administrator is `admin` (password `demo`). Each
//! listener takes its default port, or a free one when that is taken (and says so). Everything
//! (configuration, state store, audit log, the simulator's content) lives in a temporary
//! directory removed at exit.
//!
//! - this file: the seed, the configuration and the order of the steps;
//! - [`ports`]: a listener's address, or the fallback when it is taken;
//! - [`banner`]: what the demo prints once every listener is bound.

mod banner;
mod ports;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::sim::{Seed, Sim};
use banner::{Banner, Bound};

/// The simulated tenant: the default world's app, site and library, with folders, a file and
/// the console's sign-in app and accounts.
const DEMO_SEED: &str = r#"
[[tenants]]
name = "contoso"
[[tenants.apps]]
client_id = "spgate-demo"
secret = "demo-secret"
[[tenants.apps]]
client_id = "spgate-console"
redirect_uris = ["http://127.0.0.1/console/oauth/callback", "http://localhost/console/oauth/callback"]
[[tenants.users]]
name = "partner.admin@contoso.onmicrosoft.com"
display_name = "Partner Admin"
password = "demo-password"
[[tenants.users]]
name = "svc.spgate@contoso.onmicrosoft.com"
display_name = "spgate service account"
password = "demo-password"
[[tenants.sites]]
hostname = "contoso.sharepoint.com"
name = "partners"
[[tenants.sites.drives]]
name = "Documents"
folders = ["Inbound", "Outbound"]
[[tenants.sites.drives.files]]
path = "Outbound/welcome.txt"
content = "Hello from the simulated SharePoint library.\n"
"#;

/// The password of the partner `demo` and of the administrator `admin`.
const PASSWORD: &str = "demo";

/// Why the demo could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sim(#[from] crate::sim::Error),
    #[error("the demo's configuration: {0}")]
    Config(#[from] crate::config::Error),
    #[error(transparent)]
    State(#[from] crate::state::Error),
    #[error("serving: {0}")]
    Serve(#[source] std::io::Error),
}

impl From<ports::Choice> for Bound {
    fn from(choice: ports::Choice) -> Bound {
        Bound {
            at: choice.listen,
            taken: choice.taken,
        }
    }
}

impl Error {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

/// Where the demo's listeners go (each falls back to a free port when its address is taken).
#[derive(Debug, Clone, Copy)]
pub struct Addresses {
    /// The simulated SharePoint (Graph API and identity platform).
    pub sim: SocketAddr,
    pub sftp: SocketAddr,
    /// FTP's control connection (passive data connections use `[ftp]`'s default range).
    pub ftp: SocketAddr,
    /// The admin endpoint: console, API, `/metrics`, `/readyz`.
    pub admin: SocketAddr,
}

/// Runs the demo until `shutdown` is cancelled.
pub async fn run(wanted: Addresses, shutdown: CancellationToken) -> Result<(), Error> {
    let temp = tempfile::Builder::new()
        .prefix("spgate-demo-")
        .tempdir()
        .map_err(Error::io("creating a temporary directory"))?;
    let dir = temp.path();
    let sim = ports::choose("the simulated SharePoint", wanted.sim)?;
    let graph = start_sim(sim.listen, dir, shutdown.clone()).await?;
    let [sftp, ftp, admin] = [
        ports::choose("SFTP", wanted.sftp)?,
        ports::choose("FTP", wanted.ftp)?,
        ports::choose("the admin endpoint", wanted.admin)?,
    ];
    let path = write_config(dir, graph, [sftp.listen, ftp.listen, admin.listen])?;
    let config = crate::config::load(&path)?;
    add_administrator(&config).await?;
    let banner = banner::Collector::new(Banner {
        dir: dir.to_path_buf(),
        config: path.clone(),
        audit: config.state.dir.join("audit.jsonl"),
        sim: Bound {
            at: graph,
            taken: sim.taken,
        },
        sftp: sftp.into(),
        ftp: ftp.into(),
        admin: admin.into(),
    });
    crate::serve::run_reporting(config, Some(path), shutdown, |protocol, address| {
        if let Some(text) = banner.bound(protocol, address) {
            print!("{text}");
            use std::io::Write;
            let _ = std::io::stdout().flush();
        }
    })
    .await
    .map_err(Error::Serve)
}

/// Starts the simulator on `listen` and answers where it listens.
async fn start_sim(
    listen: SocketAddr,
    dir: &Path,
    shutdown: CancellationToken,
) -> Result<SocketAddr, Error> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(Error::io(format!(
            "binding the simulated SharePoint on {listen}"
        )))?;
    let address = listener
        .local_addr()
        .map_err(Error::io("reading the simulator's address"))?;
    let seed: Seed = toml::from_str(DEMO_SEED).expect("the demo's seed is valid");
    let sim = Sim::build(&seed, dir, format!("http://{address}"), &dir.join("sim"))?;
    let sim = Arc::new(sim);
    tokio::spawn(async move {
        crate::sim::run(listener, sim, async move { shutdown.cancelled().await }).await
    });
    Ok(address)
}

/// Writes the demo's configuration (and the local mount's folder) into `dir`; answers the
/// file's path, which `spgate ... --config` takes while the demo runs.
fn write_config(
    dir: &Path,
    graph: SocketAddr,
    [sftp, ftp, admin]: [SocketAddr; 3],
) -> Result<PathBuf, Error> {
    let local = dir.join("local");
    std::fs::create_dir_all(&local).map_err(Error::io("creating the local mount's folder"))?;
    std::fs::write(
        local.join("readme.txt"),
        "Files here live on the gateway host (a local mount).\n",
    )
    .map_err(Error::io("writing the local mount's readme"))?;
    let text = format!(
        r#"# spgate demo: written by `spgate demo`, removed when it stops.
[state]
dir = "state"
[sftp]
listen = "{sftp}"
[ftp]
listen = "{ftp}"
[admin]
listen = "{admin}"
[audit]
target = "file"
[[connections]]
name = "demo"
tenant = "contoso"
client_id = "spgate-demo"
client_secret = "demo-secret"
site = "https://contoso.sharepoint.com/sites/partners"
authority = "http://{graph}"
graph_url = "http://{graph}"
[[users]]
name = "demo"
password_hash = {hash}
[[users.mounts]]
path = "/"
connection = "demo"
remote = "/"
permissions = ["*"]
[[users.mounts]]
path = "/local"
local = "local"
permissions = ["*"]
"#,
        hash = quoted(&crate::users::hash_password(PASSWORD)),
    );
    let path = dir.join("spgate.toml");
    std::fs::write(&path, text).map_err(Error::io("writing the demo's configuration"))?;
    Ok(path)
}

/// Makes the console's administrator `admin`.
async fn add_administrator(config: &crate::config::Config) -> Result<(), Error> {
    let store = crate::state::Store::of(&config.state).await?;
    let added = store
        .put_admin("admin", &crate::users::hash_password(PASSWORD))
        .await;
    store.close().await;
    added?;
    Ok(())
}

/// `text` as a TOML string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configuration_is_valid() {
        let dir = tempfile::tempdir().unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let graph = "127.0.0.1:8080".parse().unwrap();
        let path = write_config(dir.path(), graph, [any; 3]).unwrap();
        let config = crate::config::load_with_env(&path, &Default::default()).unwrap();
        assert_eq!(config.state.dir, dir.path().join("state"));
        assert!(config.sftp.is_some() && config.ftp.is_some() && config.admin.is_some());
        assert_eq!(config.connections[0].graph_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn the_seed_is_valid() {
        let seed: Seed = toml::from_str(DEMO_SEED).unwrap();
        assert_eq!(seed.tenants[0].apps[0].client_id, "spgate-demo");
    }
}
