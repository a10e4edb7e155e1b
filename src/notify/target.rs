//! One running `[[notify]]` target: a bounded queue and the task that delivers from it, one
//! notification at a time, in order. Each is tried up to the target's `attempts`, a pause
//! between tries that doubles from [`FIRST_PAUSE`] up to [`MAX_PAUSE`], and every try sends the
//! same message with the same id. A notification is queued once per target and so delivered at
//! most once (unless a receiver took it but its answer was lost); one given up is logged (WARN)
//! and counted, as is one that finds the queue full.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::{Error, Kind, Result};
use super::figures::{Figures, Outcome};
use super::message::{Channel, Message};
use crate::config::{Notify, NotifyChannel};
use crate::state::Store;

/// Notifications a target may hold before new ones are dropped.
pub const QUEUE: usize = 256;
/// The pause after a first failed try.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause between two tries.
pub const MAX_PAUSE: Duration = Duration::from_secs(60);

/// The pause after failed try number `attempt`.
pub fn pause(attempt: u32) -> Duration {
    let doubled = FIRST_PAUSE.saturating_mul(1 << attempt.saturating_sub(1).min(16));
    doubled.min(MAX_PAUSE)
}

/// What the tasks of every target share, owned by the notifier.
pub struct Common {
    pub figures: Arc<Figures>,
    /// Where digests read the alerts and claim their day (none: no digests).
    pub store: Option<Arc<Store>>,
    /// This instance's host, named in every message.
    pub host: String,
    pub stop: CancellationToken,
    pub tracker: TaskTracker,
}

pub struct Target {
    pub config: Notify,
    queue: mpsc::Sender<Message>,
    figures: Arc<Figures>,
}

impl Target {
    /// Starts delivering to `config`'s receiver (and its daily digest, if it has one) until
    /// `common.stop`, or until this is dropped and the queue is empty.
    pub fn start(config: Notify, common: &Common) -> Result<Target> {
        let channel = channel(&config)?;
        let (queue, receiver) = mpsc::channel(QUEUE);
        let worker = Worker {
            name: config.name.clone(),
            channel,
            attempts: config.attempts,
            timeout: config.timeout,
            figures: common.figures.clone(),
            stop: common.stop.clone(),
        };
        common.tracker.spawn(worker.run(receiver));
        match (config.digest, &common.store) {
            (Some(at), Some(store)) => {
                common.tracker.spawn(super::digest::daily(
                    config.name.clone(),
                    at,
                    store.clone(),
                    queue.downgrade(),
                    common.host.clone(),
                    common.stop.clone(),
                ));
            }
            (Some(_), None) => {
                tracing::warn!(target = %config.name, "no digest: there is no state store here")
            }
            (None, _) => {}
        }
        Ok(Target {
            config,
            queue,
            figures: common.figures.clone(),
        })
    }

    /// Whether the target is sent notices of `kind`.
    pub fn wants(&self, kind: crate::events::Kind) -> bool {
        self.config.events.contains(&kind)
    }

    /// Queues `message` for delivery; a full queue drops it (logged and counted).
    pub fn offer(&self, message: Message) {
        if let Err(e) = self.queue.try_send(message) {
            let message = match &e {
                mpsc::error::TrySendError::Full(m) | mpsc::error::TrySendError::Closed(m) => m,
            };
            tracing::warn!(target = %self.config.name, kind = message.kind, id = %message.id,
                "notification dropped: the target's queue is full");
            self.figures.add(&self.config.name, Outcome::Dropped);
        }
    }
}

/// How `config`'s messages reach its receiver.
pub fn channel(config: &Notify) -> Result<Box<dyn Channel>> {
    Ok(match &config.channel {
        NotifyChannel::Webhook(w) => Box::new(super::webhook::Webhook::new(w, config.timeout)?),
        NotifyChannel::Email(e) => Box::new(super::email::Email::new(e, config.timeout)?),
    })
}

/// Sends `message` through `channel` once (try number `attempt`); no answer within `timeout`
/// is a failure that may pass.
pub async fn send_once(
    channel: &dyn Channel,
    message: &Message,
    attempt: u32,
    timeout: Duration,
) -> Result<()> {
    match tokio::time::timeout(timeout, channel.send(message, attempt)).await {
        Ok(sent) => sent,
        Err(_) => Err(Error::new(
            Kind::Transient,
            format!("no answer within {timeout:?}"),
        )),
    }
}

