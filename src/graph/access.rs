//! What the Graph client needs from the connection it serves, as two small traits that
//! `crate::connections` implements: bearer tokens ([`TokenSource`]) and whether the
//! connection is disabled ([`Standing`]). The client knows nothing else about connections.

use std::sync::Arc;

use async_trait::async_trait;

/// A bearer token; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Arc<str>);

impl AccessToken {
    pub fn new(secret: &str) -> AccessToken {
        AccessToken(Arc::from(secret))
    }

    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccessToken(***)")
    }
}

/// Why no token could be had.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    /// Worth retrying later (network, 5xx, `temporarily_unavailable`).
    #[error("token request failed, will retry: {0}")]
    Transient(String),
    /// The connection is (now) disabled; the alert says what to do.
    #[error("{message} ({code}). {action}")]
    Disabled {
        code: String,
        message: String,
        action: String,
    },
}

/// Where the client gets its bearer tokens.
#[async_trait]
pub trait TokenSource: Send + Sync {
    /// A valid token, fetched if need be.
    async fn token(&self) -> Result<AccessToken, TokenError>;
    /// Graph refused `used` (401): the next [`TokenSource::token`] must fetch a new one.
    fn invalidate(&self, used: &AccessToken);
}

/// Whether the connection may send requests at all.
pub trait Standing: Send + Sync {
    /// Why the connection is disabled and what to do about it, or `None` while it is enabled.
    fn disabled(&self) -> Option<String>;
}
