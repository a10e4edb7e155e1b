//! Argon2id password hashes: making them ([`hash_password`], [`prompt_and_hash`] for
//! `spgate passwd`) and checking them ([`verify`]), including against a dummy hash so that a
//! login without a real hash costs the same as one with.

use std::io::{self, BufRead, IsTerminal};

use argon2::password_hash::{PasswordHash, PasswordHashString, SaltString};
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use rand::RngCore;

/// An argon2id hash made by [`hash_password`] with the default parameters (m=19456, t=2, p=1)
/// of a password nobody knows. Checked instead of a real hash when there is none, so that
/// unknown users cost as much as known ones.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$XB5rJLh4Qm3eaJxpvLBHWA$wl37Q6a5ol+qaKGytInEaqPxROLFnNqypCKeTYN9ypQ";

/// Hashes `password` with argon2id, the default parameters and a random 16-byte salt; returns
/// the PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) that `password_hash` takes.
pub fn hash_password(password: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16 bytes is a valid salt length");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("default argon2 parameters hash any password")
        .to_string()
}

/// `spgate passwd`: reads a password and returns its [`hash_password`] PHC string.
///
/// On a terminal the password is asked twice without echo and the two must match; otherwise
/// one line is read from standard input, so scripts can pipe it in. An empty password is
/// refused. Failures are [`io::ErrorKind::InvalidInput`] errors with a message for the operator.
pub fn prompt_and_hash() -> io::Result<String> {
    let password = if io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        refuse_empty(&first)?;
        if rpassword::prompt_password("Repeat password: ")? != first {
            return Err(invalid("the passwords do not match"));
        }
        first
    } else {
        read_line(io::stdin().lock())?
    };
    refuse_empty(&password)?;
    Ok(hash_password(&password))
}

/// Reads a secret (a client secret): asked once without echo on a terminal, else the first
/// line of standard input. An empty one is refused.
pub fn prompt_secret(prompt: &str) -> io::Result<String> {
    let secret = if io::stdin().is_terminal() {
        rpassword::prompt_password(prompt)?
    } else {
        read_line(io::stdin().lock())?
    };
    if secret.is_empty() {
        return Err(invalid("the secret is empty"));
    }
    Ok(secret)
}

/// Whether `password` matches `hash`; with no hash, checks the dummy hash (same cost) and
/// returns false. CPU-heavy: call it off the async runtime.
pub(super) fn verify(hash: Option<&PasswordHashString>, password: &str) -> bool {
    let real = hash.is_some();
    let hash = match hash {
        Some(hash) => hash.password_hash(),
        None => PasswordHash::new(DUMMY_HASH).expect("the dummy hash is a PHC string"),
    };
    let matched = Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok();
    release_freed_memory();
    real && matched
}

/// Whether `password` matches the PHC string `hash` (None, or not a PHC string: checks the
/// dummy hash and answers false). CPU-heavy: call it off the async runtime.
pub fn check(hash: Option<&str>, password: &str) -> bool {
    let parsed = hash.and_then(|h| PasswordHashString::new(h).ok());
    verify(parsed.as_ref(), password)
}

/// Hands the heap memory that is free back to the system. An argon2 check takes ~19 MiB and
/// frees it; glibc keeps such blocks in the freeing thread's arena once it has raised its
/// mmap threshold, so every blocking-pool thread that ran a check would hold 19 MiB for good.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of the heap; it has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// One line of `input` without its line ending; no line at all is an error.
fn read_line(mut input: impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Err(invalid("no password on standard input"));
    }
    let len = line.trim_end_matches(['\n', '\r']).len();
    line.truncate(len);
    Ok(line)
}

fn refuse_empty(password: &str) -> io::Result<()> {
    if password.is_empty() {
        return Err(invalid("the password is empty"));
    }
    Ok(())
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_use_argon2id() {
        let hash = hash_password("correct horse");
        assert!(hash.starts_with("$argon2id$v=19$"), "{hash}");
        assert_ne!(hash, hash_password("correct horse"), "salts are random");
        let parsed = PasswordHashString::new(&hash).unwrap();
        assert!(verify(Some(&parsed), "correct horse"));
        assert!(!verify(Some(&parsed), "correct horse "));
        assert!(!verify(None, "correct horse"));
    }

    #[test]
    fn dummy_hash_has_the_default_parameters() {
        let dummy = PasswordHash::new(DUMMY_HASH).unwrap();
        let fresh = hash_password("x");
        let fresh = PasswordHash::new(&fresh).unwrap();
        assert_eq!(dummy.algorithm, fresh.algorithm);
        assert_eq!(dummy.version, fresh.version);
        assert_eq!(dummy.params, fresh.params);
        assert_eq!(dummy.hash.map(|h| h.len()), fresh.hash.map(|h| h.len()));
    }

    #[test]
    fn reads_one_line() {
        assert_eq!(read_line(&b"s3cret\r\nnext\n"[..]).unwrap(), "s3cret");
        assert_eq!(read_line(&b"no newline"[..]).unwrap(), "no newline");
        assert_eq!(read_line(&b"\n"[..]).unwrap(), "");
        assert!(read_line(&b""[..]).is_err());
        assert!(refuse_empty("").is_err());
    }
}
