//! Failed-login locks, one policy for every protocol: after [`ATTEMPTS`] failed logins in a row
//! for one user from one address, that user is refused from that address (even with the right
//! password) until [`BLOCK`] has passed since the last failure. Other addresses and other users
//! are not affected, so a guesser cannot lock a partner out everywhere. A successful login
//! clears the count. IPv6 addresses count by /64: one host usually holds a whole /64, so a
//! guesser would otherwise get a fresh address per attempt.
//!
//! With a state store, the counts live there: every instance sharing the store sees them, and
//! a restart does not reset them. Each process also keeps its own table in memory, which
//! answers from this instance's own failures while the store does not; the store is pruned of streaks older than [`BLOCK`] now and then, the memory
//! table whenever it grows past [`PRUNE_AT`].

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::state::Store;

/// Failed logins in a row that lock a user/address pair.
pub const ATTEMPTS: u32 = 5;
/// How long a locked pair stays locked after its last failure.
pub const BLOCK: Duration = Duration::from_secs(300);
/// Table size above which expired entries are swept out.
const PRUNE_AT: usize = 10_000;
/// Failed logins between two prunings of the store.
const PRUNE_STORE_EVERY: u64 = 256;
/// How long a login waits for the store's answer before this instance's own count decides.
const STORE_WAIT: Duration = Duration::from_millis(500);

/// `call`, given up (as an error) after [`STORE_WAIT`].
async fn briefly<T>(
    call: impl std::future::Future<Output = crate::state::Result<T>>,
) -> crate::state::Result<T> {
    tokio::time::timeout(STORE_WAIT, call)
        .await
        .unwrap_or_else(|_| {
            Err(crate::state::Error::Database(
                "no answer within half a second".into(),
            ))
        })
}

#[derive(Debug, Default)]
pub struct Lockout {
    failures: DashMap<(String, IpNet), (u32, Instant)>,
    store: Option<Arc<Store>>,
    counted: AtomicU64,
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

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn block_ms() -> i64 {
    BLOCK.as_millis() as i64
}

impl Lockout {
    /// Counts kept in `store`, shared with every instance using it.
    pub fn shared(store: Arc<Store>) -> Lockout {
        Lockout {
            store: Some(store),
            ..Lockout::default()
        }
    }

