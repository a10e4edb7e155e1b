//! The protocol-neutral heart of `spgate serve`: the loaded configuration, the users, the
//! SharePoint connections, and how a login becomes a virtual file system. The SFTP and FTP
//! front-ends hold an `Arc<Gateway>` and ask it for everything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, MountTarget};
use crate::connections::Connection;
use crate::connections::store::{Paths, ensure_private_dir};
use crate::events::{Events, Place};
use crate::notify::Notifier;
use crate::state::Store;
use crate::storage::local::Local;
use crate::storage::queue::{Delivery, OnDelivery, Origin, Queue};
use crate::storage::sharepoint::{Commit, SharePoint};
use crate::storage::{self, Backend};
use crate::sync::schedule::Triggers;
use crate::users::{Account, Users};
use crate::vfs::{MountPoint, Vfs};

use super::accounting::{Accounted, Failures, Labels};
use super::admission::Admission;

pub struct Gateway {
    pub config: Config,
    pub users: Users,
    pub connections: HashMap<String, Arc<Connection>>,
    /// Where SharePoint uploads are spooled before they are sent.
    pub spool_dir: PathBuf,
    /// Wakes the sync jobs (`POST /api/v1/syncs/NAME/run`).
    pub triggers: Arc<Triggers>,
    /// What sessions announce (files stored), kept across reloads.
    pub events: Arc<Events>,
    /// What the front-ends count for `/metrics`.
    pub metrics: Arc<crate::session::metrics::Metrics>,
    /// The transfer audit log.
    pub audit: Arc<crate::audit::Audit>,
    /// Failed-login locks (every protocol), kept across reloads.
    pub lockout: Arc<crate::users::lockout::Lockout>,
    /// Connections and sessions held against `[limits]`, kept across reloads.
    pub admission: Arc<Admission>,
    /// The upload queue, kept across reloads.
    pub queue: Arc<Queue>,
    /// The state store, kept across reloads.
    pub store: Arc<Store>,
}

/// What a configuration reload keeps of the gateway it replaces: the metrics, the sync
/// triggers (unless the jobs changed), the event bus, the failed-login locks, the connection
/// counts, the upload queue and the state store.
struct Kept {
    metrics: Arc<crate::session::metrics::Metrics>,
    triggers: Arc<Triggers>,
    events: Arc<Events>,
    lockout: Arc<crate::users::lockout::Lockout>,
    admission: Arc<Admission>,
    queue: Arc<Queue>,
    store: Arc<Store>,
}

impl Gateway {
    /// Opens every connection (nothing is sent yet) and prepares the state directory; `store`
    /// is the state store `config` names, already open, and `events` the bus the gateway
    /// announces on (its subscribers already listening, so that nothing announced while the
    /// connections open is missed).
    pub async fn new(
        config: Config,
        store: Arc<Store>,
        events: Arc<Events>,
    ) -> std::io::Result<Gateway> {
        let triggers = Arc::new(Triggers::new(&config));
        ensure_private_dir(&config.state.dir)?;
        let queue = Queue::open(&config.state.dir, store.clone()).await?;
        let kept = Kept {
            metrics: Arc::default(),
            triggers,
            events,
            lockout: Arc::new(crate::users::lockout::Lockout::shared(store.clone())),
            admission: Arc::default(),
            queue,
            store,
        };
        Gateway::with(config, kept, None).await
    }

    /// [`Gateway::new`], keeping what outlives a configuration (see [`Kept`]) and the
    /// connections of `reused` whose configuration did not change.
    async fn with(
        config: Config,
        kept: Kept,
        reused: Option<&Gateway>,
    ) -> std::io::Result<Gateway> {
        let Kept {
            metrics,
            triggers,
            events,
            lockout,
            admission,
            queue,
            store,
        } = kept;
        ensure_private_dir(&config.state.dir)?;
        let spool_dir = config.state.dir.join("spool");
        ensure_private_dir(&spool_dir)?;
        let paths = Paths::with_store(&config, store.clone());
        let mut connections = HashMap::new();
        for c in &config.connections {
            let same = reused.and_then(|old| {
                let before = old.config.connections.iter().find(|b| b.name == c.name)?;
                (before == c).then(|| old.connections.get(&c.name).cloned())?
            });
            let connection = match same {
                Some(connection) => connection,
                None => {
                    Arc::new(Connection::open_announcing(c, &paths, Some(events.clone())).await?)
                }
            };
            connections.insert(c.name.clone(), connection);
        }
        let audit = Arc::new(crate::audit::Audit::open(
            &config.audit,
            &config.state.dir,
            Some((store.clone(), config.audit_retention)),
        ));
        queue.attach(&connections, audit_deliveries(&audit));
        Ok(Gateway {
            users: Users::new(&config.users),
            triggers,
            events,
            metrics,
            lockout,
            admission,
            queue,
            store,
            audit,
            config,
            connections,
            spool_dir,
        })
    }

