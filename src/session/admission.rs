//! Who may hold a connection or a session: the counts behind `[limits]`, for every front-end.
//!
//! A front-end asks [`Admission::admit`] right after accepting a connection (after a PROXY
//! header, with the client's address) and keeps the [`Ticket`] for the connection's life.
//! Over `max_connections` or `max_per_address` the connection is refused at once. Connections
//! that have not logged in yet are bounded by `max_unauthenticated`: when it is reached, the
//! oldest of them is cut (it has had the longest to log in) to make room, so idle connections
//! from many addresses cannot keep partners out. A login moves its ticket out of that count
//! ([`Ticket::logged_in`]); [`Admission::user_session`] bounds one user's sessions.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::IpNet;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

use crate::config::ClientLimits;
use crate::users::lockout::group;

/// The counts, shared by every listener and kept across configuration reloads.
#[derive(Debug, Default)]
pub struct Admission {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    open: usize,
    by_address: HashMap<IpNet, usize>,
    /// Connections not logged in yet, oldest first, with the token that cuts each.
    waiting: BTreeMap<u64, CancellationToken>,
    next: u64,
    sessions: HashMap<String, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// `max_connections` are open.
    Connections,
    /// `max_per_address` are open from this address.
    Address,
}

impl Full {
    /// The label of `spgate_connections_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Full::Connections => "max_connections",
            Full::Address => "max_per_address",
        }
    }
}

impl fmt::Display for Full {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    group: IpNet,
    /// Cancelled when the connection must close to make room for a newer one.
    pub cut: CancellationToken,
    logged_in: AtomicBool,
}

/// One user's session, counted until dropped.
#[derive(Debug)]
pub struct UserSession {
    admission: Arc<Admission>,
    user: String,
}

impl Admission {
    /// A place for a connection from `peer`, or why there is none.
    pub fn admit(self: &Arc<Self>, limits: &ClientLimits, peer: IpAddr) -> Result<Ticket, Full> {
        let group = group(peer);
        let mut state = self.state.lock();
        if state.open >= limits.max_connections {
            return Err(Full::Connections);
        }
        let from_here = state.by_address.get(&group).copied().unwrap_or(0);
        if from_here >= limits.max_per_address {
            return Err(Full::Address);
        }
        while state.waiting.len() >= limits.max_unauthenticated {
            let Some((_, oldest)) = state.waiting.pop_first() else {
                break;
            };
            oldest.cancel();
        }
        state.open += 1;
        *state.by_address.entry(group).or_default() += 1;
        let id = state.next;
        state.next += 1;
        let cut = CancellationToken::new();
        state.waiting.insert(id, cut.clone());
        Ok(Ticket {
            admission: self.clone(),
            id,
            group,
            cut,
            logged_in: AtomicBool::new(false),
        })
    }

    /// A session of `user`, unless `max_sessions_per_user` of theirs are open.
    pub fn user_session(
        self: &Arc<Self>,
        limits: &ClientLimits,
        user: &str,
    ) -> Option<UserSession> {
        let mut state = self.state.lock();
        let open = state.sessions.entry(user.to_string()).or_default();
        if limits.max_sessions_per_user > 0 && *open >= limits.max_sessions_per_user {
            return None;
        }
        *open += 1;
        Some(UserSession {
            admission: self.clone(),
            user: user.to_string(),
        })
    }

    /// Connections open, and how many of them have not logged in.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.open, state.waiting.len())
    }
}

impl Ticket {
    /// The connection logged in: it no longer counts against `max_unauthenticated`.
    pub fn logged_in(&self) {
        self.logged_in.store(true, Ordering::Relaxed);
        self.admission.state.lock().waiting.remove(&self.id);
    }

    /// Whether [`Ticket::logged_in`] was called (a login grace time is over for it).
    pub fn has_logged_in(&self) -> bool {
        self.logged_in.load(Ordering::Relaxed)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut state = self.admission.state.lock();
        state.open -= 1;
        state.waiting.remove(&self.id);
        release(&mut state.by_address, &self.group);
    }
}

impl Drop for UserSession {
    fn drop(&mut self) {
        release(&mut self.admission.state.lock().sessions, &self.user);
    }
}

/// Takes one off `key`'s count, forgetting the key at zero.
fn release<K: Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ClientLimits {
        ClientLimits {
            max_connections: 5,
            max_per_address: 3,
            max_unauthenticated: 4,
            max_sessions_per_user: 2,
            ..ClientLimits::default()
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn connections_are_bounded_in_all_and_per_address() {
        let admission = Arc::new(Admission::default());
        let limits = ClientLimits {
            max_unauthenticated: 100,
            ..limits()
        };
        let mut held: Vec<Ticket> = (0..3)
            .map(|_| admission.admit(&limits, ip("10.0.0.1")).unwrap())
            .collect();
        assert_eq!(
            admission.admit(&limits, ip("10.0.0.1")).unwrap_err(),
            Full::Address
        );
        // An IPv6 /64 is one address.
        held.push(admission.admit(&limits, ip("2001:db8::1")).unwrap());
        held.push(admission.admit(&limits, ip("2001:db8::2")).unwrap());
        assert_eq!(
            admission.admit(&limits, ip("10.0.0.2")).unwrap_err(),
            Full::Connections
        );
        held.remove(0);
        assert!(admission.admit(&limits, ip("10.0.0.1")).is_ok());
        drop(held);
        assert_eq!(admission.counts(), (0, 0));
    }

    #[test]
    fn the_oldest_connection_not_logged_in_makes_room() {
        let admission = Arc::new(Admission::default());
        let limits = ClientLimits {
            max_connections: 100,
            max_per_address: 100,
            ..limits()
        };
        let first = admission.admit(&limits, ip("10.0.0.1")).unwrap();
        first.logged_in();
        let waiting: Vec<Ticket> = (0..4)
            .map(|_| admission.admit(&limits, ip("10.0.0.1")).unwrap())
            .collect();
        assert!(waiting.iter().all(|t| !t.cut.is_cancelled()));
        let newest = admission.admit(&limits, ip("10.0.0.1")).unwrap();
        assert!(
            waiting[0].cut.is_cancelled(),
            "the oldest waiting one is cut"
        );
        assert!(waiting[1..].iter().all(|t| !t.cut.is_cancelled()));
        assert!(!first.cut.is_cancelled(), "a logged-in one is never cut");
        assert!(!newest.cut.is_cancelled());
        assert_eq!(admission.counts(), (6, 4));
    }

    #[test]
    fn sessions_per_user() {
        let admission = Arc::new(Admission::default());
        let a = admission.user_session(&limits(), "alice").unwrap();
        let _b = admission.user_session(&limits(), "alice").unwrap();
        assert!(admission.user_session(&limits(), "alice").is_none());
        assert!(admission.user_session(&limits(), "bob").is_some());
        drop(a);
        assert!(admission.user_session(&limits(), "alice").is_some());
        let unlimited = ClientLimits::default();
        let many: Vec<_> = (0..50)
            .map(|_| admission.user_session(&unlimited, "carol").unwrap())
            .collect();
        assert_eq!(many.len(), 50);
    }
}
