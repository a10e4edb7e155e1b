//! The protocol-neutral heart of `spgate serve`: the loaded configuration, the users, the
//! SharePoint connections, and how a login becomes a virtual file system. The SFTP and FTP
//! front-ends hold an `Arc<Gateway>` and ask it for everything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Config, MountTarget};
use crate::connections::Connection;
use crate::connections::store::{Paths, ensure_private_dir};
use crate::storage::local::Local;
use crate::storage::metered::{Labels, Metered};
use crate::storage::notify::Notify;
use crate::storage::sharepoint::SharePoint;
use crate::storage::{self, Backend};
use crate::sync::schedule::Triggers;
use crate::users::{Account, Users};
use crate::vfs::{MountPoint, Vfs};

pub struct Gateway {
    pub config: Config,
    pub users: Users,
    pub connections: HashMap<String, Arc<Connection>>,
    /// Where SharePoint uploads are spooled before they are sent.
    pub spool_dir: PathBuf,
    /// Wakes the sync jobs whose local folders receive uploads.
    pub triggers: Arc<Triggers>,
    /// What the front-ends count for `/metrics`.
    pub metrics: Arc<crate::admin::metrics::Metrics>,
    /// The transfer audit log.
    pub audit: Arc<crate::audit::Audit>,
}

impl Gateway {
    /// Opens every connection (nothing is sent yet) and prepares the state directory.
    pub fn new(config: Config) -> std::io::Result<Gateway> {
        ensure_private_dir(&config.state.dir)?;
        let spool_dir = config.state.dir.join("spool");
        ensure_private_dir(&spool_dir)?;
        let paths = Paths {
            state_dir: config.state.dir.clone(),
        };
        let mut connections = HashMap::new();
        for c in &config.connections {
            connections.insert(c.name.clone(), Arc::new(Connection::open(c, &paths)?));
        }
        Ok(Gateway {
            users: Users::new(&config.users),
            triggers: Arc::new(Triggers::new(&config)),
            metrics: Arc::default(),
            audit: Arc::new(crate::audit::Audit::open(&config.audit, &config.state.dir)),
            config,
            connections,
            spool_dir,
        })
    }

    /// The virtual file system of an account logged in over `protocol` (`sftp`, `ftp`) from
    /// `peer`; every mount counts its transfers in the metrics and the audit log.
    pub fn vfs(
        &self,
        account: &Account,
        protocol: &'static str,
        peer: Option<std::net::IpAddr>,
    ) -> storage::Result<Vfs> {
        let mut mounts = Vec::new();
        for mount in &account.mounts {
            let backend: Arc<dyn Backend> = match &mount.target {
                MountTarget::Local { dir } => {
                    let local: Arc<dyn Backend> = Arc::new(Local::new(dir.clone())?);
                    if self.triggers.watching(dir) {
                        let (triggers, dir) = (self.triggers.clone(), dir.clone());
                        Arc::new(Notify::new(
                            local,
                            Arc::new(move |path: &str| {
                                triggers.stored(&dir.join(path.trim_start_matches('/')))
                            }),
                        ))
                    } else {
                        local
                    }
                }
                MountTarget::SharePoint { connection, remote } => {
                    let connection = self.connections.get(connection).ok_or_else(|| {
                        storage::Error::new(
                            storage::ErrorKind::Failed,
                            format!("mount {} names an unknown connection", mount.path),
                        )
                    })?;
                    Arc::new(SharePoint::new(
                        connection.clone(),
                        remote,
                        self.spool_dir.clone(),
                    ))
                }
            };
            let connection = match &mount.target {
                MountTarget::Local { .. } => "local".to_string(),
                MountTarget::SharePoint { connection, .. } => connection.clone(),
            };
            let backend: Arc<dyn Backend> = Arc::new(Metered::new(
                backend,
                Labels {
                    protocol,
                    connection,
                    metrics: self.metrics.clone(),
                    user: account.name.clone(),
                    peer,
                    mount: mount.path.clone(),
                    audit: self.audit.clone(),
                },
            ));
            mounts.push(MountPoint {
                path: mount.path.clone(),
                backend,
                permissions: mount.permissions,
            });
        }
        Ok(Vfs::new(mounts))
    }
}
