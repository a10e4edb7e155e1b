//! The SSH host keys, Ed25519 and RSA, kept in the state store (the private halves sealed):
//! generated once, by whichever instance starts first, so clients' known_hosts entries stay
//! valid across restarts and across instances sharing a store. Keys an older spgate kept as
//! files under `[state] dir` are imported on first start, and the files renamed `.imported`.

use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::{Algorithm, PrivateKey};

use crate::config::Secret;
use crate::state::Store;
use crate::state::host_keys::HostKey;

/// The host keys from `store`, importing the files in `dir` or generating the missing ones.
pub async fn load_or_create(store: &Store, dir: &Path) -> std::io::Result<Vec<PrivateKey>> {
    let stored = store.host_keys().await.map_err(io)?;
    let mut keys = Vec::new();
    for (file, algorithm) in [
        ("ssh_host_ed25519_key", Algorithm::Ed25519),
        ("ssh_host_rsa_key", Algorithm::Rsa { hash: None }),
    ] {
        let name = algorithm.as_str().to_string();
        if let Some(key) = stored.iter().find(|k| k.algorithm == name) {
            keys.push(parse(&key.private_key, &name)?);
            continue;
        }
        let path = dir.join(file);
        let imported = path.exists();
        let key = if imported {
            russh::keys::load_secret_key(&path, None)
                .map_err(|e| io(format!("{}: {e}", path.display())))?
        } else {
            let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
            PrivateKey::random(&mut rng, algorithm).map_err(io)?
        };
        let text = key.to_openssh(LineEnding::LF).map_err(io)?;
        let public = key.public_key().to_openssh().map_err(io)?;
        let entry = HostKey {
            algorithm: name.clone(),
            public_key: public,
            private_key: Secret::new(text.as_str()),
        };
        let key = if store.add_host_key(&entry).await.map_err(io)? {
            let origin = if imported { "imported" } else { "generated" };
            tracing::info!(algorithm = %name, origin, fingerprint = %key.public_key().fingerprint(Default::default()), "SSH host key stored");
            key
        } else {
            // Another instance stored one first: that one is every instance's.
            if imported {
                tracing::warn!(algorithm = %name, file = %path.display(), "another instance stored its host key first: this key file is not used, and clients that knew it will see the store's key");
            }
            let stored = store.host_keys().await.map_err(io)?;
            let first = stored
                .iter()
                .find(|k| k.algorithm == name)
                .ok_or_else(|| io(format!("the {name} host key vanished from the store")))?;
            parse(&first.private_key, &name)?
        };
        if imported {
            let imported = path.with_file_name(format!("{file}.imported"));
            std::fs::rename(&path, &imported)?;
        }
        keys.push(key);
    }
    Ok(keys)
}

fn io(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> std::io::Error {
    std::io::Error::other(e)
}

fn parse(text: &Secret, algorithm: &str) -> std::io::Result<PrivateKey> {
    PrivateKey::from_openssh(text.expose()).map_err(|e| {
        io(format!(
            "the stored {algorithm} host key is unreadable: {e}"
        ))
    })
}
