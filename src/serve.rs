//! `spgate serve` and `spgate demo`: bind the listeners (SFTP, FTP, admin), run the front-ends over one gateway,
//! and shut down gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::session::{Gateway, Shared};

/// Runs the gateway until `shutdown` is cancelled. Prints `sftp listening on ADDR` and
/// `ftp listening on ADDR` on stdout for each listener once bound (tests start it on port 0 and
/// read the line).
/// `path` is the file the configuration came from: SIGHUP (and `POST /api/v1/reload`) read it
/// again. Under systemd (`NOTIFY_SOCKET` set, `Type=notify`) it sends `READY=1` once every
/// listener is bound and `STOPPING=1` when `shutdown` is cancelled.
pub async fn run(
    config: Config,
    path: Option<PathBuf>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    run_reporting(config, path, shutdown, |_, _| {}).await
}

/// [`run`], calling `bound(protocol, address)` after each listener is bound and announced.
pub async fn run_reporting(
    config: Config,
    path: Option<PathBuf>,
    shutdown: CancellationToken,
    bound: impl Fn(&str, SocketAddr),
) -> std::io::Result<()> {
    // What the service manager's status line will name once every listener is bound.
    let listening = parking_lot::Mutex::new(Vec::new());
    let bound = |protocol: &str, address: SocketAddr| {
        listening.lock().push(format!("{protocol} on {address}"));
        bound(protocol, address);
    };
    // Held while serving: restore and rekey refuse while a server uses the store.
    let _serving =
        crate::state::backup::Users::shared(&config.state.dir).map_err(std::io::Error::other)?;
    let store = crate::state::Store::of(&config.state)
        .await
        .map_err(std::io::Error::other)?;
    let store = Arc::new(store);
    // What an earlier version kept in files goes into the store, once.
    crate::connections::store::import_files(&store, &config.state.dir).await?;
    let paths = crate::connections::store::Paths::with_store(&config, store.clone());
    crate::sync::store::Store::open(&paths)
        .await
        .map_err(std::io::Error::other)?;
    // The file's records go into the store; what is in force is the store's.
    crate::session::control::provision(&store, &config)
        .await
        .map_err(std::io::Error::other)?;
    let changes = store.changes().await.map_err(std::io::Error::other)?;
    let config = crate::session::control::assemble(&store, &config)
        .await
        .map_err(std::io::Error::other)?;
    // The notifier listens before the connections open: one enabled again because its
    // configuration changed is announced as it opens.
    let events = Arc::new(crate::events::Events::default());
    let notifier = crate::notify::Notifier::start(
        &events,
        &config.notify,
        Some(store.clone()),
        shutdown.clone(),
    );
    let shared = Arc::new(Shared::new(
        Gateway::new(config, store, events).await?,
        path,
        notifier,
        shutdown.clone(),
    ));
    shared.seen(changes);
    tokio::spawn(shared.clone().follow_store(shutdown.clone()));
    let heartbeat = tokio::spawn(crate::cluster::heartbeat(shared.clone(), shutdown.clone()));
    let gateway = shared.current();
    // Queued uploads go on from where they stood, including those queued before a restart.
    gateway.queue.recover().await?;
    let uploads = tokio::spawn(gateway.queue.clone().run(shutdown.clone()));
    #[cfg(unix)]
    {
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = hangup.recv() => match shared.reload().await {
                        Ok(_) => {}
                        Err(why) => tracing::error!(%why, "configuration reload refused; the old configuration stays in force"),
                    },
                }
            }
        });
    }
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(sftp) = &gateway.config.sftp {
        // The host keys come first: a store that cannot give them stops the start.
        let ssh = crate::sftp::ssh_config(&gateway).await?;
        let listener = bind(sftp.listen, "sftp")?;
        bound("sftp", listener.local_addr()?);
        tasks.spawn(crate::sftp::serve(
            listener,
            ssh,
            shared.clone(),
            shutdown.clone(),
        ));
    }
    if let Some(ftp) = &gateway.config.ftp {
        if crate::ftp::plaintext_passwords(ftp) {
            tracing::warn!(
                "FTP accepts passwords in plain text: configure [ftp] tls and tls_required = \"all\" to refuse them"
            );
        }
        if ftp.proxy_protocol.is_some() {
            let address = reserve(ftp.listen, "ftp")?;
            let server = tokio::spawn(crate::ftp::serve_proxied(
                address,
                shared.clone(),
                shutdown.clone(),
            ));
            if wait_accepting(address, &server).await {
                announce("ftp", address);
                bound("ftp", address);
            } else if server.is_finished() {
                // It ended before it accepted: its error stops the start, before READY.
                shutdown.cancel();
                return match server.await.map_err(std::io::Error::other)? {
                    Ok(()) => Err(std::io::Error::other(
                        "the FTP server (PROXY protocol) ended before it accepted connections",
                    )),
                    Err(e) => Err(e),
                };
            }
            tasks.spawn(async move { server.await.map_err(std::io::Error::other)? });
        } else {
            let listener = bind(ftp.listen, "ftp")?;
            bound("ftp", listener.local_addr()?);
            let (shared, shutdown) = (shared.clone(), shutdown.clone());
            tasks.spawn(crate::ftp::accept::serve(listener, shared, shutdown));
        }
    }
    if let Some(admin) = &gateway.config.admin {
        let listener = bind(admin.listen, "admin")?;
        bound("admin", listener.local_addr()?);
        let state = Arc::new(crate::admin::State::new(shared.clone()));
        state
            .listening
            .store(true, std::sync::atomic::Ordering::Relaxed);
        tasks.spawn(crate::admin::serve(listener, state, shutdown.clone()));
    }
    shared.start_syncs()?;
    tokio::spawn(sweep_local_mounts(shared.clone(), shutdown.clone()));
    // Every configured listener is bound (and accepts, for FTP in PROXY mode): a systemd unit of
    // Type=notify counts as started from here on.
    notify_ready(&listening.lock());
    let stopping = tokio::spawn(notify_stopping(shutdown.clone()));
    if tasks.is_empty() && gateway.config.syncs.is_empty() {
        tracing::warn!(
            "no listener and no sync job is configured ([sftp], [ftp] and [[syncs]] are absent); nothing to serve"
        );
    }
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                shutdown.cancel();
                return Err(e);
            }
            Err(e) => return Err(std::io::Error::other(e)),
        }
    }
    if !gateway.config.syncs.is_empty() {
        // Only sync jobs run: serve them until shutdown.
        shutdown.cancelled().await;
    }
    shared.wait_syncs().await;
    shared.notifier.wait().await;
    let _ = uploads.await;
    let _ = heartbeat.await;
    if shutdown.is_cancelled() {
        let _ = stopping.await;
    }
    Ok(())
}

