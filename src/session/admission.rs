//! Who may hold a connection or a session: the counts behind `[limits]`, for every front-end.
//!
//! A front-end asks [`Admission::admit`] right after accepting a connection (after a PROXY
//! header, with the client's address) and keeps the [`Ticket`] for the connection's life.
//! Over `max_connections` or `max_per_address` the connection is refused at once. Connections
//! that have not logged in yet are bounded by `max_unauthenticated`: when it is reached, the
//! oldest of them is cut (it has had the longest to log in) to make room, so idle connections
//! from many addresses cannot keep partners out. A login moves its ticket out of that count
//! ([`Ticket::logged_in`]); [`Admission::user_session`] bounds one user's sessions.
//!
//! The logged-in connections are listed ([`Admission::sessions`]) and can be closed one by one
//! or all of a user's ([`Admission::kick`], [`Admission::kick_user`]: a user disabled or deleted
//! while logged in), through the same `cut` token, with the reason kept for the log.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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
    /// Connections logged in, by ticket.
    live: BTreeMap<u64, Live>,
    next: u64,
    sessions: HashMap<String, usize>,
}

/// A logged-in connection.
struct Live {
    session: Session,
    cut: CancellationToken,
    why: Arc<OnceLock<String>>,
}

impl fmt::Debug for Live {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.session.fmt(f)
    }
}

/// A logged-in connection as the API lists it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Session {
    /// Its number, unique while the process runs.
    pub id: u64,
    pub user: String,
    /// `sftp` or `ftp`.
    pub protocol: &'static str,
    #[schema(value_type = String)]
    pub peer: IpAddr,
    /// When it logged in (RFC 3339, UTC).
    pub since: String,
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
    peer: IpAddr,
    group: IpNet,
    /// Cancelled when the connection must close: to make room for a newer one, or kicked
    /// ([`Ticket::kicked`] then says why).
    pub cut: CancellationToken,
    why: Arc<OnceLock<String>>,
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
            peer,
            group,
            cut,
            why: Arc::default(),
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

    /// The logged-in connections, oldest first.
    pub fn sessions(&self) -> Vec<Session> {
        let state = self.state.lock();
        state.live.values().map(|l| l.session.clone()).collect()
    }

    /// Closes session `id` for `why`: whether there was one.
    pub fn kick(&self, id: u64, why: &str) -> bool {
        let state = self.state.lock();
        let Some(live) = state.live.get(&id) else {
            return false;
        };
        let _ = live.why.set(why.to_string());
        live.cut.cancel();
        true
    }

    /// Closes every session of `user` for `why`: how many there were.
    pub fn kick_user(&self, user: &str, why: &str) -> usize {
        let state = self.state.lock();
        let mine: Vec<&Live> = state
            .live
            .values()
            .filter(|l| l.session.user == user)
            .collect();
        for live in &mine {
            let _ = live.why.set(why.to_string());
            live.cut.cancel();
        }
        mine.len()
    }

    /// Connections open, and how many of them have not logged in.
    pub fn counts(&self) -> (usize, usize) {
        let state = self.state.lock();
        (state.open, state.waiting.len())
    }
}

impl Ticket {
    /// The connection logged in as `user` over `protocol`: it no longer counts against
    /// `max_unauthenticated`, and it is listed among the sessions.
    pub fn logged_in(&self, user: &str, protocol: &'static str) {
        self.logged_in.store(true, Ordering::Relaxed);
        let mut state = self.admission.state.lock();
        state.waiting.remove(&self.id);
        let session = Session {
            id: self.id,
            user: user.to_string(),
            protocol,
            peer: self.peer.to_canonical(),
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let live = Live {
            session,
            cut: self.cut.clone(),
            why: self.why.clone(),
        };
        state.live.insert(self.id, live);
    }

    /// Why the connection was kicked, if it was (rather than cut to make room).
    pub fn kicked(&self) -> Option<&str> {
        self.why.get().map(String::as_str)
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
        state.live.remove(&self.id);
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
        first.logged_in("alice", "sftp");
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
        // Listed, and kicked with a reason.
        let sessions = admission.sessions();
        assert_eq!(sessions.len(), 1);
        assert_eq!(
            (sessions[0].user.as_str(), sessions[0].protocol),
            ("alice", "sftp")
        );
        assert_eq!(admission.kick_user("bob", "deleted"), 0);
        assert_eq!(admission.kick_user("alice", "the user was disabled"), 1);
        assert!(first.cut.is_cancelled());
        assert_eq!(first.kicked(), Some("the user was disabled"));
        assert!(waiting[1].kicked().is_none());
        drop(first);
        assert!(admission.sessions().is_empty());
        assert!(!admission.kick(0, "gone"));
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
