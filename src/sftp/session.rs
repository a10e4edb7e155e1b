//! One SSH connection: authentication (password, public key, keyboard-interactive with a
//! password prompt) through the protocol-neutral users layer, then the `sftp` subsystem on a
//! session channel, served by [`super::files::Files`] over the user's virtual file system.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use russh::server::{
    Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Response, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tracing::Instrument;

use super::files::Files;
use crate::admin::metrics::SessionGuard;
use crate::gateway::Gateway;
use crate::users::Account;

/// Bytes buffered between the SSH channel and the SFTP engine, each way.
const PIPE_BYTES: usize = 4 * 1024 * 1024;

pub struct Connection {
    gateway: Arc<Gateway>,
    peer: SocketAddr,
    account: Option<Arc<Account>>,
    channels: HashMap<ChannelId, Channel<Msg>>,
    tracker: tokio_util::task::TaskTracker,
    /// Counts the session as active from login to disconnect.
    session: Option<SessionGuard>,
    /// Set at the first successful login (the listener's login grace time watches it).
    logged_in: Arc<AtomicBool>,
}

impl Connection {
    pub fn new(
        gateway: Arc<Gateway>,
        peer: SocketAddr,
        tracker: tokio_util::task::TaskTracker,
        logged_in: Arc<AtomicBool>,
    ) -> Self {
        Connection {
            logged_in,
            gateway,
            peer,
            account: None,
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

    /// Whether `user` is locked out from this peer after repeated failures; such an attempt is
    /// refused without checking its credentials, logged and audited.
    fn locked(&self, user: &str, method: &str) -> bool {
        let locked = self.gateway.lockout.locked(user, self.peer.ip());
        if locked {
            tracing::warn!(user = ?user, peer = %self.peer.ip(), method,
                "login refused: locked after repeated failures");
        }
        locked
    }

    /// Counts a checked login: a failure towards the user/address lock (attempts refused while
    /// locked do not count, so the lock ends [`BLOCK`] after the last real failure), a success
    /// clears it.
    ///
    /// [`BLOCK`]: crate::users::lockout::BLOCK
    fn checked(&mut self, user: &str, method: &str, account: Option<Arc<Account>>) -> Auth {
        let lockout = &self.gateway.lockout;
        match &account {
            Some(_) => lockout.succeeded(user, self.peer.ip()),
            None => lockout.failed(user, self.peer.ip()),
        }
        self.counted(user, method, account)
    }

    /// Counts a login attempt for the metrics and the audit log (and, when it succeeded, the
    /// session).
    fn counted(&mut self, user: &str, method: &str, account: Option<Arc<Account>>) -> Auth {
        self.gateway.metrics.login("sftp", account.is_some());
        let mut e = crate::audit::event(
            "login",
            user,
            "sftp",
            Some(self.peer.ip()),
            "",
            account.is_some(),
        );
        let failure = format!("{method} refused");
        if account.is_none() {
            e.error = Some(&failure);
        }
        self.gateway.audit.record(&e);
        match account {
            Some(account) => {
                self.account = Some(account);
                self.logged_in.store(true, Ordering::Relaxed);
                if self.session.is_none() {
                    self.session = Some(self.gateway.metrics.session("sftp"));
                }
                Auth::Accept
            }
            None => Self::reject(),
        }
    }

    fn reject() -> Auth {
        Auth::Reject {
            proceed_with_methods: Some(Self::methods()),
            partial_success: false,
        }
    }

    async fn login_password(&mut self, user: &str, password: &str) -> Auth {
        if self.locked(user, "password") {
            return self.counted(user, "password", None);
        }
        let account = self
            .gateway
            .users
            .password(user, password, self.peer.ip())
            .await
            .ok();
        self.checked(user, "password", account)
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_none(&mut self, _user: &str) -> Result<Auth, Self::Error> {
        Ok(Self::reject())
    }

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(self.login_password(user, password).await)
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
        if self.locked(user, "public key") {
            return Ok(self.counted(user, "public key", None));
        }
        let account = self
            .gateway
            .users
            .public_key(user, key.public_key, self.peer.ip())
            .ok();
        Ok(self.checked(user, "public key", account))
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
        Ok(self.login_password(user, &answer).await)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.account.is_some() {
            self.channels.insert(channel.id(), channel);
            reply.accept().await;
        }
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let (Some(account), Some(channel)) = (self.account.clone(), self.channels.remove(&id))
        else {
            return session.channel_failure(id);
        };
        if name != "sftp" {
            tracing::debug!(subsystem = name, "refused a subsystem other than sftp");
            return session.channel_failure(id);
        }
        let vfs = match self.gateway.vfs(&account, "sftp", Some(self.peer.ip())) {
            Ok(vfs) => vfs,
            Err(e) => {
                tracing::error!(user = %account.name, error = %e, "cannot set up the user's mounts");
                return session.channel_failure(id);
            }
        };
        session.channel_success(id)?;
        let span = tracing::info_span!("sftp", user = %account.name, peer = %self.peer);
        let files = Files::new(Arc::new(vfs), account.name.clone());
        // Drain the channel in our own tasks, through a pipe: russh's session loop must never
        // block on a full channel queue, or it stops reading window adjustments and a client
        // that prefetches thousands of reads (paramiko) deadlocks the session (shared/CRATES.md).
        let (ours, theirs) = tokio::io::duplex(PIPE_BYTES);
        let (mut pipe_rx, mut pipe_tx) = tokio::io::split(ours);
        let (mut channel_rx, channel_tx) = channel.split();
        let mut writer = channel_tx.make_writer();
        self.tracker.spawn(async move {
            use tokio::io::AsyncWriteExt;
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
