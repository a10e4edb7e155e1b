//! What `spgate demo` prints once every listener is bound: how to connect with each protocol,
//! the credentials, where the console, metrics, audit log and configuration are, and how to
//! make the simulated SharePoint fail to see an alert (and clear it).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use parking_lot::Mutex;

use super::PASSWORD;

/// Where a listener is, and the address it was asked for when that was taken.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub at: SocketAddr,
    pub taken: Option<SocketAddr>,
}

/// The facts the banner shows.
#[derive(Debug, Clone)]
pub struct Banner {
    /// The temporary directory holding everything.
    pub dir: PathBuf,
    pub config: PathBuf,
    pub audit: PathBuf,
    /// The simulated SharePoint.
    pub sim: Bound,
    pub sftp: Bound,
    pub ftp: Bound,
    pub admin: Bound,
}

impl Banner {
    /// The text, lines ending in `\n`.
    pub fn text(&self) -> String {
        let mut out = String::new();
        self.write(&mut out).expect("writing to a String");
        out
    }

    fn write(&self, out: &mut String) -> std::fmt::Result {
        let (sftp, ftp) = (reachable(self.sftp.at), reachable(self.ftp.at));
        let sim = format!("http://{}", reachable(self.sim.at));
        let admin = format!("http://{}", reachable(self.admin.at));
        writeln!(
            out,
            "spgate demo is ready. Its configuration, state, audit log and simulated library are in\n{} and go away when it stops.",
            self.dir.display()
        )?;
        for (what, bound) in [
            ("the simulated SharePoint", self.sim),
            ("SFTP", self.sftp),
            ("FTP", self.ftp),
            ("the admin endpoint", self.admin),
        ] {
            if let Some(taken) = bound.taken {
                writeln!(
                    out,
                    "note: {taken} is taken, so {what} listens on a free port instead: {}",
                    bound.at
                )?;
            }
        }
        writeln!(
            out,
            "\nPartner: user demo, password {PASSWORD}. / is the SharePoint library Documents of site partners\n\
             (folders Inbound, Outbound); /local is a folder on this host."
        )?;
        writeln!(
            out,
            "  SFTP           sftp -P {} demo@{}",
            sftp.port(),
            host(sftp.ip())
        )?;
        writeln!(
            out,
            "  FTP            lftp -u demo,{PASSWORD} -p {} {}",
            ftp.port(),
            host(ftp.ip())
        )?;
        writeln!(out, "                 curl ftp://demo:{PASSWORD}@{ftp}/")?;
        writeln!(
            out,
            "                 (plain FTP, passive mode; FileZilla: host {}, port {}, plain FTP)",
            host(ftp.ip()),
            ftp.port()
        )?;
        writeln!(out, "\nAdministrator: user admin, password {PASSWORD}.")?;
        writeln!(out, "  console        {admin}/console/")?;
        writeln!(out, "  metrics        {admin}/metrics")?;
        writeln!(out, "  readiness      {admin}/readyz")?;
        writeln!(
            out,
            "  admin API      {admin}/api/v1/alerts  (no token on loopback)"
        )?;
        writeln!(out, "  audit log      {}", self.audit.display())?;
        writeln!(
            out,
            "  configuration  {}  (spgate users|connections|alerts --config FILE)",
            self.config.display()
        )?;
        writeln!(
            out,
            "\nSimulated SharePoint: {sim} (Graph API under /v1.0)\n\
             \x20 tenant contoso, app spgate-demo with secret demo-secret, site contoso.sharepoint.com/sites/partners\n\
             \x20 \"Sign in with Microsoft\" in the console: svc.spgate@contoso.onmicrosoft.com, password demo-password"
        )?;
        writeln!(
            out,
            "\nSee an alert: make SharePoint refuse spgate's app (secret revoked, current token expired):\n\
             \x20 curl -X POST {sim}/_sim/apps/spgate-demo/revoke\n\
             \x20 curl -X POST {sim}/_sim/tokens/expire\n\
             then list / with sftp or FTP: it fails, connection demo is disabled, the console shows the\n\
             alert and {admin}/readyz answers 503 with the reason.\n\
             Clear it: give the app its secret back, then enable the connection again (console:\n\
             Connections > demo > Enable and test; or the admin API):\n\
             \x20 curl -X POST {sim}/_sim/apps/spgate-demo/restore\n\
             \x20 curl -X POST {admin}/api/v1/connections/demo/enable"
        )?;
        writeln!(out, "\nCtrl-C stops the demo.")
    }
}

