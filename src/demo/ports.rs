//! Where a demo listener goes: the address asked for, or, when something else holds it, a free
//! port on the same IP (the banner says which).

use std::net::{SocketAddr, TcpListener};

use super::Error;

/// The address a listener binds, and the one it was asked for when that was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// What binds: the address asked for, or port 0 of its IP (the system picks a free port).
    pub listen: SocketAddr,
    /// The address asked for, when it was taken.
    pub taken: Option<SocketAddr>,
}

/// Tries `wanted` for `what` (e.g. `SFTP`): free, it is kept as asked (port 0 included); taken,
/// a free port of the same IP replaces it. The trial listener is closed before this returns:
/// the server binds the address right after.
pub fn choose(what: &str, wanted: SocketAddr) -> Result<Choice, Error> {
    match TcpListener::bind(wanted) {
        Ok(_) => Ok(Choice {
            listen: wanted,
            taken: None,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Ok(Choice {
            listen: SocketAddr::new(wanted.ip(), 0),
            taken: Some(wanted),
        }),
        Err(source) => Err(Error::Io {
            what: format!("binding {what} on {wanted}"),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_address_is_kept_and_a_taken_one_becomes_a_free_port() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let taken = held.local_addr().unwrap();
        let choice = choose("SFTP", taken).unwrap();
        assert_eq!(choice.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(choice.taken, Some(taken));
        drop(held);
        let choice = choose("SFTP", taken).unwrap();
        assert_eq!(choice.listen, taken);
        assert_eq!(choice.taken, None);
    }
}
