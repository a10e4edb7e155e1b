//! One SSH connection: authentication (password, public key, keyboard-interactive with a
//! password prompt) through the protocol-neutral users layer, then the `sftp` subsystem on a
//! session channel, served by [`super::files::Files`] over the user's virtual file system.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelOpenFailure, MethodKind, MethodSet};
use tracing::Instrument;

use super::files::{Files, take_one};
use crate::session::Gateway;
use crate::session::admission::Ticket;
use crate::session::transfers::Transfers;
use crate::session::{self as sessions, Attempt, Credential};

/// Bytes buffered between the SSH channel and the SFTP engine, each way.
const PIPE_BYTES: usize = 4 * 1024 * 1024;

/// A session channel's place under `max_channels_per_connection`, given back when dropped.
struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Connection {
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    /// Session channels opened and not yet serving SFTP, each with its place.
    channels: HashMap<ChannelId, (Channel<Msg>, Held)>,
    tracker: tokio_util::task::TaskTracker,
    /// The first successful login's session, active until the connection ends.
    session: Option<sessions::Session>,
    /// The connection's place under `[limits]`; marked at the first successful login (the
    /// listener's login grace time watches it).
    ticket: Arc<Ticket>,
    /// Session channels open, against `max_channels_per_connection`.
    channels_open: Arc<AtomicUsize>,
    /// Handles open over all channels, against `max_handles_per_login`.
    handles: Arc<AtomicUsize>,
    /// Files being transferred over all channels.
    transfers: Arc<Transfers>,
}

impl Connection {
    pub fn new(
        gateway: Arc<Gateway>,
        peer: SocketAddr,
        tracker: tokio_util::task::TaskTracker,
        ticket: Arc<Ticket>,
        transfers: Arc<Transfers>,
    ) -> Self {
        Connection {
            ticket,
            transfers,
            channels_open: Arc::default(),
            handles: Arc::default(),
            gateway,
            peer,
            channels: HashMap::new(),
            tracker,
            session: None,
        }
    }

    fn methods() -> MethodSet {
        MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::Password,
                MethodKind::KeyboardInteractive,
            ][..],
        )
    }

    /// A login through the session layer; the first success makes the connection's session.
    async fn login(&mut self, user: &str, credential: Credential<'_>) -> Auth {
        let attempt = Attempt {
            protocol: "sftp",
            user,
            peer: self.peer.ip(),
            encrypted: true,
        };
        match sessions::login(&self.gateway, attempt, credential).await {
            Ok(session) => {
                self.ticket.logged_in(user, "sftp");
                self.session.get_or_insert(session);
                Auth::Accept
            }
            Err(_) => Self::reject(),
        }
    }

    fn reject() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(Self::methods()),
            partial_success: false,
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.login(user, Credential::Password(password)).await)
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(
            if self
                .gateway
                .users
                .accepts_key(user, offer.public_key, self.peer.ip())
            {
                Auth::Accept
            } else {
                Self::reject()
            },
        )
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(self
            .login(user, Credential::PublicKey(key.public_key))
            .await)
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(mut response) = response else {
            return Ok(Auth::Partial {
                name: Cow::Borrowed(""),
                instructions: Cow::Borrowed(""),
                prompts: Cow::Owned(vec![(Cow::Borrowed("Password: "), false)]),
            });
        };
        let answer = response
            .next()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Ok(self.login(user, Credential::Password(&answer)).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(logged) = &self.session else {
            return Ok(());
        };
        let most = self.gateway.config.limits.max_channels_per_connection;
        if !take_one(&self.channels_open, most) {
            tracing::warn!(user = %logged.account.name, peer = %self.peer, most,
                "session channel refused: max_channels_per_connection are open");
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let held = Held(self.channels_open.clone());
        self.channels.insert(channel.id(), (channel, held));
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(logged), Some((channel, held))) = (&self.session, self.channels.remove(&id))
        else {
            return session.channel_failure(id);
        };
        if name != "sftp" {
            tracing::debug!(subsystem = name, "refused a subsystem other than sftp");
            return session.channel_failure(id);
        }
        let account = logged.account.clone();
        let vfs = match logged.vfs() {
            Ok(vfs) => vfs,
            Err(e) => {
                tracing::error!(user = %account.name, error = %crate::logging::chain(&e), "cannot set up the user's mounts");
                return session.channel_failure(id);
            }
        };
        session.channel_success(id)?;
        let span = tracing::info_span!("sftp", user = %account.name, peer = %self.peer);
        let most = self.gateway.config.limits.max_handles_per_login;
        let files = Files::new(
            Arc::new(vfs),
            account.name.clone(),
            self.handles.clone(),
            most,
            self.transfers.clone(),
        );
        // Drain the channel in our own tasks, through a pipe: russh's session loop must never
        // block on a full channel queue, or it stops reading window adjustments and a client
        // that prefetches thousands of reads (paramiko) deadlocks the session (shared/CRATES.md).
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let (mut pipe_rx, mut pipe_tx) = tokio::io::split(ours);
        let (mut channel_rx, channel_tx) = channel.split();
        let mut writer = channel_tx.make_writer();
        // This task lives as long as the channel: it holds the channel's place.
        self.tracker.spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _held = held;
            while let Some(message) = channel_rx.wait().await {
                match message {
                    russh::ChannelMsg::Data { data } if pipe_tx.write_all(&data).await.is_err() => {
                        break;
                    }
                    russh::ChannelMsg::Eof | russh::ChannelMsg::Close => break,
                    _ => {}
                }
            }
            let _ = pipe_tx.shutdown().await;
        });
        self.tracker.spawn(async move {
            let _ = tokio::io::copy(&mut pipe_rx, &mut writer).await;
            let _ = channel_tx.eof().await;
            let _ = channel_tx.close().await;
        });
        self.tracker
            .spawn(async move { russh_sftp::server::run(theirs, files).await }.instrument(span));
        Ok(())
    }
}
