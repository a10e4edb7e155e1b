//! [`Channel`]: how a message reaches a receiver, whatever kind it is ([`super::webhook`],
//! [`super::email`]); a target's delivery ([`super::target`]) tries it and pauses between tries.

use super::error::Result;
use super::message::Message;

#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// Sends `message` once; `attempt` counts the tries from 1. An error says whether trying
    /// again may work ([`super::error::Kind`]).
    async fn send(&self, message: &Message, attempt: u32) -> Result<()>;
}