    /// The virtual file system of an account logged in over `protocol` (`sftp`, `ftp`) from
    /// `peer`; every mount counts its transfers in the metrics and the audit log.
    /// Where the connections' state lives (the state store in force).
    pub fn paths(&self) -> Paths {
        Paths::with_store(&self.config, self.store.clone())
    }

    pub fn vfs(
        &self,
        account: &Account,
        protocol: &'static str,
        peer: Option<std::net::IpAddr>,
    ) -> storage::Result<Vfs> {
        let mut mounts = Vec::new();
        for mount in &account.mounts {
            let backend: Arc<dyn Backend> = match &mount.target {
                MountTarget::Local { dir } => Arc::new(Local::new(dir.clone())?),
                MountTarget::SharePoint {
                    connection,
                    remote,
                    names,
                    commit,
                } => {
                    let connection = self.connections.get(connection).ok_or_else(|| {
                        storage::Error::new(
                            storage::ErrorKind::Failed,
                            format!("mount {} names an unknown connection", mount.path),
                        )
                    })?;
                    let commit = Commit {
                        mode: *commit,
                        queue: self.queue.clone(),
                        origin: Origin {
                            user: account.name.clone(),
                            protocol: protocol.to_string(),
                            peer,
                            vpath: mount.path.clone(),
                        },
                    };
                    Arc::new(
                        SharePoint::new(connection.clone(), remote, self.spool_dir.clone(), *names)
                            .with_commit(commit),
                    )
                }
            };
            let base = match &mount.target {
                MountTarget::Local { dir } => Place::Local(dir.clone()),
                MountTarget::SharePoint {
                    connection, remote, ..
                } => Place::SharePoint {
                    connection: connection.clone(),
                    path: remote.clone(),
                },
            };
            let backend: Arc<dyn Backend> = Arc::new(Accounted::new(
                backend,
                Labels {
                    protocol,
                    metrics: self.metrics.clone(),
                    user: account.name.clone(),
                    peer,
                    mount: mount.path.clone(),
                    audit: self.audit.clone(),
                    base,
                    events: self.events.clone(),
                },
            ));
            mounts.push(MountPoint {
                path: mount.path.clone(),
                backend,
                permissions: mount.permissions,
            });
        }
        let failures = Failures {
            user: account.name.clone(),
            protocol,
            peer,
            audit: self.audit.clone(),
        };
        Ok(Vfs::new(mounts).observed(Arc::new(failures)))
    }
}

/// Writes each delivery of the upload queue to `audit` as a `deliver` line.
fn audit_deliveries(audit: &Arc<crate::audit::Audit>) -> OnDelivery {
    let audit = audit.clone();
    Arc::new(move |d: &Delivery<'_>| {
        let o = d.origin;
        let mut e = crate::audit::event(
            "deliver",
            &o.user,
            &o.protocol,
            o.peer,
            &o.vpath,
            d.error.is_none(),
        );
        e.size = Some(d.size);
        e.item_id = d.item_id;
        e.connection = Some(d.connection);
        e.error = d.error;
        audit.record(&e);
    })
}

/// The gateway in force, replaced as a whole by a configuration reload (SIGHUP or
/// `POST /api/v1/reload`). Each new session takes the current gateway and keeps it: running
/// sessions go on under the configuration they started with.
pub struct Shared {
    current: parking_lot::RwLock<Arc<Gateway>>,
    /// The file to reload from; `None` (the demo) cannot reload.
    path: Option<PathBuf>,
    /// The sync scheduler in force: a stop token (a child of the gateway's shutdown) and its
    /// tasks; a reload that changes jobs or connections replaces it.
    syncs: parking_lot::Mutex<Option<(CancellationToken, TaskTracker)>>,
    /// Schedulers replaced by reloads, still finishing the file they were copying.
    retired: parking_lot::Mutex<Vec<TaskTracker>>,
    /// Held while a new gateway is assembled and put in force, one at a time.
    applying: tokio::sync::Mutex<()>,
    /// The state store's change counter when its records were last put in force.
    seen: std::sync::atomic::AtomicI64,
    /// Delivers the gateway's notices to the `[[notify]]` targets in force.
    pub notifier: Arc<Notifier>,
    shutdown: CancellationToken,
}

