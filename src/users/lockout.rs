//! Failed-login locks for SFTP, the same policy libunftp applies to FTP: after [`ATTEMPTS`]
//! failed logins in a row for one user from one address, that user is refused from that
//! address (even with the right password) until [`BLOCK`] has passed since the last failure.
//! Other addresses and other users are not affected, so a guesser cannot lock a partner out
//! everywhere. A successful login clears the count.
//!
//! The table lives for the whole process (it survives configuration reloads) and stays small:
//! entries older than [`BLOCK`] are dropped whenever it grows past [`PRUNE_AT`].

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// Failed logins in a row that lock a user/address pair.
pub const ATTEMPTS: u32 = 5;
/// How long a locked pair stays locked after its last failure.
pub const BLOCK: Duration = Duration::from_secs(300);
/// Table size above which expired entries are swept out.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Default)]
pub struct Lockout {
    failures: DashMap<(String, IpAddr), (u32, Instant)>,
}

impl Lockout {
    /// Whether `user` is locked out from `peer` right now.
    pub fn locked(&self, user: &str, peer: IpAddr) -> bool {
        self.failures
            .get(&(user.to_string(), peer.to_canonical()))
            .is_some_and(|entry| entry.0 >= ATTEMPTS && entry.1.elapsed() < BLOCK)
    }

    /// Counts a failed login; logs when it locks the pair.
    pub fn failed(&self, user: &str, peer: IpAddr) {
        if self.failures.len() > PRUNE_AT {
            self.failures.retain(|_, (_, last)| last.elapsed() < BLOCK);
        }
        let mut entry = self
            .failures
            .entry((user.to_string(), peer.to_canonical()))
            .or_insert((0, Instant::now()));
        if entry.1.elapsed() >= BLOCK {
            entry.0 = 0; // an old streak does not count
        }
        entry.0 += 1;
        entry.1 = Instant::now();
        if entry.0 == ATTEMPTS {
            tracing::warn!(user = ?user, %peer, attempts = ATTEMPTS, block_s = BLOCK.as_secs(),
                "login locked: too many failed logins for this user from this address");
        }
    }

    /// Clears the count after a successful login.
    pub fn succeeded(&self, user: &str, peer: IpAddr) {
        self.failures
            .remove(&(user.to_string(), peer.to_canonical()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_failures_lock_that_user_from_that_address_only() {
        let lockout = Lockout::default();
        let (home, away): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        for _ in 0..ATTEMPTS - 1 {
            lockout.failed("alice", home);
        }
        assert!(!lockout.locked("alice", home));
        lockout.failed("alice", home);
        assert!(lockout.locked("alice", home));
        // The same address written as IPv4-mapped IPv6 is the same address.
        assert!(lockout.locked("alice", "::ffff:10.0.0.1".parse().unwrap()));
        assert!(!lockout.locked("alice", away));
        assert!(!lockout.locked("bob", home));
    }

    #[test]
    fn a_success_clears_the_count() {
        let lockout = Lockout::default();
        let home: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..ATTEMPTS - 1 {
            lockout.failed("alice", home);
        }
        lockout.succeeded("alice", home);
        lockout.failed("alice", home);
        assert!(!lockout.locked("alice", home));
    }
}
