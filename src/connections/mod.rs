//! SharePoint connections: each `[[connections]]` entry with its own credentials, token cache,
//! health (enabled, or disabled with an alert), Graph client and resolved library.
//!
//! - [`auth`]: access tokens and the device-code sign-in; [`certificate`]: generated key pairs
//!   and what a certificate says; [`health`]: state and alerts;
//! - [`store`]: where their state lives (the state store).

pub mod auth;
pub mod certificate;
pub mod health;
pub mod store;

use std::sync::Arc;

use sha2::Digest;
use tokio::sync::OnceCell;

use crate::config::{Connection as ConnectionConfig, Credential};
use crate::events::Events;
use crate::graph::{self, Client, Drive};
use auth::Tokens;
use health::Health;
use store::Paths;

pub struct Connection {
    pub config: ConnectionConfig,
    pub health: Arc<Health>,
    pub tokens: Arc<Tokens>,
    pub client: Arc<Client>,
    drive: OnceCell<Arc<Drive>>,
}

impl Connection {
    /// Sets the connection up from its configuration and its state in the store; sends nothing
    /// to SharePoint yet.
    pub async fn open(
        config: &ConnectionConfig,
        paths: &Paths,
    ) -> crate::state::Result<Connection> {
        Connection::open_announcing(config, paths, None).await
    }

    /// [`Connection::open`], announcing on `events` when the connection is disabled or
    /// enabled again (a server's connections).
    pub async fn open_announcing(
        config: &ConnectionConfig,
        paths: &Paths,
        events: Option<Arc<Events>>,
    ) -> crate::state::Result<Connection> {
        let store = paths.store().await?;
        let health = Health::open(&config.name, store, &fingerprint(config), events).await?;
        Ok(Connection::with_health(config, paths, Arc::new(health)))
    }

    /// The connection with a [`Health::detached`]: its failures raise no alert and change no
    /// state; with [`Paths::existing`], nothing is written but a delegated sign-in's rotated
    /// refresh token (`spgate check`).
    pub fn detached(config: &ConnectionConfig, paths: &Paths) -> Connection {
        let health = Arc::new(Health::detached(&config.name));
        Connection::with_health(config, paths, health)
    }

    fn with_health(config: &ConnectionConfig, paths: &Paths, health: Arc<Health>) -> Connection {
        let http = graph::client::http_client(&config.limits);
        let tokens = Arc::new(Tokens::new(
            config,
            http.clone(),
            paths.clone(),
            health.clone(),
        ));
        let client = Arc::new(Client::new(
            &config.name,
            &config.graph_url,
            http,
            tokens.clone(),
            health.clone(),
            &config.limits,
        ));
        Connection {
            config: config.clone(),
            health,
            tokens,
            client,
            drive: OnceCell::new(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Queued uploads of this connection sent at once.
    pub fn upload_workers(&self) -> usize {
        self.config.limits.upload_workers
    }

    /// The library, resolved from the site URL and library name on first use.
    pub async fn drive(&self) -> graph::Result<Arc<Drive>> {
        self.drive
            .get_or_try_init(|| async {
                let site = &self.config.site;
                Drive::open(
                    self.client.clone(),
                    &site.host,
                    &site.path,
                    &self.config.drive,
                )
                .await
                .map(Arc::new)
            })
            .await
            .cloned()
    }
}

/// A digest of everything that identifies a connection's configuration, secrets included (as
/// a one-way hash): a connection disabled under one fingerprint is enabled again when it
/// changes. Certificate files count by content.
pub fn fingerprint(config: &ConnectionConfig) -> String {
    let mut hash = sha2::Sha256::new();
    for part in [
        &config.name,
        &config.tenant,
        &config.client_id,
        &config.site.url,
        &config.drive,
        &config.authority,
        &config.graph_url,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    match &config.credential {
        Credential::ClientSecret(secret) => {
            hash.update(b"secret\0");
            hash.update(secret.expose().as_bytes());
        }
        Credential::Certificate { cert, key } => {
            hash.update(b"certificate\0");
            for pem in [cert, key] {
                hash.update(pem.read().unwrap_or_default());
                hash.update([0]);
            }
        }
        Credential::DeviceCode => hash.update(b"device_code\0"),
    }
    format!("{:x}", hash.finalize())
}