impl Shared {
    pub fn new(
        gateway: Gateway,
        path: Option<PathBuf>,
        notifier: Arc<Notifier>,
        shutdown: CancellationToken,
    ) -> Shared {
        Shared {
            current: parking_lot::RwLock::new(Arc::new(gateway)),
            path,
            notifier,
            syncs: parking_lot::Mutex::default(),
            retired: parking_lot::Mutex::default(),
            applying: tokio::sync::Mutex::default(),
            seen: std::sync::atomic::AtomicI64::new(-1),
            shutdown,
        }
    }

    /// Starts the sync jobs of the gateway in force (replacing any running scheduler, whose
    /// runs stop between files and are recorded as interrupted).
    pub fn start_syncs(&self) -> std::io::Result<()> {
        let gateway = self.current();
        let stop = self.shutdown.child_token();
        let tracker = TaskTracker::new();
        crate::sync::schedule::start(
            &gateway.config,
            &gateway.store,
            &gateway.connections,
            &gateway.triggers,
            &gateway.events,
            &stop,
            &tracker,
        )?;
        tracker.close();
        if let Some((old_stop, old_tracker)) = self.syncs.lock().replace((stop, tracker)) {
            old_stop.cancel();
            self.retired.lock().push(old_tracker);
        }
        Ok(())
    }

    /// Waits for every sync task to end (after shutdown).
    pub async fn wait_syncs(&self) {
        let mut trackers: Vec<TaskTracker> = self.retired.lock().drain(..).collect();
        if let Some((_, tracker)) = self.syncs.lock().take() {
            trackers.push(tracker);
        }
        for tracker in trackers {
            tracker.wait().await;
        }
    }

    pub fn current(&self) -> Arc<Gateway> {
        self.current.read().clone()
    }

    /// Reads the configuration file again, provisions its records into the state store and
    /// puts the result in force. An invalid file, or one that changes what only a restart can
    /// change (listeners, passive ports, state store), is refused with the reason, and the
    /// configuration in force stays. Every connection is enabled again (the file was saved).
    pub async fn reload(&self) -> Result<String, String> {
        let Some(path) = &self.path else {
            return Err("this gateway was not started from a configuration file".into());
        };
        let file = crate::config::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let _one = self.applying.lock().await;
        let old = self.current();
        let before = &old.config;
        let mut needs_restart = Vec::new();
        if !before.state.same_store(&file.state) {
            needs_restart.push("[state]");
        }
        // The listeners are built once: any change to their sections needs a restart.
        if before.sftp != file.sftp {
            needs_restart.push("[sftp]");
        }
        if before.ftp != file.ftp {
            needs_restart.push("[ftp]");
        }
        if before.admin.as_ref().map(|a| a.listen) != file.admin.as_ref().map(|a| a.listen) {
            needs_restart.push("admin.listen");
        }
        if !needs_restart.is_empty() {
            return Err(format!(
                "{} changed, which needs a restart; nothing was reloaded",
                needs_restart.join(", ")
            ));
        }
        super::control::provision(&old.store, &file).await?;
        let changes = old.store.changes().await.map_err(|e| e.to_string())?;
        let config = super::control::assemble(&old.store, &file).await?;
        let summary = config.summary();
        let all: Vec<String> = config.connections.iter().map(|c| c.name.clone()).collect();
        self.apply(
            &old,
            config,
            &all,
            "the configuration was saved again (reload)",
            true,
        )
        .await?;
        self.seen(changes);
        tracing::info!(path = %path.display(), "configuration reloaded");
        Ok(summary)
    }

    /// Puts the state store's records in force after `what` changed through the API or the
    /// CLI; `saved` connections are enabled again (saving a connection re-enables it).
    pub async fn refresh(&self, what: &str, saved: &[String]) -> Result<(), String> {
        let _one = self.applying.lock().await;
        let old = self.current();
        let changes = old.store.changes().await.map_err(|e| e.to_string())?;
        let config = super::control::assemble(&old.store, &old.config).await?;
        self.apply(&old, config, saved, &format!("{what} was saved"), false)
            .await?;
        self.seen(changes);
        tracing::info!(what, "records put in force");
        Ok(())
    }