    /// Whether `user` is locked out from `peer` right now.
    pub async fn locked(&self, user: &str, peer: IpAddr) -> bool {
        let addresses = group(peer);
        if let Some(store) = &self.store {
            match briefly(store.login_failures(user, &addresses.to_string())).await {
                Ok(found) => {
                    return found.is_some_and(|f| {
                        f.failures >= i64::from(ATTEMPTS) && now_ms() - f.last_ms < block_ms()
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %crate::logging::chain(&e), "login locks: the state store does not answer; this instance's own count decides")
                }
            }
        }
        self.failures
            .get(&(user.to_string(), addresses))
            .is_some_and(|entry| is_locked(*entry))
    }

    /// The pairs locked right now, by user then addresses: those in the store when there is
    /// one, else this process's own.
    pub async fn list(&self) -> Result<Vec<Locked>, crate::state::Error> {
        if let Some(store) = &self.store {
            let now = now_ms();
            let rows = store
                .lockouts(i64::from(ATTEMPTS), now - block_ms())
                .await?;
            return Ok(rows
                .into_iter()
                .filter_map(|f| {
                    Some(Locked {
                        addresses: f.addresses.parse().ok()?,
                        failures: u32::try_from(f.failures).unwrap_or(u32::MAX),
                        remaining_s: u64::try_from(block_ms() - (now - f.last_ms)).unwrap_or(0)
                            / 1000,
                        user: f.user,
                    })
                })
                .collect());
        }
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
        Ok(locked)
    }

    /// Ends the locks (and failure counts) of `user`, or of everyone; answers how many locks
    /// ended.
    pub async fn clear(&self, user: Option<&str>) -> Result<usize, crate::state::Error> {
        let mut ended = 0;
        self.failures.retain(|(name, _), entry| {
            let clear = user.is_none_or(|user| user == name);
            ended += usize::from(clear && is_locked(*entry));
            !clear
        });
        if let Some(store) = &self.store {
            let since = now_ms() - block_ms();
            ended = store
                .clear_lockouts(user)
                .await?
                .iter()
                .filter(|f| f.failures >= i64::from(ATTEMPTS) && f.last_ms >= since)
                .count();
        }
        if ended > 0 {
            tracing::info!(user = ?user, ended, "login locks cleared");
        }
        Ok(ended)
    }

    /// Counts a failed login; logs when it locks the pair and answers whether it did (true for
    /// one failure only: with a state store, for one instance only).
    pub async fn failed(&self, user: &str, peer: IpAddr) -> bool {
        if self.failures.len() > PRUNE_AT {
            self.failures.retain(|_, (_, last)| last.elapsed() < BLOCK);
        }
        let addresses = group(peer);
        let mut in_a_row = {
            let mut entry = self
                .failures
                .entry((user.to_string(), addresses))
                .or_insert((0, Instant::now()));
            if entry.1.elapsed() >= BLOCK {
                entry.0 = 0; // an old streak does not count
            }
            entry.0 += 1;
            entry.1 = Instant::now();
            i64::from(entry.0)
        };
        if let Some(store) = &self.store {
            let now = now_ms();
            match briefly(store.login_failed(user, &addresses.to_string(), now, now - block_ms()))
                .await
            {
                Ok(n) => in_a_row = n,
                Err(e) => {
                    tracing::warn!(error = %crate::logging::chain(&e), "login locks: the state store does not answer; the failure is counted by this instance only")
                }
            }
            if self
                .counted
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(PRUNE_STORE_EVERY)
                && let Err(e) = store.prune_lockouts(now - block_ms()).await
            {
                tracing::warn!(error = %crate::logging::chain(&e), "login locks: pruning the state store failed");
            }
        }
        let locked = in_a_row == i64::from(ATTEMPTS);
        if locked {
            tracing::warn!(user = ?user, %peer, attempts = ATTEMPTS, block_s = BLOCK.as_secs(),
                "login locked: too many failed logins for this user from this address");
        }
        locked
    }

    /// Clears the count after a successful login.
    pub async fn succeeded(&self, user: &str, peer: IpAddr) {
        let addresses = group(peer);
        self.failures.remove(&(user.to_string(), addresses));
        if let Some(store) = &self.store
            && let Err(e) = briefly(store.login_succeeded(user, &addresses.to_string())).await
        {
            tracing::warn!(error = %crate::logging::chain(&e), "login locks: the state store does not answer; the count there stays");
        }
    }
}

fn is_locked((failures, last): (u32, Instant)) -> bool {
    failures >= ATTEMPTS && last.elapsed() < BLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn five_failures_lock_that_user_from_that_address_only() {
        let lockout = Lockout::default();
        let (home, away): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "::1".parse().unwrap());
        for _ in 0..ATTEMPTS - 1 {
            lockout.failed("alice", home).await;
        }
        assert!(!lockout.locked("alice", home).await);
        lockout.failed("alice", home).await;
        assert!(lockout.locked("alice", home).await);
        // The same address written as IPv4-mapped IPv6 is the same address.
        assert!(
            lockout
                .locked("alice", "::ffff:10.0.0.1".parse().unwrap())
                .await
        );
        assert!(!lockout.locked("alice", away).await);
        assert!(!lockout.locked("bob", home).await);
    }

    #[tokio::test]
    async fn ipv6_addresses_count_by_64() {
        let lockout = Lockout::default();
        for host in 1..=ATTEMPTS {
            lockout
                .failed("alice", format!("2001:db8:1:2::{host}").parse().unwrap())
                .await;
        }
        assert!(
            lockout
                .locked("alice", "2001:db8:1:2:ffff::9".parse().unwrap())
                .await
        );
        assert!(
            !lockout
                .locked("alice", "2001:db8:1:3::1".parse().unwrap())
                .await
        );
        let listed = lockout.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].addresses.to_string(), "2001:db8:1:2::/64");
        assert_eq!(listed[0].failures, ATTEMPTS);
    }

    #[tokio::test]
    async fn clear_ends_one_users_locks_or_all() {
        let lockout = Lockout::default();
        let home: IpAddr = "10.0.0.1".parse().unwrap();
        for user in ["alice", "bob", "carol"] {
            for _ in 0..ATTEMPTS {
                lockout.failed(user, home).await;
            }
        }
        lockout.failed("dave", home).await; // counting, not locked
        assert_eq!(lockout.clear(Some("alice")).await.unwrap(), 1);
        assert!(!lockout.locked("alice", home).await);
        assert!(lockout.locked("bob", home).await);
        assert_eq!(lockout.clear(None).await.unwrap(), 2);
        assert!(lockout.list().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_success_clears_the_count() {
        let lockout = Lockout::default();
        let home: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..ATTEMPTS - 1 {
            lockout.failed("alice", home).await;
        }
        lockout.succeeded("alice", home).await;
        lockout.failed("alice", home).await;
        assert!(!lockout.locked("alice", home).await);
    }
}
