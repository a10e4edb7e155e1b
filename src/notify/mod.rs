//! Alert notifications: the `[[notify]]` targets (webhooks, e-mail) and the [`Notifier`] that
//! delivers to them what the rest of the gateway announces as [`Notice`]s on the event bus
//! (connections disabled and enabled again, sync jobs aborted, partly failed or recovered,
//! users locked out). Whoever announces knows nothing of targets; the notifier knows nothing of
//! connections, sync jobs or logins.
//!
//! - [`target`]: a target's queue and delivery (tries, pauses) through its
//!   [`message::Channel`]: [`webhook`] or [`email`];
//! - [`message`]: a notice rendered once (JSON, subject, text) with its id; [`digest`]: a
//!   target's daily summary of the alerts;
//! - [`figures`]: the counts `/metrics` shows; [`error`]: why a delivery failed.
//!
//! Each notice is queued once for each target whose `events` take it, so it is delivered at
//! most once per target, every try with the same id. A configuration reload
//! ([`Notifier::configure`]) keeps the targets whose configuration is unchanged, with their
//! queues; a target removed or changed finishes what it had queued.

pub mod digest;
pub mod email;
pub mod error;
pub mod figures;
pub mod message;
pub mod target;
pub mod webhook;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::broadcast::Receiver;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Notify;
use crate::events::{Event, Events, Notice};
use crate::state::Store;
pub use error::{Error, Result};
use figures::Figures;
use message::Message;
use target::{Common, Target};

pub struct Notifier {
    targets: Mutex<Vec<Target>>,
    common: Common,
}

impl Notifier {
    /// Delivers what `events` announces from now on to `targets`, until `stop`; digests read
    /// `store`.
    pub fn start(
        events: &Events,
        targets: &[Notify],
        store: Option<Arc<Store>>,
        stop: CancellationToken,
    ) -> Arc<Notifier> {
        let notifier = Arc::new(Notifier {
            targets: Mutex::default(),
            common: Common {
                figures: Arc::default(),
                store,
                host: message::host(),
                stop,
                tracker: TaskTracker::new(),
            },
        });
        notifier.configure(targets);
        let receiver = events.subscribe();
        notifier
            .common
            .tracker
            .spawn(notifier.clone().dispatch(receiver));
        notifier
    }

    /// Puts `targets` in force: unchanged targets go on with their queues, new or changed ones
    /// start, and those no longer configured end once their queues are delivered.
    pub fn configure(&self, targets: &[Notify]) {
        let mut running = self.targets.lock();
        let mut old: Vec<Target> = running.drain(..).collect();
        for config in targets {
            if let Some(i) = old.iter().position(|t| t.config == *config) {
                running.push(old.swap_remove(i));
                continue;
            }
            match Target::start(config.clone(), &self.common) {
                Ok(target) => running.push(target),
                Err(e) => {
                    tracing::error!(target = %config.name, error = %e, "notification target not started; it is sent nothing")
                }
            }
        }
    }

    /// The counts `/metrics` shows.
    pub fn figures(&self) -> &Figures {
        &self.common.figures
    }

    /// Waits until every delivery task has ended (after `stop`).
    pub async fn wait(&self) {
        self.common.tracker.close();
        self.common.tracker.wait().await;
    }

    /// Queues each notice `events` brings for the targets that take it, until `stop`.
    async fn dispatch(self: Arc<Self>, mut events: Receiver<Event>) {
        loop {
            let event = tokio::select! {
                _ = self.common.stop.cancelled() => return,
                event = events.recv() => event,
            };
            match event {
                Ok(Event::Notice(notice)) => self.queue(&notice),
                Ok(Event::Stored(_)) => {}
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "notifier: events missed (the event bus ran ahead); notices among them are not sent"
                    )
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    fn queue(&self, notice: &Notice) {
        let targets = self.targets.lock();
        let mut taken = targets.iter().filter(|t| t.wants(notice.kind)).peekable();
        if taken.peek().is_none() {
            return;
        }
        let message = Message::of(notice, &self.common.host);
        for target in taken {
            target.offer(message.clone());
        }
    }
}

/// `spgate notify test [NAME]`: sends a test notification to each of `targets` (or the one
/// named `only`), once each (no retries: the answer is for an administrator waiting), and
/// writes what became of each to `out`. Answers whether every one was delivered.
pub async fn test(
    targets: &[Notify],
    only: Option<&str>,
    out: &mut impl std::io::Write,
) -> std::io::Result<bool> {
    let chosen: Vec<&Notify> = targets
        .iter()
        .filter(|t| only.is_none_or(|name| t.name == name))
        .collect();
    if chosen.is_empty() {
        match only {
            Some(name) => writeln!(out, "no [[notify]] target named '{name}'")?,
            None => writeln!(out, "no [[notify]] targets are configured")?,
        }
        return Ok(false);
    }
    let host = message::host();
    let mut all = true;
    for config in chosen {
        let message = Message::test(&config.name, &host);
        let sent = async {
            let channel = target::channel(config)?;
            target::send_once(&*channel, &message, 1, config.timeout).await
        };
        match sent.await {
            Ok(()) => writeln!(out, "{}: delivered (id {})", config.name, message.id)?,
            Err(e) => {
                all = false;
                writeln!(
                    out,
                    "{}: FAILED: {}",
                    config.name,
                    crate::logging::chain(&e)
                )?;
            }
        }
    }
    Ok(all)
}