struct Worker {
    name: String,
    channel: Box<dyn Channel>,
    attempts: u32,
    timeout: Duration,
    figures: Arc<Figures>,
    stop: CancellationToken,
}

impl Worker {
    async fn run(self, mut queue: mpsc::Receiver<Message>) {
        loop {
            let message = tokio::select! {
                _ = self.stop.cancelled() => {
                    if !queue.is_empty() {
                        tracing::warn!(target = %self.name, left = queue.len(),
                            "notifications not sent: shutting down");
                    }
                    return;
                }
                message = queue.recv() => match message {
                    Some(message) => message,
                    None => return,
                },
            };
            self.deliver(&message).await;
        }
    }

    /// Tries `message` until it is delivered, refused for good, out of tries, or shutdown.
    async fn deliver(&self, message: &Message) {
        let name = &self.name;
        for attempt in 1..=self.attempts {
            let tried = tokio::select! {
                _ = self.stop.cancelled() => {
                    tracing::warn!(target = %name, kind = message.kind, id = %message.id,
                        "notification not delivered: shutting down");
                    return;
                }
                tried = send_once(&*self.channel, message, attempt, self.timeout) => tried,
            };
            let error = match tried {
                Ok(()) => {
                    tracing::info!(target = %name, kind = message.kind, id = %message.id, attempt,
                        "notification delivered");
                    self.figures.add(name, Outcome::Delivered);
                    return;
                }
                Err(e) => e,
            };
            if !error.is_transient() || attempt == self.attempts {
                tracing::warn!(target = %name, kind = message.kind, id = %message.id,
                    attempts = attempt, error = %error, "notification given up");
                self.figures.add(name, Outcome::Failed);
                return;
            }
            self.figures.retried(name);
            let pause = pause(attempt);
            tracing::debug!(target = %name, id = %message.id, attempt, error = %error,
                pause_s = pause.as_secs(), "notification failed; trying again");
            tokio::select! {
                _ = self.stop.cancelled() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Fails with `kind` until try `ok_at`.
    struct Flaky {
        tries: Arc<AtomicU32>,
        ok_at: u32,
        kind: Kind,
    }

    #[async_trait::async_trait]
    impl Channel for Flaky {
        async fn send(&self, _: &Message, attempt: u32) -> Result<()> {
            self.tries.store(attempt, Ordering::SeqCst);
            if attempt >= self.ok_at {
                Ok(())
            } else {
                Err(Error::new(self.kind, "not now"))
            }
        }
    }

    async fn deliver(
        ok_at: u32,
        kind: Kind,
        attempts: u32,
    ) -> (u32, Vec<(String, &'static str, u64)>) {
        let tries = Arc::new(AtomicU32::new(0));
        let figures = Arc::new(Figures::default());
        let worker = Worker {
            name: "t".into(),
            channel: Box::new(Flaky {
                tries: tries.clone(),
                ok_at,
                kind,
            }),
            attempts,
            timeout: Duration::from_secs(5),
            figures: figures.clone(),
            stop: CancellationToken::new(),
        };
        let notice = crate::events::Notice::new(crate::events::Kind::UserLocked, "u", "m", "a");
        worker.deliver(&Message::of(&notice, "h")).await;
        (tries.load(Ordering::SeqCst), figures.outcomes())
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_tried_again_up_to_the_attempts() {
        let (tries, figures) = deliver(3, Kind::Transient, 5).await;
        assert_eq!(tries, 3);
        assert_eq!(figures, [("t".to_string(), "delivered", 1)]);

        let (tries, figures) = deliver(9, Kind::Transient, 4).await;
        assert_eq!(tries, 4);
        assert_eq!(figures, [("t".to_string(), "failed", 1)]);

        let (tries, figures) = deliver(9, Kind::Permanent, 4).await;
        assert_eq!(tries, 1, "a permanent failure is not tried again");
        assert_eq!(figures, [("t".to_string(), "failed", 1)]);
    }

    #[test]
    fn pauses_double_up_to_a_minute() {
        let secs: Vec<u64> = (1..=9).map(|a| pause(a).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }
}