/// The banner, printed once the gateway has bound SFTP, FTP and the admin endpoint.
pub struct Collector {
    state: Mutex<(Banner, Vec<&'static str>)>,
}

impl Collector {
    pub fn new(banner: Banner) -> Collector {
        Collector {
            state: Mutex::new((banner, vec!["sftp", "ftp", "admin"])),
        }
    }

    /// Records that `protocol`'s listener is bound at `address`; answers the banner's text
    /// once the last one is.
    pub fn bound(&self, protocol: &str, address: SocketAddr) -> Option<String> {
        let mut state = self.state.lock();
        let (banner, pending) = &mut *state;
        let bound = match protocol {
            "sftp" => &mut banner.sftp,
            "ftp" => &mut banner.ftp,
            "admin" => &mut banner.admin,
            _ => return None,
        };
        bound.at = address;
        let before = pending.len();
        pending.retain(|p| *p != protocol);
        (pending.is_empty() && before > 0).then(|| banner.text())
    }
}

/// The address a client on this host uses for a listener at `address` (a wildcard address
/// becomes loopback).
fn reachable(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, address.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, address.port()).into(),
        _ => address,
    }
}

/// `ip` as a command line's host: IPv6 in brackets.
fn host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(at: &str) -> Bound {
        Bound {
            at: at.parse().unwrap(),
            taken: None,
        }
    }

    fn banner() -> Banner {
        Banner {
            dir: "/tmp/spgate-demo-x".into(),
            config: "/tmp/spgate-demo-x/spgate.toml".into(),
            audit: "/tmp/spgate-demo-x/state/audit.jsonl".into(),
            sim: bound("127.0.0.1:8080"),
            sftp: bound("127.0.0.1:0"),
            ftp: bound("0.0.0.0:0"),
            admin: bound("127.0.0.1:0"),
        }
    }

    #[test]
    fn the_banner_comes_once_every_listener_is_bound_with_their_addresses() {
        let collector = Collector::new(banner());
        assert_eq!(
            collector.bound("sftp", "127.0.0.1:2222".parse().unwrap()),
            None
        );
        assert_eq!(
            collector.bound("ftp", "0.0.0.0:2121".parse().unwrap()),
            None
        );
        let text = collector
            .bound("admin", "127.0.0.1:9090".parse().unwrap())
            .expect("all bound");
        for line in [
            "sftp -P 2222 demo@127.0.0.1\n",
            "lftp -u demo,demo -p 2121 127.0.0.1\n",
            "curl ftp://demo:demo@127.0.0.1:2121/\n",
            "http://127.0.0.1:9090/console/\n",
            "http://127.0.0.1:9090/metrics\n",
            "audit log      /tmp/spgate-demo-x/state/audit.jsonl\n",
            "  curl -X POST http://127.0.0.1:8080/_sim/apps/spgate-demo/revoke\n",
            "  curl -X POST http://127.0.0.1:8080/_sim/tokens/expire\n",
            "  curl -X POST http://127.0.0.1:8080/_sim/apps/spgate-demo/restore\n",
            "  curl -X POST http://127.0.0.1:9090/api/v1/connections/demo/enable\n",
        ] {
            assert!(text.contains(line), "{line:?} missing from:\n{text}");
        }
        assert!(!text.contains("note:"), "{text}");
        assert!(text.ends_with("Ctrl-C stops the demo.\n"), "{text}");
        assert_eq!(
            collector.bound("admin", "127.0.0.1:1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn a_taken_address_is_named_with_the_one_used_instead() {
        let mut banner = banner();
        banner.sftp = Bound {
            at: "127.0.0.1:40000".parse().unwrap(),
            taken: Some("127.0.0.1:2222".parse().unwrap()),
        };
        banner.sim.at = "[::1]:8081".parse().unwrap();
        let text = banner.text();
        assert!(
            text.contains(
                "note: 127.0.0.1:2222 is taken, so SFTP listens on a free port instead: 127.0.0.1:40000\n"
            ),
            "{text}"
        );
        assert!(text.contains("sftp -P 40000 demo@127.0.0.1\n"), "{text}");
        assert!(
            text.contains("http://[::1]:8081/_sim/tokens/expire"),
            "{text}"
        );
    }
}
