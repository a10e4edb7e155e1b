//! The simulated distance between a client and SharePoint Online: a [`Link`] (round-trip
//! latency, jitter, bandwidth per connection), the named [`Profile`]s, and [`Network`], the live
//! settings (the command line's, overridden by faults) with the waits a request pays.
//!
//! Latency is paid by remote requests only (Graph, token, download and upload URLs), never by
//! the `/_sim/` control API: a connection's first such request waits until one round trip after
//! the connection was accepted (the TCP and TLS handshake), every request waits half a round trip
//! before it is handled and its response the other half before its head is sent. Bandwidth is
//! enforced on the connection's bytes by [`super::listener::Shaped`].

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

/// Bytes per second, per connection and direction; 0 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Bandwidth(u64);

impl Bandwidth {
    pub const UNLIMITED: Bandwidth = Bandwidth(0);

    /// From decimal megabytes per second (`40` is 40,000,000 bytes/s); 0 is unlimited.
    pub fn from_mb_s(mb: f64) -> Result<Bandwidth, String> {
        if !mb.is_finite() || mb < 0.0 {
            return Err(format!("bandwidth {mb} MB/s is not a number >= 0"));
        }
        let bytes = (mb * 1e6).round() as u64;
        Ok(Bandwidth(if mb > 0.0 { bytes.max(1) } else { 0 }))
    }

    /// The limit in bytes per second, `None` when unlimited.
    pub fn bytes_per_s(self) -> Option<u64> {
        (self.0 > 0).then_some(self.0)
    }
}

impl FromStr for Bandwidth {
    type Err = String;

    /// Decimal MB/s: `40`, `2.5`, `0` (unlimited).
    fn from_str(text: &str) -> Result<Bandwidth, String> {
        let mb: f64 = text
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not a bandwidth in MB/s like \"40\" or \"2.5\""))?;
        Bandwidth::from_mb_s(mb)
    }
}

/// What the distance to the client costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Link {
    /// Added round-trip time.
    pub latency: Duration,
    /// Each round trip is drawn uniformly from `latency +- jitter`, never below zero.
    pub jitter: Duration,
    pub bandwidth: Bandwidth,
}

impl Link {
    /// This link with the parts that are given replaced.
    pub fn with(
        self,
        latency: Option<Duration>,
        jitter: Option<Duration>,
        bandwidth: Option<Bandwidth>,
    ) -> Link {
        Link {
            latency: latency.unwrap_or(self.latency),
            jitter: jitter.unwrap_or(self.jitter),
            bandwidth: bandwidth.unwrap_or(self.bandwidth),
        }
    }

    /// One round trip as this link draws it.
    pub fn round_trip(&self) -> Duration {
        if self.jitter.is_zero() {
            return self.latency;
        }
        let jitter = self.jitter.as_secs_f64();
        let drawn = self.latency.as_secs_f64() + rand::random_range(-jitter..=jitter);
        Duration::from_secs_f64(drawn.max(0.0))
    }
}

/// Named distances (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// No added latency, unlimited bandwidth.
    Lan,
    /// 80 ms round trip, 40 MB/s per connection: SharePoint Online from the same continent.
    Realistic,
    /// 200 ms round trip, 10 MB/s per connection: SharePoint Online from far away.
    Far,
}

impl Profile {
    pub fn link(self) -> Link {
        let (latency_ms, mb_s) = match self {
            Profile::Lan => (0, 0),
            Profile::Realistic => (80, 40),
            Profile::Far => (200, 10),
        };
        Link {
            latency: Duration::from_millis(latency_ms),
            jitter: Duration::ZERO,
            bandwidth: Bandwidth(mb_s * 1_000_000),
        }
    }
}

/// The live link settings: `base` (the command line's) until faults override parts of it.
pub struct Network {
    base: Link,
    current: Mutex<Link>,
}

impl Network {
    pub fn new(base: Link) -> Network {
        Network {
            base,
            current: Mutex::new(base),
        }
    }

    pub fn base(&self) -> Link {
        self.base
    }

    pub fn link(&self) -> Link {
        *self.current.lock()
    }

