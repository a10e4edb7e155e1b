//! The SSH host keys: Ed25519 and RSA, generated on first start under `[state] dir` (mode
//! 0600) and kept across restarts, so clients' known_hosts entries stay valid.

use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey};

use crate::connections::store::write_private;

/// Loads the host keys from `dir`, generating the missing ones.
pub fn load_or_create(dir: &Path) -> std::io::Result<Vec<PrivateKey>> {
    let mut keys = Vec::new();
    for (file, algorithm) in [
        ("ssh_host_ed25519_key", Algorithm::Ed25519),
        ("ssh_host_rsa_key", Algorithm::Rsa { hash: None }),
    ] {
        let path = dir.join(file);
        let key = if path.exists() {
            russh::keys::load_secret_key(&path, None)
                .map_err(|e| std::io::Error::other(format!("{}: {e}", path.display())))?
        } else {
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            let key = PrivateKey::random(&mut rng, algorithm).map_err(std::io::Error::other)?;
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(std::io::Error::other)?;
            write_private(&path, text.as_bytes())?;
            tracing::info!(path = %path.display(), fingerprint = %key.public_key().fingerprint(Default::default()), "generated an SSH host key");
            key
        };
        keys.push(key);
    }
    Ok(keys)
}
