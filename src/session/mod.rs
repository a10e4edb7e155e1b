//! The protocol-neutral session layer: every login of every front-end goes through [`login`],
//! which decides, logs, audits and counts it; a successful one is a [`Session`], which opens the
//! user's virtual file system and counts as active until it is dropped.
//!
//! - [`gateway`]: the gateway in force (configuration, users, connections, mounts), replaced
//!   as a whole by a reload;
//! - [`admission`]: connections and sessions held against `[limits]`; [`accept`]: the
//!   listeners' accept loop;
//! - [`accounting`]: what a session's file operations leave behind: metrics, audit lines and
//!   the "file stored" event; [`metrics`]: the counters; [`transfers`]: the transfers in
//!   progress on a connection, which a shutdown waits for.
//!
//! What a login checks, in order:
//! 1. the user/address lock ([`crate::users::lockout`]), before any credential is looked at: a
//!    locked attempt's password goes through a dummy argon2 check instead (the same cost as a
//!    real one) and is refused whatever it is, so neither the answer nor its time tells a guesser
//!    whether the password was right;
//! 2. the credential and the account's conditions (enabled, `allow_from`), by [`Users`];
//! 3. the channel: a user who must use FTPS is refused on a plain FTP control connection;
//! 4. the user's open sessions (`[limits] max_sessions_per_user`).
//!
//! A refusal at 2 or 3 counts towards the lock; a success clears it; a locked attempt counts for
//! nothing (a lock ends [`BLOCK`] after the last real failure). Every attempt is one audit line
//! (`login`, `ok` or `failed` with the reason) and one count in `spgate_logins_total`; clients
//! only ever learn [`Denied`].
//!
//! [`Users`]: crate::users::Users
//! [`BLOCK`]: crate::users::lockout::BLOCK

pub mod accept;
pub mod accounting;
pub mod admission;
pub mod control;
pub mod gateway;
pub mod metrics;
pub mod transfers;

pub use gateway::{Gateway, Shared};

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use russh::keys::ssh_key::PublicKey;

use crate::events::{Kind, Notice};
use crate::storage;
use crate::users::{Account, Denied, Refused};
use crate::vfs::Vfs;
use metrics::SessionGuard;

/// What a client offers to prove who it is.
pub enum Credential<'a> {
    Password(&'a str),
    /// A key whose signature the SSH layer has verified.
    PublicKey(&'a PublicKey),
}

impl Credential<'_> {
    fn method(&self) -> &'static str {
        match self {
            Credential::Password(_) => "password",
            Credential::PublicKey(_) => "publickey",
        }
    }
}

/// Who tries to log in, from where, over what.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// `sftp` or `ftp`.
    pub protocol: &'static str,
    /// The login name as the client sent it.
    pub user: &'a str,
    pub peer: IpAddr,
    /// Whether the credential came over an encrypted channel (FTP before `AUTH TLS` is not).
    pub encrypted: bool,
}

/// A logged-in user: the account, where it came from, and its place in the active sessions.
pub struct Session {
    pub account: Arc<Account>,
    pub protocol: &'static str,
    pub peer: IpAddr,
    gateway: Arc<Gateway>,
    _active: SessionGuard,
    _counted: admission::UserSession,
}

impl Session {
    /// The user's virtual file system; every mount counts its transfers in the metrics and the
    /// audit log.
    pub fn vfs(&self) -> storage::Result<Vfs> {
        self.gateway
            .vfs(&self.account, self.protocol, Some(self.peer))
    }
}

/// Names the user only: sessions end up in libunftp's and russh's spans.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({}, {})", self.account.name, self.protocol)
    }
}

/// Checks `credential` for `attempt` against `gateway`'s users and lock; see the module docs.
pub async fn login(
    gateway: &Arc<Gateway>,
    attempt: Attempt<'_>,
    credential: Credential<'_>,
) -> Result<Session, Denied> {
    let Attempt {
        protocol,
        user,
        peer,
        encrypted,
    } = attempt;
    let method = credential.method();
    let lockout = &gateway.lockout;
    let verdict = if lockout.locked(user, peer).await {
        if let Credential::Password(password) = credential {
            gateway.users.burn(password).await;
        }
        Err(Refused("locked after repeated failed logins"))
    } else {
        let verdict = match credential {
            Credential::Password(password) => gateway.users.password(user, password, peer).await,
            Credential::PublicKey(key) => gateway.users.public_key(user, key, peer),
        };
        let verdict = verdict.and_then(|account| {
            if account.ftp_tls_required && protocol == "ftp" && !encrypted {
                return Err(Refused("this user must use FTPS (AUTH TLS)"));
            }
            Ok(account)
        });
        match &verdict {
            Ok(_) => lockout.succeeded(user, peer).await,
            Err(_) => {
                if lockout.failed(user, peer).await {
                    gateway.events.notice(locked_notice(user, peer));
                }
            }
        }
        verdict
    };
    let limits = &gateway.config.limits;
    let verdict = verdict.and_then(|account| {
        let counted = gateway.admission.user_session(limits, &account.name);
        counted
            .map(|counted| (account, counted))
            .ok_or(Refused("max_sessions_per_user reached"))
    });

    gateway.metrics.login(protocol, verdict.is_ok());
    let mut event = crate::audit::event("login", user, protocol, Some(peer), "", verdict.is_ok());
    let error;
    match verdict {
        Ok((account, counted)) => {
            gateway.audit.record(&event);
            tracing::info!(user = %account.name, %peer, protocol, method, "login accepted");
            Ok(Session {
                account,
                protocol,
                peer,
                gateway: gateway.clone(),
                _active: gateway.metrics.session(protocol),
                _counted: counted,
            })
        }
        Err(Refused(reason)) => {
            error = format!("{method} refused: {reason}");
            event.error = Some(&error);
            gateway.audit.record(&event);
            // Debug-format the name: it is whatever the client sent.
            tracing::warn!(user = ?user, %peer, protocol, method, reason, "login refused");
            Err(Denied)
        }
    }
}

/// What administrators hear when `user` (as the client sent it) is locked out from `peer`.
fn locked_notice(user: &str, peer: IpAddr) -> Notice {
    use crate::users::lockout::{ATTEMPTS, BLOCK, group};
    let addresses = group(peer);
    Notice::new(
        Kind::UserLocked,
        user,
        format!(
            "{ATTEMPTS} failed logins in a row for user {user:?} from {addresses}: logins from \
             there are refused for {} minutes after the last failure",
            BLOCK.as_secs() / 60
        ),
        format!(
            "if it is your partner, check their credentials and end the lock with `spgate \
             lockouts clear {user}`; otherwise someone is guessing passwords from {addresses}: \
             block the address"
        ),
    )
}