    /// New requests and every connection's next bytes follow `link`.
    pub fn set(&self, link: Link) {
        *self.current.lock() = link;
    }

    /// Waits what a remote request pays before it is handled (on its connection's first, the
    /// rest of the handshake's round trip; then half a round trip) and returns what its
    /// response pays before its head is sent.
    pub async fn arrive(&self, connection: &Connection) -> Duration {
        let link = self.link();
        let first = !connection.handshaken.swap(true, Ordering::Relaxed);
        if link.latency.is_zero() && link.jitter.is_zero() {
            return Duration::ZERO;
        }
        if first {
            tokio::time::sleep_until(connection.accepted + link.round_trip()).await;
        }
        let round_trip = link.round_trip();
        let there = round_trip / 2;
        tokio::time::sleep(there).await;
        round_trip - there
    }
}

/// One accepted TCP connection, as far as latency cares.
#[derive(Debug)]
pub struct Connection {
    accepted: Instant,
    handshaken: AtomicBool,
}

impl Connection {
    pub fn accepted_now() -> Connection {
        Connection {
            accepted: Instant::now(),
            handshaken: AtomicBool::new(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn profiles_parse_and_explicit_parts_override_them() {
        let parse = |s: &str| Profile::from_str(s, false).map(Profile::link);
        assert_eq!(parse("lan"), Ok(Link::default()));
        let realistic = parse("realistic").unwrap();
        assert_eq!(realistic.latency, ms(80));
        assert_eq!(realistic.bandwidth.bytes_per_s(), Some(40_000_000));
        let far = parse("far").unwrap();
        assert_eq!((far.latency, far.jitter), (ms(200), Duration::ZERO));
        assert_eq!(far.bandwidth.bytes_per_s(), Some(10_000_000));
        assert!(parse("moon").is_err());

        let custom = far.with(Some(ms(30)), Some(ms(5)), None);
        assert_eq!((custom.latency, custom.jitter), (ms(30), ms(5)));
        assert_eq!(custom.bandwidth, far.bandwidth);
        let unlimited = far.with(None, None, Some(Bandwidth::UNLIMITED));
        assert_eq!(
            (unlimited.latency, unlimited.bandwidth.bytes_per_s()),
            (ms(200), None)
        );
    }

    #[test]
    fn bandwidth_is_decimal_mb_per_second() {
        let bytes = |s: &str| s.parse::<Bandwidth>().map(Bandwidth::bytes_per_s);
        assert_eq!(bytes("40"), Ok(Some(40_000_000)));
        assert_eq!(bytes("2.5"), Ok(Some(2_500_000)));
        assert_eq!(bytes(" 0.000001 "), Ok(Some(1)));
        assert_eq!(bytes("0"), Ok(None));
        for bad in ["-1", "fast", "", "inf", "NaN"] {
            assert!(bytes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn round_trips_stay_within_the_jitter_and_above_zero() {
        let steady = Link {
            latency: ms(80),
            ..Link::default()
        };
        assert_eq!(steady.round_trip(), ms(80));
        let shaky = Link {
            latency: ms(10),
            jitter: ms(50),
            ..Link::default()
        };
        let draws: Vec<Duration> = (0..2000).map(|_| shaky.round_trip()).collect();
        assert!(draws.iter().all(|d| *d <= ms(60)), "{draws:?}");
        assert!(draws.contains(&Duration::ZERO), "clamped at zero");
        assert!(draws.iter().any(|d| *d > ms(40)));
    }

    #[tokio::test(start_paused = true)]
    async fn first_request_pays_the_handshake() {
        let network = Network::new(Link {
            latency: ms(100),
            ..Link::default()
        });
        let connection = Connection::accepted_now();
        let start = Instant::now();
        let back = network.arrive(&connection).await;
        assert_eq!((start.elapsed(), back), (ms(150), ms(50)));
        let start = Instant::now();
        network.arrive(&connection).await;
        assert_eq!(start.elapsed(), ms(50));
        network.set(Link::default());
        let start = Instant::now();
        assert_eq!(network.arrive(&connection).await, Duration::ZERO);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(network.base().latency, ms(100));
    }
}
