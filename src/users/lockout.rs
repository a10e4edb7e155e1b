//! Failed-login locks, one policy for every protocol: after [`ATTEMPTS`] failed logins in a row
//! for one user from one address, that user is refused from that address (even with the right
//! password) until [`BLOCK`] has passed since the last failure. Other addresses and other users
//! are not affected, so a guesser cannot lock a partner out everywhere. A successful login
//! clears the count. IPv6 addresses count by /64: one host usually holds a whole /64, so a
//! guesser would otherwise get a fresh address per attempt.
//!
//! The table lives for the whole process (it survives configuration reloads) and stays small:
//! entries older than [`BLOCK`] are dropped whenever it grows past [`PRUNE_AT`].

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Failed logins in a row that lock a user/address pair.
pub const ATTEMPTS: u32 = 5;
/// How long a locked pair stays locked after its last failure.
pub const BLOCK: Duration = Duration::from_secs(300);
/// Table size above which expired entries are swept out.
const PRUNE_AT: usize = 10_000;

#[derive(Debug, Default)]
pub struct Lockout {
    failures: DashMap<(String, IpNet), (u32, Instant)>,
}

/// A user locked out from some addresses, as [`Lockout::list`] shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Locked {
    pub user: String,
    /// One IPv4 address (`/32`) or an IPv6 `/64`.
    pub addresses: IpNet,
    pub failures: u32,
    /// Seconds until the lock ends (unless another failure extends it).
    pub remaining_s: u64,
}

/// The addresses `peer` counts with: itself for IPv4 (also written as IPv4-mapped IPv6), its
/// /64 for IPv6.
pub fn group(peer: IpAddr) -> IpNet {
    match peer.to_canonical() {
        IpAddr::V4(v4) => Ipv4Net::from(v4).into(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .expect("64 is a valid IPv6 prefix length")
            .trunc()
            .into(),
    }
}

impl Lockout {
    /// Whether `user` is locked out from `peer` right now.
    pub fn locked(&self, user: &str, peer: IpAddr) -> bool {
        self.failures
            .get(&(user.to_string(), group(peer)))
            .is_some_and(|entry| is_locked(*entry))
    }

    /// The pairs locked right now, by user then addresses.
    pub fn list(&self) -> Vec<Locked> {
        let mut locked: Vec<Locked> = self
            .failures
            .iter()
            .filter(|entry| is_locked(*entry.value()))
            .map(|entry| Locked {
                user: entry.key().0.clone(),
                addresses: entry.key().1,
                failures: entry.value().0,
                remaining_s: BLOCK.saturating_sub(entry.value().1.elapsed()).as_secs(),
            })
            .collect();
        locked.sort_by(|a, b| (&a.user, a.addresses).cmp(&(&b.user, b.addresses)));
        locked
    }

    /// Ends the locks (and failure counts) of `user`, or of everyone; answers how many locks
    /// ended.
    pub fn clear(&self, user: Option<&str>) -> usize {
        let mut ended = 0;
        self.failures.retain(|(name, _), entry| {
            let clear = user.is_none_or(|user| user == name);
            ended += usize::from(clear && is_locked(*entry));
            !clear
        });
        if ended > 0 {
            tracing::info!(user = ?user, ended, "login locks cleared");
        }
        ended
    }

    /// Counts a failed login; logs when it locks the pair.
    pub fn failed(&self, user: &str, peer: IpAddr) {
        if self.failures.len() > PRUNE_AT {
            self.failures.retain(|_, (_, last)| last.elapsed() < BLOCK);
        }
        let mut entry = self
            .failures
            .entry((user.to_string(), group(peer)))
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
        self.failures.remove(&(user.to_string(), group(peer)));
    }
}

fn is_locked((failures, last): (u32, Instant)) -> bool {
    failures >= ATTEMPTS && last.elapsed() < BLOCK
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
    fn ipv6_addresses_count_by_64() {
        let lockout = Lockout::default();
        for host in 1..=ATTEMPTS {
            lockout.failed("alice", format!("2001:db8:1:2::{host}").parse().unwrap());
        }
        assert!(lockout.locked("alice", "2001:db8:1:2:ffff::9".parse().unwrap()));
        assert!(!lockout.locked("alice", "2001:db8:1:3::1".parse().unwrap()));
        let listed = lockout.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].addresses.to_string(), "2001:db8:1:2::/64");
        assert_eq!(listed[0].failures, ATTEMPTS);
    }

    #[test]
    fn clear_ends_one_users_locks_or_all() {
        let lockout = Lockout::default();
        let home: IpAddr = "10.0.0.1".parse().unwrap();
        for user in ["alice", "bob", "carol"] {
            for _ in 0..ATTEMPTS {
                lockout.failed(user, home);
            }
        }
        lockout.failed("dave", home); // counting, not locked
        assert_eq!(lockout.clear(Some("alice")), 1);
        assert!(!lockout.locked("alice", home));
        assert!(lockout.locked("bob", home));
        assert_eq!(lockout.clear(None), 2);
        assert!(lockout.list().is_empty());
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
