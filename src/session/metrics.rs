//! What the session layer counts for Prometheus: sessions, logins, refused connections and
//! transfers, in [`Metrics`] (owned by the gateway, kept across reloads). `crate::admin`
//! renders them beside the figures it reads at scrape time.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProtocolLabels {
    pub protocol: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LoginLabels {
    pub protocol: &'static str,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusedLabels {
    pub protocol: &'static str,
    /// The limit that was reached (`max_connections`, `max_per_address`,
    /// `max_unauthenticated`).
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    pub protocol: &'static str,
    /// The connection's name, or `local` for a local mount.
    pub connection: String,
    /// `up` or `down`.
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FileLabels {
    pub protocol: &'static str,
    pub connection: String,
    pub direction: &'static str,
    /// `ok` or `failed`.
    pub outcome: &'static str,
}

/// What the front-ends count.
#[derive(Default, Debug)]
pub struct Metrics {
    pub sessions_active: Family<ProtocolLabels, Gauge>,
    pub sessions: Family<ProtocolLabels, Counter>,
    pub logins: Family<LoginLabels, Counter>,
    pub refused: Family<RefusedLabels, Counter>,
    pub bytes: Family<TransferLabels, Counter>,
    pub files: Family<FileLabels, Counter>,
}

impl Metrics {
    pub fn login(&self, protocol: &'static str, ok: bool) {
        let outcome = if ok { "ok" } else { "failed" };
        self.logins
            .get_or_create(&LoginLabels { protocol, outcome })
            .inc();
    }

    /// A connection refused, or cut to make room, at `limit`.
    pub fn refused(&self, protocol: &'static str, limit: &'static str) {
        self.refused
            .get_or_create(&RefusedLabels { protocol, limit })
            .inc();
    }

    /// A session started; the guard ends it when dropped.
    pub fn session(&self, protocol: &'static str) -> SessionGuard {
        let labels = ProtocolLabels { protocol };
        self.sessions.get_or_create(&labels).inc();
        let active = self.sessions_active.get_or_create(&labels).clone();
        active.inc();
        SessionGuard { active }
    }

    /// A transfer ended.
    pub fn transfer(
        &self,
        protocol: &'static str,
        connection: &str,
        direction: &'static str,
        bytes: u64,
        ok: bool,
    ) {
        let connection = connection.to_string();
        self.bytes
            .get_or_create(&TransferLabels {
                protocol,
                connection: connection.clone(),
                direction,
            })
            .inc_by(bytes);
        self.files
            .get_or_create(&FileLabels {
                protocol,
                connection,
                direction,
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// Registers the front-end families in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "spgate_sessions_active",
            "Sessions open now, by protocol",
            self.sessions_active.clone(),
        );
        registry.register(
            "spgate_sessions",
            "Sessions opened, by protocol",
            self.sessions.clone(),
        );
        registry.register(
            "spgate_logins",
            "Login attempts by protocol and outcome",
            self.logins.clone(),
        );
        registry.register(
            "spgate_connections_refused",
            "Connections refused (or, for max_unauthenticated, cut to make room) by protocol and limit",
            self.refused.clone(),
        );
        registry.register(
            "spgate_transfer_bytes",
            "Bytes transferred by protocol, connection and direction",
            self.bytes.clone(),
        );
        registry.register(
            "spgate_transfer_files",
            "Files transferred by protocol, connection, direction and outcome",
            self.files.clone(),
        );
    }
}

/// Keeps a session counted as active while it lives.
pub struct SessionGuard {
    active: Gauge,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.active.dec();
    }
}
