//! Whether an FTP session's control connection is still open, so that an upload is committed
//! only while its client is there.
//!
//! FTP marks the end of an upload by closing the data connection, and a client killed in the
//! middle of a `STOR` closes it just the same: the kernel sends FIN for it. Plain FTP cannot
//! tell the two apart on the data connection; what differs is the control connection, which a
//! killed client closes too. libunftp 0.24 hands the storage adapter the data connection only,
//! so spgate identifies the control connection by its TCP socket:
//!
//! - libunftp creates each session's storage adapter in its accept loop, one connection at a
//!   time, right after accepting it. At that moment the newly accepted socket is the only
//!   control socket of the listening port (`/proc/self/net/tcp*`, local port = the FTP port,
//!   attached to a file: inode not 0) that no session has claimed: [`Controls::claim`] takes
//!   its inode. Sockets still in the kernel's accept queue have no inode yet.
//! - [`Control::is_open`] reads the socket's TCP state again before a commit: open means
//!   `ESTABLISHED`; `CLOSE_WAIT` (the client sent FIN), gone (libunftp closed it) or anything
//!   else means the client left, and the upload is dropped.
//!
//! Where the socket cannot be told (not Linux, several unclaimed sockets at once), a session
//! has no [`Control`] and its uploads are committed at the data connection's end, as before.

use std::collections::HashSet;

use parking_lot::Mutex;

/// `/proc/net/tcp` state codes.
const ESTABLISHED: u8 = 0x01;
const LISTEN: u8 = 0x0A;

/// The control sockets of one FTP listening port, and which sessions claimed them.
pub struct Controls {
    port: u16,
    claimed: Mutex<HashSet<u64>>,
}

/// One session's control socket.
#[derive(Debug, Clone, Copy)]
pub struct Control {
    inode: u64,
}

/// One line of `/proc/net/tcp*`: a socket's local port, state and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Socket {
    port: u16,
    state: u8,
    inode: u64,
}

impl Controls {
    pub fn new(port: u16) -> Controls {
        Controls {
            port,
            claimed: Mutex::new(HashSet::new()),
        }
    }

    /// The control connection accepted last: the one socket of the port not claimed yet.
    /// Call it where libunftp creates a session's storage adapter, and nowhere else.
    pub fn claim(&self) -> Option<Control> {
        let sockets: Vec<Socket> = sockets()
            .into_iter()
            .filter(|s| s.port == self.port && s.state != LISTEN && s.inode != 0)
            .collect();
        let mut claimed = self.claimed.lock();
        claimed.retain(|inode| sockets.iter().any(|s| s.inode == *inode));
        let mut unclaimed = sockets.iter().filter(|s| !claimed.contains(&s.inode));
        match (unclaimed.next(), unclaimed.next()) {
            (Some(socket), None) => {
                claimed.insert(socket.inode);
                Some(Control {
                    inode: socket.inode,
                })
            }
            (None, _) => None,
            (Some(_), Some(_)) => {
                tracing::debug!(
                    port = self.port,
                    "several unclaimed FTP control sockets: this session's is not known"
                );
                None
            }
        }
    }
}

impl Control {
    /// Whether the control connection is still established (the client has not closed it).
    pub fn is_open(&self) -> bool {
        sockets()
            .iter()
            .any(|s| s.inode == self.inode && s.state == ESTABLISHED)
    }
}

/// Every TCP socket of this network namespace (IPv4 and IPv6); empty where `/proc` is missing.
fn sockets() -> Vec<Socket> {
    ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .flat_map(|text| text.lines().skip(1).filter_map(parse).collect::<Vec<_>>())
        .collect()
}

/// `sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...`, addresses as
/// `HEX_IP:HEX_PORT`.
fn parse(line: &str) -> Option<Socket> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local = fields.get(1)?;
    let port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
    let state = u8::from_str_radix(fields.get(3)?, 16).ok()?;
    let inode = fields.get(9)?.parse().ok()?;
    Some(Socket { port, state, inode })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_lines_are_read() {
        let line = "   3: 0100007F:0885 0100007F:D2A4 01 00000000:00000000 00:00000000 \
                    00000000     0        0 123456 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(
            parse(line),
            Some(Socket {
                port: 0x0885,
                state: ESTABLISHED,
                inode: 123456
            })
        );
        let v6 = "  0: 00000000000000000000000001000000:0885 00000000000000000000000000000000:0000 \
                  0A 00000000:00000000 00:00000000 00000000     0        0 42 1 0 100 0 0 10 0";
        assert_eq!(parse(v6).map(|s| (s.port, s.state)), Some((0x0885, LISTEN)));
        assert_eq!(parse("garbage"), None);
    }

    /// A real listener: the accepted socket is claimed once; closed by the client, it is
    /// no longer open.
    #[test]
    fn the_accepted_socket_is_claimed_and_its_close_seen() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let controls = Controls::new(listener.local_addr().unwrap().port());
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, _) = listener.accept().unwrap();
        let control = controls.claim().expect("the accepted socket");
        assert!(control.is_open());
        assert!(controls.claim().is_none(), "claimed once");
        drop(client);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while control.is_open() {
            assert!(
                std::time::Instant::now() < deadline,
                "the close was not seen"
            );
            std::thread::yield_now();
        }
    }
}
