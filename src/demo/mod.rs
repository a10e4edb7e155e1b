//! `spgate demo`: the simulator in-process with a seeded site, a demo user (password `demo`)
//! with a SharePoint mount and a local mount, SFTP on 127.0.0.1:2222 and the web console on a
//! loopback port (administrator `admin`, password `demo`); it prints how to connect. Everything lives in a temporary directory removed at exit.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::sim::{Seed, Sim};

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

/// Runs the demo until `shutdown` is cancelled.
pub async fn run(sftp: SocketAddr, shutdown: CancellationToken) -> std::io::Result<()> {
    let dir = tempfile::Builder::new().prefix("spgate-demo-").tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let graph = format!("http://{}", listener.local_addr()?);
    let seed: Seed = toml::from_str(DEMO_SEED).map_err(std::io::Error::other)?;
    let sim = Arc::new(
        Sim::build(&seed, dir.path(), graph.clone(), &dir.path().join("sim"))
            .map_err(std::io::Error::other)?,
    );
    let stop_sim = shutdown.clone();
    tokio::spawn(async move {
        crate::sim::run(listener, sim, async move { stop_sim.cancelled().await }).await
    });

    let local = dir.path().join("local");
    std::fs::create_dir_all(&local)?;
    std::fs::write(
        local.join("readme.txt"),
        "Files here live on the gateway host (a local mount).\n",
    )?;
    let config_text = format!(
        r#"
[state]
dir = "{state}"
[sftp]
listen = "{sftp}"
[admin]
listen = "127.0.0.1:0"
[[connections]]
name = "demo"
tenant = "contoso"
client_id = "spgate-demo"
client_secret = "demo-secret"
site = "https://contoso.sharepoint.com/sites/partners"
authority = "{graph}"
graph_url = "{graph}"
[[users]]
name = "demo"
password_hash = "{hash}"
[[users.mounts]]
path = "/"
connection = "demo"
remote = "/"
permissions = ["*"]
[[users.mounts]]
path = "/local"
local = "{local}"
permissions = ["*"]
"#,
        state = dir.path().join("state").display(),
        hash = crate::users::hash_password("demo"),
        local = local.display(),
    );
    let config = crate::config::parse_str(&config_text).map_err(std::io::Error::other)?;
    let store = crate::state::Store::of(&config.state)
        .await
        .map_err(std::io::Error::other)?;
    store
        .put_admin("admin", &crate::users::hash_password("demo"))
        .await
        .map_err(std::io::Error::other)?;
    store.close().await;
    println!(
        "spgate demo: a simulated SharePoint library at {graph} (Graph API; tenant contoso, app spgate-demo / demo-secret)"
    );
    crate::serve::run_reporting(config, None, shutdown, |protocol, address| {
        if protocol == "admin" {
            println!("web console:   http://{address}/console/      (admin / demo; \"Sign in with Microsoft\" as svc.spgate@contoso.onmicrosoft.com / demo-password)");
            return;
        }
        println!("connect with:  sftp -P {} demo@{}      (password: demo)", address.port(), address.ip());
        println!("/ is the SharePoint library 'Documents' of site partners; /local is a folder on this host. Ctrl-C stops.");
    })
    .await
}
