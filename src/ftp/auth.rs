//! FTP logins: libunftp's authenticator and user-detail provider over spgate's [`Users`]
//! (passwords only; `allow_from`, disabled accounts and per-user FTPS requirements honoured).
//!
//! libunftp splits a login in two: the [`Authenticator`] checks the password and answers a bare
//! user name, then the [`UserDetailProvider`] turns the name into the session's user. [`Logins`]
//! is both: a successful password check remembers the user's `Arc<Account>` (the same value for
//! every login of that name), and the provider builds the session's [`Session`] (with its
//! virtual file system) from it.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use dashmap::DashMap;
use unftp_core::auth::{
    AuthenticationError, Authenticator, ChannelEncryptionState, Credentials, Principal, UserDetail,
    UserDetailError, UserDetailProvider,
};

use crate::gateway::Shared;
use crate::users::Account;
use crate::vfs::Vfs;

/// A logged-in FTP user: the account and the virtual file system built at login.
pub struct Session {
    pub account: Arc<Account>,
    pub vfs: Arc<Vfs>,
    /// Counts the session as active while libunftp holds it.
    pub _active: crate::admin::metrics::SessionGuard,
}

impl UserDetail for Session {}

/// Short, and without secrets: libunftp prints it in its spans.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({})", self.account.name)
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.account.name)
    }
}

/// The authenticator and user-detail provider of the FTP server.
pub struct Logins {
    /// The gateway in force; each login takes the current one.
    shared: Arc<Shared>,
    /// The accounts that passed a password check, by name.
    accepted: DashMap<String, (Arc<Account>, std::net::IpAddr)>,
}

impl Logins {
    pub fn new(shared: Arc<Shared>) -> Logins {
        Logins {
            shared,
            accepted: DashMap::new(),
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
        let gateway = self.shared.current();
        let account = gateway
            .users
            .password(username, password, creds.source_ip)
            .await;
        gateway.metrics.login("ftp", account.is_ok());
        let mut e = crate::audit::event(
            "login",
            username,
            "ftp",
            Some(creds.source_ip),
            "",
            account.is_ok(),
        );
        if account.is_err() {
            e.error = Some("password refused");
        }
        gateway.audit.record(&e);
        let account = account.map_err(|_| AuthenticationError::BadPassword)?;
        if account.ftp_tls_required
            && creds.command_channel_security == ChannelEncryptionState::Plaintext
        {
            tracing::warn!(user = %username, peer = %creds.source_ip, "FTP login refused: this user must use FTPS (AUTH TLS)");
            return Err(AuthenticationError::BadPassword);
        }
        self.accepted
            .insert(username.to_string(), (account, creds.source_ip));
        Ok(Principal {
            username: username.to_string(),
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
        let gateway = self.shared.current();
        let (account, peer) = self
            .accepted
            .get(&principal.username)
            .map(|a| (Arc::clone(&a.0), a.1))
            .ok_or_else(|| UserDetailError::UserNotFound {
                username: principal.username.clone(),
            })?;
        let vfs = gateway.vfs(&account, "ftp", Some(peer)).map_err(|e| {
            tracing::warn!(user = %account.name, error = %e, "FTP login: the user's mounts cannot be opened");
            UserDetailError::with_source("mounts unavailable", e)
        })?;
        Ok(Session {
            account,
            vfs: Arc::new(vfs),
            _active: gateway.metrics.session("ftp"),
        })
    }
}
