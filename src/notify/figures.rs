//! What the notifier counts for `/metrics`: notifications per target by how they ended
//! (`spgate_notifications_total{target,outcome}`) and tries repeated
//! (`spgate_notification_retries_total{target}`). Kept across configuration reloads; the admin
//! endpoint reads them at scrape time.

use std::collections::BTreeMap;

use parking_lot::Mutex;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// How a notification ended for one target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// The receiver took it.
    Delivered,
    /// Refused for good, or out of tries.
    Failed,
    /// The target's queue was full.
    Dropped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Failed => "failed",
            Outcome::Dropped => "dropped",
        }
    }
}

#[derive(Debug, Default)]
pub struct Figures {
    outcomes: Mutex<BTreeMap<(String, Outcome), u64>>,
    retries: Mutex<BTreeMap<String, u64>>,
}

impl Figures {
    pub fn add(&self, target: &str, outcome: Outcome) {
        *self
            .outcomes
            .lock()
            .entry((target.to_string(), outcome))
            .or_default() += 1;
    }

    pub fn retried(&self, target: &str) {
        *self.retries.lock().entry(target.to_string()).or_default() += 1;
    }

    /// What was counted so far, for a scrape.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            outcomes: self.outcomes(),
            retries: self.retries(),
        }
    }

    /// Every (target, outcome, count) counted so far.
    pub fn outcomes(&self) -> Vec<(String, &'static str, u64)> {
        let outcomes = self.outcomes.lock();
        outcomes
            .iter()
            .map(|((target, outcome), n)| (target.clone(), outcome.as_str(), *n))
            .collect()
    }

    /// Every (target, tries repeated) counted so far.
    pub fn retries(&self) -> Vec<(String, u64)> {
        let retries = self.retries.lock();
        retries.iter().map(|(t, n)| (t.clone(), *n)).collect()
    }
}

/// The counts at one moment, as `/metrics` encodes them.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub outcomes: Vec<(String, &'static str, u64)>,
    pub retries: Vec<(String, u64)>,
}

impl Snapshot {
    /// Writes the two counter families to `encoder`.
    pub fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut f = encoder.encode_descriptor(
            "spgate_notifications",
            "Alert notifications by target and how they ended (delivered, failed, dropped)",
            None,
            MetricType::Counter,
        )?;
        for (target, outcome, n) in &self.outcomes {
            let labels = [("target", target.as_str()), ("outcome", *outcome)];
            ConstCounter::new(*n).encode(f.encode_family(&labels)?)?;
        }
        let mut f = encoder.encode_descriptor(
            "spgate_notification_retries",
            "Alert notification tries repeated after a failure, by target",
            None,
            MetricType::Counter,
        )?;
        for (target, n) in &self.retries {
            ConstCounter::new(*n).encode(f.encode_family(&[("target", target.as_str())])?)?;
        }
        Ok(())
    }
}
