//! The SFTP front-end: an SSH server (russh) whose only service is the `sftp` subsystem
//! (russh-sftp), over the protocol-neutral gateway.
//!
//! - [`keys`]: host keys; [`session`]: one SSH connection (authentication, channels);
//! - [`files`]: the SFTP requests; [`reply`]: error and attribute mapping;
//! - [`proxy`]: the PROXY protocol header a TCP load balancer sends first.

pub mod files;
pub mod keys;
pub mod proxy;
pub mod reply;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use russh::server::Config;
use russh::{MethodKind, MethodSet, Preferred, cipher};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::session::accept::{self, Acceptor, admit, cut_off, with_closer};
use crate::session::transfers::Transfers;
use crate::session::{Gateway, Shared};

/// How long a connection's transfers may go on after a shutdown starts (idle connections close
/// at once).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

const CIPHERS: &[cipher::Name] = &[
    cipher::AES_128_GCM,
    cipher::AES_256_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_128_CTR,
    cipher::AES_256_CTR,
];

/// The russh configuration: tuned windows and buffers (see shared/CRATES.md).
pub async fn ssh_config(gateway: &Gateway) -> std::io::Result<Config> {
    Ok(Config {
        keys: keys::load_or_create(&gateway.store, &gateway.config.state.dir).await?,
        methods: MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        ),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: Some(Duration::from_secs(3600)),
        keepalive_interval: Some(Duration::from_secs(60)),
        window_size: 16 * 1024 * 1024,
        maximum_packet_size: 65535,
        channel_buffer_size: 4096,
        event_buffer_size: 4096,
        nodelay: true,
        preferred: Preferred {
            cipher: std::borrow::Cow::Borrowed(CIPHERS),
            ..Preferred::default()
        },
        ..Config::default()
    })
}

/// The client a load balancer's PROXY protocol header names on `socket` (the balancer itself
/// for its own connections); `None`, logged, when the header is missing or bad.
async fn client_behind(socket: &mut TcpStream, balancer: SocketAddr) -> Option<SocketAddr> {
    match tokio::time::timeout(proxy::HEADER_TIMEOUT, proxy::read_header(socket)).await {
        Ok(Ok(client)) => Some(client.unwrap_or(balancer)),
        Ok(Err(e)) => {
            tracing::warn!(%balancer, error = %crate::logging::chain(&e), "SFTP connection closed: [sftp] proxy_protocol is on");
            None
        }
        Err(_) => {
            tracing::warn!(%balancer, "SFTP connection closed: no PROXY protocol header in time");
            None
        }
    }
}

/// What a refused client reads: our identification string, then an unencrypted
/// SSH_MSG_DISCONNECT (code 12, "too many connections"), which OpenSSH prints as
/// "Received disconnect from ...: 12: too many connections".
fn refusal(reason: &str) -> Vec<u8> {
    let mut payload = vec![1u8]; // SSH_MSG_DISCONNECT
    payload.extend(12u32.to_be_bytes()); // SSH_DISCONNECT_TOO_MANY_CONNECTIONS
    payload.extend((reason.len() as u32).to_be_bytes());
    payload.extend(reason.as_bytes());
    payload.extend(0u32.to_be_bytes()); // no language tag
    // length, padding length, payload and padding must be a multiple of 8, with 4+ padding bytes.
    let mut padding = 8 - (5 + payload.len()) % 8;
    if padding < 4 {
        padding += 8;
    }
    let mut out = b"SSH-2.0-spgate\r\n".to_vec();
    out.extend(((1 + payload.len() + padding) as u32).to_be_bytes());
    out.push(padding as u8);
    out.extend(payload);
    out.extend(std::iter::repeat_n(0u8, padding));
    out
}

/// Tells a refused client why, in SSH's words (see [`refusal`]).
async fn refuse(socket: TcpStream) {
    accept::refuse(socket, &refusal("too many connections")).await;
}

/// Serves SFTP on `listener` with `config` (see [`ssh_config`]) until `shutdown` is cancelled;
/// connections then have until their transfers end, at most [`SHUTDOWN_GRACE`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let Some(sftp) = shared.current().config.sftp.clone() else {
        return Ok(());
    };
    let (proxied, grace) = (sftp.proxy_protocol, sftp.login_grace_time);
    let tracker = TaskTracker::new();
    tracing::info!(address = %listener.local_addr()?, "SFTP listening");
    let mut acceptor = Acceptor::new(listener, "sftp");
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = acceptor.accept() => accepted,
        };
        // Admitted here, in accept order, unless the client's address comes in a PROXY header:
        // a task admitted later must never make an older connection look newer.
        let early = (!proxied).then(|| admit(&shared.current(), "sftp", peer));
        if let Some(Err(_)) = early {
            tracker.spawn(refuse(socket));
            continue;
        }
        let (config, shared) = (config.clone(), shared.clone());
        let (shutdown, sessions) = (shutdown.clone(), tracker.clone());
        tracker.spawn(async move {
            let deadline = tokio::time::Instant::now() + grace;
            let mut socket = socket;
            let _ = socket.set_nodelay(true);
            let peer = if proxied {
                let Some(client) = client_behind(&mut socket, peer).await else {
                    return;
                };
                client
            } else {
                peer
            };
            let gateway = shared.current();
            let ticket = match early {
                Some(Ok(ticket)) => ticket,
                _ => match admit(&gateway, "sftp", peer) {
                    Ok(ticket) => ticket,
                    Err(_) => return refuse(socket).await,
                },
            };
            let ticket = Arc::new(ticket);
            let cut = ticket.cut.clone();
            let (socket, closer) = match with_closer(socket) {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(%peer, error = %crate::logging::chain(&e), "cannot set up the connection");
                    return;
                }
            };
            let transfers = Arc::new(Transfers::default());
            let handler = session::Connection::new(gateway.clone(), peer, sessions, ticket.clone(), transfers.clone());
            let started = russh::server::run_stream(config, socket, handler);
            let session = tokio::select! {
                started = tokio::time::timeout_at(deadline, started) => match started {
                    Ok(Ok(session)) => session,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %crate::logging::chain(&e), "SSH handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!(%peer, "SSH connection closed: no login within the grace time");
                        return;
                    }
                },
                () = cut.cancelled() => {
                    cut_off(&gateway, "sftp", peer, &ticket);
                    return;
                }
            };
            // Closes the connection at the deadline unless someone logged in by then.
            let grace_over = async {
                tokio::time::sleep_until(deadline).await;
                if ticket.has_logged_in() {
                    std::future::pending::<()>().await;
                }
            };
            let handle = session.handle();
            tokio::select! {
                result = session => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %crate::logging::chain(&e), "SSH connection ended with an error");
                    }
                }
                // Idle connections close at once; the others when their files are done.
                _ = async {
                    shutdown.cancelled().await;
                    let _ = tokio::time::timeout(SHUTDOWN_GRACE, transfers.drain()).await;
                } => {
                    tracing::debug!(%peer, "SSH connection closed: the server is shutting down");
                    let bye = handle.disconnect(russh::Disconnect::ByApplication, "the server is shutting down".into(), "en".into());
                    let _ = tokio::time::timeout(Duration::from_secs(1), bye).await;
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                }
                // Cut at the TCP level: before its key exchange ends, russh's session task does
                // not act on a disconnect request.
                _ = grace_over => {
                    tracing::info!(%peer, "SSH connection closed: no login within the grace time");
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                }
                () = cut.cancelled() => {
                    cut_off(&gateway, "sftp", peer, &ticket);
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                }
            }
        });
    }
    tracker.close();
    tracker.wait().await;
    Ok(())
}
