//! Secrets at rest. Every secret the store keeps (client secrets, certificate private keys,
//! refresh tokens, SSH host private keys) is sealed with AES-256-GCM under the master key
//! (`[state] secret_key`), with where it is kept (table, row, column) as associated data: a
//! sealed value copied into another row does not open there.
//!
//! A sealed value reads `v1.KEYID.DATA`: `KEYID` names the key that sealed it (the first eight
//! hex digits of the key's SHA-256), so a wrong key is told apart from damage, and `DATA` is the
//! base64 of the 12-byte random nonce followed by the ciphertext and its tag.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::Digest;

use crate::config::Secret;

const VERSION: &str = "v1";
const NONCE: usize = 12;

/// Why a key or a sealed value was refused. Never holds the key or the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the secret key must be the base64 of 32 bytes (`spgate keygen` prints one)")]
    BadKey,
    #[error("{place} was sealed with key {sealed_with}, not with the key given ({given})")]
    OtherKey {
        place: String,
        sealed_with: String,
        given: String,
    },
    #[error("{place} is not a sealed value, or was damaged")]
    Damaged { place: String },
}

/// The master key, ready to seal and open.
pub struct Sealer {
    cipher: Aes256Gcm,
    id: String,
}

/// Names the key by its id only.
impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer(key {})", self.id)
    }
}

impl Sealer {
    /// A new random key, as `[state] secret_key` takes it.
    pub fn generate() -> Secret {
        let key: [u8; 32] = rand::random();
        Secret::new(STANDARD.encode(key))
    }

    /// The key `text` holds (base64 of 32 bytes; surrounding blanks ignored).
    pub fn new(text: &Secret) -> Result<Sealer, SealError> {
        let bytes = STANDARD
            .decode(text.expose().trim())
            .map_err(|_| SealError::BadKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| SealError::BadKey)?;
        let digest = sha2::Sha256::digest(key);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Sealer {
            cipher: Aes256Gcm::new(&Key::<Aes256Gcm>::from(key)),
            id,
        })
    }

    /// The key's id, as sealed values name it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `secret`, sealed for `place` (e.g. `connections/acme/secret`).
    pub fn seal(&self, place: &str, secret: &str) -> String {
        let nonce: [u8; NONCE] = rand::random();
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: place.as_bytes(),
                },
            )
            .expect("AES-GCM seals any message of a sane length");
        let mut data = nonce.to_vec();
        data.extend_from_slice(&sealed);
        format!("{VERSION}.{}.{}", self.id, STANDARD.encode(data))
    }

    /// The secret `sealed` holds, if it was sealed with this key for `place`.
    pub fn open(&self, place: &str, sealed: &str) -> Result<Secret, SealError> {
        let damaged = || SealError::Damaged {
            place: place.to_string(),
        };
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(damaged());
        };
        if id != self.id {
            return Err(SealError::OtherKey {
                place: place.to_string(),
                sealed_with: id.to_string(),
                given: self.id.clone(),
            });
        }
        let data = STANDARD.decode(data).map_err(|_| damaged())?;
        if data.len() < NONCE {
            return Err(damaged());
        }
        let (nonce, ciphertext) = data.split_at(NONCE);
        let nonce: [u8; NONCE] = nonce.try_into().map_err(|_| damaged())?;
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: place.as_bytes(),
                },
            )
            .map_err(|_| damaged())?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| damaged())
    }

    /// The key id a sealed value names, if it looks sealed.
    pub fn sealed_with(sealed: &str) -> Option<&str> {
        let mut parts = sealed.splitn(3, '.');
        match (parts.next(), parts.next()) {
            (Some(VERSION), Some(id)) => Some(id),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer() -> Sealer {
        Sealer::new(&Sealer::generate()).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_place() {
        let (one, two) = (sealer(), sealer());
        let sealed = one.seal("connections/acme/secret", "s3cr3t-value");
        assert!(!sealed.contains("s3cr3t"), "{sealed}");
        assert_eq!(
            one.open("connections/acme/secret", &sealed)
                .unwrap()
                .expose(),
            "s3cr3t-value"
        );
        // Sealing twice gives two different texts (random nonce).
        assert_ne!(sealed, one.seal("connections/acme/secret", "s3cr3t-value"));
        // Another row, or another key, does not open it.
        assert_eq!(
            one.open("connections/other/secret", &sealed).unwrap_err(),
            SealError::Damaged {
                place: "connections/other/secret".into()
            }
        );
        assert!(matches!(
            two.open("connections/acme/secret", &sealed),
            Err(SealError::OtherKey { .. })
        ));
        assert_eq!(Sealer::sealed_with(&sealed), Some(one.id()));
        // A flipped byte is damage, not a different secret.
        let mut bytes = sealed.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        let flipped = String::from_utf8(bytes).unwrap();
        assert!(matches!(
            one.open("connections/acme/secret", &flipped),
            Err(SealError::Damaged { .. })
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64_and_never_show() {
        assert_eq!(
            Sealer::new(&Secret::new("short")).unwrap_err(),
            SealError::BadKey
        );
        assert_eq!(
            Sealer::new(&Secret::new(STANDARD.encode([7u8; 31]))).unwrap_err(),
            SealError::BadKey
        );
        let key = Sealer::generate();
        let shown = format!("{:?}", Sealer::new(&key).unwrap());
        assert!(!shown.contains(key.expose()), "{shown}");
    }
}