    /// Notes that the store's records as of change `counter` are in force.
    pub fn seen(&self, counter: i64) {
        self.seen
            .store(counter, std::sync::atomic::Ordering::Relaxed);
    }

    /// Puts in force what changed in the state store elsewhere (the CLI, another instance),
    /// checking its change counters at each change PostgreSQL announces and every second,
    /// until `shutdown`: records, and connections disabled or enabled (a saved connection's
    /// alert is cleared by whoever saved it).
    pub async fn follow_store(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let announced = self.current().store.listen(shutdown.clone());
        let changed = || async {
            match &announced {
                Some(changed) => changed.notified().await,
                None => std::future::pending().await,
            }
        };
        // The health counter as of the alerts last put in force.
        let mut health: Option<i64> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                _ = changed() => {}
            }
            let store = self.current().store.clone();
            let outcome = async {
                let counters = store.counters().await.map_err(|e| e.to_string())?;
                if counters.records != self.seen.load(std::sync::atomic::Ordering::Relaxed) {
                    self.refresh("a record changed in the state store", &[])
                        .await?;
                }
                if health != Some(counters.health) {
                    let open = store.open_alerts().await.map_err(|e| e.to_string())?;
                    let current = self.current();
                    for connection in current.connections.values() {
                        if connection.health.follow(&open)
                            && let Err(e) = connection.health.announce_enabled().await
                        {
                            tracing::warn!(connection = %connection.config.name, error = %crate::logging::chain(&e), "could not announce the connection enabled again");
                        }
                    }
                    health = Some(counters.health);
                }
                Ok::<_, String>(())
            }
            .await;
            match outcome {
                Ok(()) if failing => {
                    tracing::info!("the state store answers again");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    tracing::error!(%error, "following the state store failed; the records in force stay (retried every second)");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }

    /// Builds the gateway of `config` in place of `old`: enables the `enable` connections
    /// (`why`), closes the sessions of users now disabled or gone, and restarts the sync jobs
    /// when they or the connections changed.
    async fn apply(
        &self,
        old: &Gateway,
        config: Config,
        enable: &[String],
        why: &str,
        reload: bool,
    ) -> Result<(), String> {
        let before = &old.config;
        // Sync jobs restart when they or the connections changed; otherwise they go on.
        let text = |c: &Config| format!("{:?}{:?}", c.syncs, c.connections);
        let restart_syncs = text(before) != text(&config);
        let triggers = if restart_syncs {
            Arc::new(Triggers::new(&config))
        } else {
            old.triggers.clone()
        };
        let gone: Vec<(String, &str)> = before
            .users
            .iter()
            .filter(|u| u.enabled)
            .filter_map(|u| match config.users.iter().find(|n| n.name == u.name) {
                None => Some((u.name.clone(), "the user was deleted")),
                Some(now) if !now.enabled => Some((u.name.clone(), "the user was disabled")),
                Some(_) => None,
            })
            .collect();
        let kept = Kept {
            metrics: old.metrics.clone(),
            triggers,
            events: old.events.clone(),
            lockout: old.lockout.clone(),
            admission: old.admission.clone(),
            queue: old.queue.clone(),
            store: old.store.clone(),
        };
        // A reload opens every connection afresh (new token caches); a change to records keeps
        // the connections it did not change, with their tokens and throttling state.
        let reused = (!reload).then_some(old);
        let gateway = Gateway::with(config, kept, reused)
            .await
            .map_err(|e| format!("opening the new configuration: {e}"))?;
        // Saving a connection again re-enables it, changed or not: if its credentials are
        // still bad, the next request disables it with a new alert.
        for name in enable {
            if let Some(connection) = gateway.connections.get(name) {
                connection
                    .health
                    .enable(why)
                    .await
                    .map_err(|e| format!("enabling {name}: {e}"))?;
            }
        }
        self.notifier.configure(&gateway.config.notify);
        *self.current.write() = Arc::new(gateway);
        for (user, reason) in gone {
            let closed = old.admission.kick_user(&user, reason);
            if closed > 0 {
                tracing::info!(user, closed, reason, "sessions closed");
            }
        }
        if restart_syncs {
            self.start_syncs()
                .map_err(|e| format!("starting the sync jobs: {e}"))?;
        }
        Ok(())
    }
}
