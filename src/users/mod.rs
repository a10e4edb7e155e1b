//! Who may log in, and what they get: the accounts and their credentials.
//!
//! [`Users`] is built from the validated `[[users]]` and answers two questions, each with an
//! [`Account`] or a [`Refused`] reason: [`Users::password`] (argon2id, run off the async runtime,
//! bounded to one check per CPU) and [`Users::public_key`] (SSH keys compared by key data). Every
//! password refusal costs the same argon2 check, [`Users::burn`] included: an unknown user, a
//! disabled user, a user without a password, a source address outside `allow_from` and a wrong
//! password cannot be told apart from outside. The front-ends never call `Users` to log in:
//! [`crate::session::login`] does, and decides what is logged, audited and counted.
//!
//! `Users` is a plain value; on a configuration reload the caller builds a new one and swaps it
//! in whole. Sessions keep the `Arc<Account>` they logged in with.
//!
//! [`lockout`] locks a user/address pair after repeated failed logins, for every protocol.
//!
//! [`hash_password`] and [`prompt_and_hash`] make the hashes that `password_hash` takes
//! (`spgate passwd`).

pub mod lockout;
mod password;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZero;
use std::sync::Arc;

use argon2::password_hash::PasswordHashString;
use ipnet::IpNet;
use russh::keys::ssh_key::PublicKey;
use russh::keys::ssh_key::public::KeyData;
use tokio::sync::Semaphore;

use crate::config::{Mount, User};

pub use password::{check as check_password, hash_password, prompt_and_hash, prompt_secret};

/// A logged-in user as the front-ends see it: name and virtual file system, no credentials.
#[derive(Debug)]
pub struct Account {
    /// Login name.
    pub name: String,
    /// The user's mounts, in configuration order.
    pub mounts: Vec<Mount>,
    /// Whether the user must use FTPS (already combined with `ftp.tls_required`).
    pub ftp_tls_required: bool,
}

/// A refused login. It deliberately carries no reason: clients must not learn whether the user
/// exists, is disabled or typed a wrong password. The reason is logged where it is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub struct Denied;

/// Why a login was refused: for the log and the audit, never for the client (see [`Denied`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// The accounts that may log in, by exact name.
pub struct Users {
    by_name: HashMap<String, Credentials>,
    /// Bounds concurrent argon2 checks (each takes ~19 MiB and a CPU for tens of ms).
    verifiers: Arc<Semaphore>,
}

/// One user's credentials and login conditions, and the account a login yields.
struct Credentials {
    account: Arc<Account>,
    password_hash: Option<PasswordHashString>,
    keys: Vec<KeyData>,
    allow_from: Vec<IpNet>,
    enabled: bool,
}

impl Users {
    /// The accounts of `users`. A `password_hash` that is not a PHC string, or an authorized
    /// key that does not parse, is logged and left out; the user's other credentials still work.
    pub fn new(users: &[User]) -> Users {
        let by_name = users
            .iter()
            .map(|user| (user.name.clone(), Credentials::new(user)))
            .collect();
        let cpus = std::thread::available_parallelism().map_or(4, NonZero::get);
        Users {
            by_name,
            verifiers: Arc::new(Semaphore::new(cpus)),
        }
    }

    /// Password login for `name` from `peer`. Always runs one argon2 check (against a dummy hash
    /// when the user has no real one) before deciding, so every refusal takes as long.
    pub async fn password(
        &self,
        name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<Arc<Account>, Refused> {
        let credentials = self.by_name.get(name);
        let hash = credentials.and_then(|c| c.password_hash.clone());
        let matched = self.verify(hash, password).await;
        let credentials = credentials.ok_or(Refused("unknown user"))?;
        credentials.admits(peer)?;
        match (credentials.password_hash.is_some(), matched) {
            (false, _) => Err(Refused("no password set")),
            (true, false) => Err(Refused("wrong password")),
            (true, true) => Ok(Arc::clone(&credentials.account)),
        }
    }

    /// Costs what [`Users::password`] costs and matches nothing: for an attempt that is refused
    /// before its password may be looked at.
    pub async fn burn(&self, password: &str) {
        self.verify(None, password).await;
    }

    /// Public-key login for `name` from `peer`, once the SSH layer has checked the client's
    /// signature: accepted iff `key` is one of the user's authorized keys.
    pub fn public_key(
        &self,
        name: &str,
        key: &PublicKey,
        peer: IpAddr,
    ) -> Result<Arc<Account>, Refused> {
        self.key_verdict(name, key, peer)
            .map(|c| Arc::clone(&c.account))
    }

    /// Whether [`Users::public_key`] would accept `key`, without logging: for the SSH "is this
    /// key acceptable?" query that clients send for each key they hold, before signing.
    pub fn accepts_key(&self, name: &str, key: &PublicKey, peer: IpAddr) -> bool {
        self.key_verdict(name, key, peer).is_ok()
    }

    fn key_verdict(
        &self,
        name: &str,
        key: &PublicKey,
        peer: IpAddr,
    ) -> Result<&Credentials, Refused> {
        let credentials = self.by_name.get(name).ok_or(Refused("unknown user"))?;
        credentials.admits(peer)?;
        if !credentials.keys.contains(key.key_data()) {
            return Err(Refused("key not authorized"));
        }
        Ok(credentials)
    }

    /// Runs [`password::verify`] on the blocking pool, at most one per CPU at a time.
    async fn verify(&self, hash: Option<PasswordHashString>, password: &str) -> bool {
        let Ok(permit) = Arc::clone(&self.verifiers).acquire_owned().await else {
            return false; // the semaphore is never closed
        };
        let password = password.to_owned();
        let check = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            password::verify(hash.as_ref(), &password)
        });
        check.await.unwrap_or_else(|error| {
            tracing::error!(%error, "password check did not finish");
            false
        })
    }
}

impl fmt::Debug for Users {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.by_name.keys().collect();
        names.sort();
        f.debug_struct("Users").field("names", &names).finish()
    }
}

impl Credentials {
    fn new(user: &User) -> Credentials {
        let password_hash = user.password_hash.as_deref().and_then(|hash| {
            PasswordHashString::new(hash)
                .inspect_err(|error| {
                    tracing::warn!(user = %user.name, %error, "password_hash unusable; password login off");
                })
                .ok()
        });
        let keys = user
            .authorized_keys
            .iter()
            .enumerate()
            .filter_map(|(i, key)| {
                PublicKey::from_openssh(&format!("{} {}", key.algorithm, key.base64))
                    .inspect_err(|error| {
                        tracing::warn!(user = %user.name, key = i, %error, "authorized key unusable; ignored");
                    })
                    .ok()
            })
            .map(|key| key.key_data().clone())
            .collect();
        Credentials {
            account: Arc::new(Account {
                name: user.name.clone(),
                mounts: user.mounts.clone(),
                ftp_tls_required: user.ftp_tls_required,
            }),
            password_hash,
            keys,
            allow_from: user.allow_from.clone(),
            enabled: user.enabled,
        }
    }

    /// The conditions every login method shares: the user is enabled and `peer` is allowed.
    fn admits(&self, peer: IpAddr) -> Result<(), Refused> {
        if !self.enabled {
            return Err(Refused("account disabled"));
        }
        // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
        let peer = peer.to_canonical();
        if !self.allow_from.is_empty() && !self.allow_from.iter().any(|net| net.contains(&peer)) {
            return Err(Refused("source address not allowed"));
        }
        Ok(())
    }
}
