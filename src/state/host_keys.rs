//! The SSH host keys: generated once per store (the first instance to start makes them, the
//! others find them), the private half sealed.

use sqlx::Row;

use super::{Result, Store};
use crate::config::Secret;

/// One host key: its algorithm name (`ssh-ed25519`), the public key in OpenSSH form and the
/// private key (OpenSSH PEM), opened.
#[derive(Debug, Clone)]
pub struct HostKey {
    pub algorithm: String,
    pub public_key: String,
    pub private_key: Secret,
}

pub(super) fn place(algorithm: &str) -> String {
    format!("host_keys/{algorithm}/private_key")
}

impl Store {
    /// The host keys, by algorithm.
    pub async fn host_keys(&self) -> Result<Vec<HostKey>> {
        let rows = sqlx::query(
            "SELECT algorithm, public_key, private_key FROM host_keys ORDER BY algorithm",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                let algorithm: String = row.try_get("algorithm")?;
                let sealed: String = row.try_get("private_key")?;
                Ok(HostKey {
                    private_key: self.sealer().open(&place(&algorithm), &sealed)?,
                    public_key: row.try_get("public_key")?,
                    algorithm,
                })
            })
            .collect()
    }

    /// Stores `key` unless a key of its algorithm is there already: whether it was stored (when
    /// two instances make one at once, the first one stored is every instance's).
    pub async fn add_host_key(&self, key: &HostKey) -> Result<bool> {
        let sealed = self
            .sealer()
            .seal(&place(&key.algorithm), key.private_key.expose());
        let done = sqlx::query(
            "INSERT INTO host_keys (algorithm, public_key, private_key, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (algorithm) DO NOTHING",
        )
        .bind(&key.algorithm)
        .bind(&key.public_key)
        .bind(sealed)
        .bind(chrono::Utc::now().timestamp())
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