/// Tells the service manager (systemd, `Type=notify`) that spgate is ready, with the bound
/// listeners as its status line. Without `NOTIFY_SOCKET` (not started that way) it does nothing.
fn notify_ready(listening: &[String]) {
    let status = match listening {
        [] => "running sync jobs only".to_owned(),
        _ => format!("listening: {}", listening.join(", ")),
    };
    notify(&[
        sd_notify::NotifyState::Ready,
        sd_notify::NotifyState::Status(&status),
    ]);
}

/// Tells the service manager that spgate is stopping, as soon as `shutdown` is cancelled.
async fn notify_stopping(shutdown: CancellationToken) {
    shutdown.cancelled().await;
    notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: letting transfers finish"),
    ]);
}

fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %crate::logging::chain(&e), "could not notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Removes upload temp files left in local mounts by a crash or a dropped session
/// ([`crate::storage::local::sweep_leftovers`]): at start, then daily, over the mounts of the
/// configuration then in force.
async fn sweep_local_mounts(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let dirs: std::collections::BTreeSet<PathBuf> = (shared.current().config.users.iter())
            .flat_map(|user| &user.mounts)
            .filter_map(|mount| match &mount.target {
                crate::config::MountTarget::Local { dir } => Some(dir.clone()),
                crate::config::MountTarget::SharePoint { .. } => None,
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for dir in dirs {
                crate::storage::local::sweep_leftovers(&dir);
            }
        })
        .await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(crate::storage::local::LEFTOVER_AGE) => {}
        }
    }
}

/// How many connections the kernel may hold for a listener before spgate accepts them (capped
/// by `net.core.somaxconn`). Tokio's default, 128, overflows when hundreds of partners connect
/// at once; Linux then drops the handshake's last packet and the client, which believes it is
/// connected, waits for the server's retransmission, seconds later.
const LISTEN_BACKLOG: u32 = 1024;

fn bind(address: SocketAddr, protocol: &str) -> std::io::Result<TcpListener> {
    let listen = || {
        let socket = match address {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        socket.set_reuseaddr(true)?;
        socket.bind(address)?;
        socket.listen(LISTEN_BACKLOG)
    };
    let listener = listen().map_err(|e| {
        std::io::Error::new(e.kind(), format!("binding {protocol} on {address}: {e}"))
    })?;
    announce(protocol, listener.local_addr()?);
    Ok(listener)
}

/// Prints `PROTOCOL listening on ADDR` on stdout (tests read it).
fn announce(protocol: &str, address: SocketAddr) {
    println!("{protocol} listening on {address}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}

/// A concrete address for a listener that binds by itself (libunftp in PROXY protocol mode
/// takes an address, not a socket): port 0 becomes a port the system just gave out. It is free again when this returns;
/// the listener binds it right after.
fn reserve(address: SocketAddr, protocol: &str) -> std::io::Result<SocketAddr> {
    if address.port() != 0 {
        return Ok(address);
    }
    let probe = std::net::TcpListener::bind(address).map_err(|e| {
        std::io::Error::new(e.kind(), format!("binding {protocol} on {address}: {e}"))
    })?;
    probe.local_addr()
}

/// Waits (up to 10 s) until something accepts connections on `address`, so that the
/// announcement is true when printed; false if `server` ended first (its result says why).
async fn wait_accepting<T>(address: SocketAddr, server: &tokio::task::JoinHandle<T>) -> bool {
    let target = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv4() => {
            SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, address.port()))
        }
        ip if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, address.port()))
        }
        _ => address,
    };
    for _ in 0..200 {
        if server.is_finished() {
            return false;
        }
        if tokio::net::TcpStream::connect(target).await.is_ok() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tracing::warn!(%address, "the FTP listener did not accept connections within 10 s");
    false
}
