//! FTP logins: libunftp's authenticator and user-detail provider over the session layer
//! ([`crate::session::login`]: passwords only; lock, `allow_from`, disabled accounts and
//! per-user FTPS requirements decided there).
//!
//! libunftp splits a login in two: the [`Authenticator`] checks the password and answers a
//! [`Principal`], then the [`UserDetailProvider`] turns the principal into the session's user.
//! [`Logins`] is both: a successful login parks its session under a principal name of its own
//! (the user name and a login number, so that two logins of one user at once cannot take each
//! other's), and the provider takes it out and opens its virtual file system.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use dashmap::DashMap;
use unftp_core::auth::{
    AuthenticationError, Authenticator, ChannelEncryptionState, Credentials, Principal, UserDetail,
    UserDetailError, UserDetailProvider,
};

use crate::session::Shared;
use crate::session::admission::Ticket;
use crate::session::{self as sessions, Attempt, Credential};
use crate::vfs::Vfs;

/// A logged-in FTP user: the session (counted as active while libunftp holds it) and the
/// virtual file system built at login.
pub struct Session {
    pub session: sessions::Session,
    pub vfs: Arc<Vfs>,
}

impl UserDetail for Session {}

/// Short, and without secrets: libunftp prints it in its spans.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({})", self.session.account.name)
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.session.account.name)
    }
}

/// The authenticator and user-detail provider of the FTP server.
pub struct Logins {
    /// The gateway in force; each login takes the current one.
    shared: Arc<Shared>,
    /// Sessions logged in and not yet handed to libunftp, by principal name.
    accepted: DashMap<String, sessions::Session>,
    /// Numbers the logins.
    logins: AtomicU64,
    /// The connection's place under `[limits]`, marked logged in at its first login; `None`
    /// where libunftp accepts the connections (PROXY protocol mode).
    ticket: Option<Arc<Ticket>>,
}

impl Logins {
    pub fn new(shared: Arc<Shared>, ticket: Option<Arc<Ticket>>) -> Logins {
        Logins {
            shared,
            accepted: DashMap::new(),
            logins: AtomicU64::new(0),
            ticket,
        }
    }
}

impl fmt::Debug for Logins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Logins")
    }
}

#[async_trait]
impl Authenticator for Logins {
    async fn authenticate(
        &self,
        username: &str,
        creds: &Credentials,
    ) -> Result<Principal, AuthenticationError> {
        let Some(password) = creds.password.as_deref() else {
            return Err(AuthenticationError::BadPassword);
        };
        let attempt = Attempt {
            protocol: "ftp",
            user: username,
            peer: creds.source_ip,
            encrypted: creds.command_channel_security == ChannelEncryptionState::Tls,
        };
        let credential = Credential::Password(password);
        let session = sessions::login(&self.shared.current(), attempt, credential)
            .await
            .map_err(|_| AuthenticationError::BadPassword)?;
        if let Some(ticket) = &self.ticket {
            ticket.logged_in(username, "ftp");
        }
        let number = self.logins.fetch_add(1, Ordering::Relaxed);
        let principal = format!("{username}\n{number}");
        self.accepted.insert(principal.clone(), session);
        Ok(Principal {
            username: principal,
        })
    }

    fn name(&self) -> &str {
        "spgate"
    }
}

#[async_trait]
impl UserDetailProvider for Logins {
    type User = Session;

    async fn provide_user_detail(&self, principal: &Principal) -> Result<Session, UserDetailError> {
        let (_, session) = self.accepted.remove(&principal.username).ok_or_else(|| {
            UserDetailError::UserNotFound {
                username: principal.username.clone(),
            }
        })?;
        let vfs = session.vfs().map_err(|e| {
            tracing::warn!(user = %session.account.name, error = %crate::logging::chain(&e), "FTP login: the user's mounts cannot be opened");
            UserDetailError::with_source("mounts unavailable", e)
        })?;
        Ok(Session {
            session,
            vfs: Arc::new(vfs),
        })
    }
}
