//! Whether an FTP session's control connection is still open, so that an upload is committed
//! only while its client is there.
//!
//! FTP marks the end of an upload by closing the data connection, and a client killed in the
//! middle of a `STOR` closes it just the same: the kernel sends FIN for it. Plain FTP cannot
//! tell the two apart on the data connection; what differs is the control connection, which a
//! killed client closes too. libunftp 0.24 hands the storage adapter the data connection only,
//! so spgate identifies the control connection by its TCP socket:
//!
//! - spgate's own accept loop ([`super::accept`]) knows it: [`Control::of`] the accepted socket.
//! - In PROXY protocol mode libunftp accepts, and creates each session's storage adapter in its
//!   accept loop, one connection at a time, right after accepting it. At that moment the newly
//!   accepted socket is the only control socket of the listening port (`/proc/self/net/tcp*`,
//!   local port = the FTP port, attached to a file: inode not 0) that no session has claimed:
//!   [`Controls::claim`] takes its inode. Sockets still in the kernel's accept queue have no
//!   inode yet.
//! - [`Control::is_open`] looks at the socket again before a commit: through a duplicate of
//!   this process's descriptor for it (`pidfd_getfd` on ourselves, checked to be that socket),
//!   open means no `POLLRDHUP`/`POLLHUP`/`POLLERR`; the client's FIN, the descriptor gone
//!   (libunftp closed it) or any error means the client left, and the upload is dropped. Where
//!   `pidfd_getfd` is refused (old kernels, seccomp), its TCP state is read again from
//!   `/proc/self/net/tcp*` (`ESTABLISHED` or not), which costs a scan of every socket.
//!
//! Where the socket cannot be told (not Linux, several unclaimed sockets at once), a session
//! has no [`Control`] and its uploads are committed at the data connection's end, as before.
//!
//! A claimed socket is also set `TCP_NODELAY` ([`Control::no_delay`]; spgate's own accept loop
//! sets it directly): libunftp leaves Nagle on, so after a `150` the client has not
//! acknowledged yet (it is busy on the data connection; Linux delays that acknowledgement by
//! 40 ms), the `226` waited for it, and every small upload took 50 ms.

use std::collections::HashSet;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::OnceLock;

use parking_lot::Mutex;
use rustix::event::{PollFd, PollFlags};
use rustix::process::{PidfdFlags, PidfdGetfdFlags};

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
    /// This process's descriptor for it, when it was found.
    fd: Option<i32>,
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
                    fd: descriptor_of(socket.inode),
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
    /// The control connection on `socket`, accepted by spgate itself.
    pub fn of(socket: &tokio::net::TcpStream) -> std::io::Result<Control> {
        let stat = rustix::fs::fstat(socket)?;
        Ok(Control {
            inode: stat.st_ino,
            fd: Some(socket.as_raw_fd()),
        })
    }

    /// Turns Nagle's algorithm off on the control socket, so that replies go out at once. The
    /// socket is reached through a duplicate of this process's descriptor for it
    /// (`pidfd_getfd` on ourselves), checked to be that socket; where that is refused (old
    /// kernels, seccomp), replies are only slower.
    pub fn no_delay(&self) {
        if let Err(e) = self.try_no_delay() {
            tracing::debug!(error = %crate::logging::chain(&e), "FTP control socket: TCP_NODELAY not set");
        }
    }

    fn try_no_delay(&self) -> std::io::Result<()> {
        let socket = self
            .socket()?
            .ok_or_else(|| std::io::Error::other("the socket is gone"))?;
        rustix::net::sockopt::set_tcp_nodelay(&socket, true)?;
        Ok(())
    }

    /// A duplicate of this process's descriptor for the socket; `None` when that descriptor
    /// is closed (or now names something else); an error when it cannot be asked for.
    fn socket(&self) -> std::io::Result<Option<OwnedFd>> {
        let fd = self
            .fd
            .ok_or_else(|| std::io::Error::other("no descriptor for the socket"))?;
        let me = own_pidfd().ok_or_else(|| std::io::Error::other("pidfd_open refused"))?;
        let socket = match rustix::process::pidfd_getfd(me, fd, PidfdGetfdFlags::empty()) {
            Ok(socket) => socket,
            Err(rustix::io::Errno::BADF) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // The descriptor may have been closed and reused: only that socket will do.
        let stat = rustix::fs::fstat(&socket)?;
        let is_it = rustix::fs::FileType::from_raw_mode(stat.st_mode)
            == rustix::fs::FileType::Socket
            && stat.st_ino == self.inode;
        Ok(is_it.then_some(socket))
    }

    /// Whether the control connection is still open (the client has not closed it).
    pub fn is_open(&self) -> bool {
        match self
            .socket()
            .and_then(|s| s.as_ref().map(peer_open).transpose())
        {
            Ok(Some(open)) => open,
            Ok(None) => false,
            Err(_) => sockets()
                .iter()
                .any(|s| s.inode == self.inode && s.state == ESTABLISHED),
        }
    }
}

/// Whether the peer of `socket` has neither closed its side (FIN) nor reset the connection.
fn peer_open(socket: &OwnedFd) -> std::io::Result<bool> {
    let mut fds = [PollFd::new(socket, PollFlags::RDHUP)];
    let now = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&now))?;
    let gone = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
    Ok(!fds[0].revents().intersects(gone))
}

/// This process's descriptor for the socket `inode`, if it has one.
fn descriptor_of(inode: u64) -> Option<i32> {
    let link = format!("socket:[{inode}]");
    std::fs::read_dir("/proc/self/fd")
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| std::fs::read_link(e.path()).is_ok_and(|l| l.as_os_str() == link.as_str()))
        .and_then(|e| e.file_name().to_str()?.parse().ok())
}

/// A pidfd for this process, opened once; `None` where the kernel refuses it.
fn own_pidfd() -> Option<&'static OwnedFd> {
    static PIDFD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    PIDFD
        .get_or_init(|| {
            rustix::process::pidfd_open(rustix::process::getpid(), PidfdFlags::empty()).ok()
        })
        .as_ref()
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
        let (server, _) = listener.accept().unwrap();
        let control = controls.claim().expect("the accepted socket");
        assert!(control.is_open());
        assert!(
            control.socket().expect("pidfd_getfd").is_some(),
            "seen through its own descriptor"
        );
        // Without the descriptor, the TCP state is read from /proc.
        let by_proc = Control {
            fd: None,
            ..control
        };
        assert!(by_proc.is_open());
        assert!(!server.nodelay().unwrap());
        control.try_no_delay().expect("TCP_NODELAY set");
        assert!(
            server.nodelay().unwrap(),
            "set on the accepted socket itself"
        );
        assert!(controls.claim().is_none(), "claimed once");
        drop(client);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while control.is_open() || by_proc.is_open() {
            assert!(
                std::time::Instant::now() < deadline,
                "the close was not seen"
            );
            std::thread::yield_now();
        }
        drop(server);
        assert!(matches!(control.socket(), Ok(None)), "closed: gone");
        assert!(!control.is_open());
    }
}
