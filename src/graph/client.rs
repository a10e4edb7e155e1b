//! The HTTP side of one SharePoint connection: every Graph request goes through [`Client::send`],
//! which applies the connection's limits (concurrency cap, optional requests per second), waits
//! out a throttling pause shared by all requests of the connection, adds the bearer token
//! (refreshing once on a 401), and retries transient failures with exponential backoff and
//! jitter, up to a bounded number of attempts.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use parking_lot::Mutex;
use reqwest::{RequestBuilder, Response, StatusCode};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::access::{Standing, TokenError, TokenSource};
use super::error::{Error, Kind, Result, Retry, parse_retry_after, retry_hint};
use crate::config::Limits;

/// `ISV|spgate|spgate/<version>`, as Microsoft asks ISVs to identify their traffic.
pub const USER_AGENT: &str = concat!("ISV|spgate|spgate/", env!("CARGO_PKG_VERSION"));

/// The longest a request waits out throttling in total before it fails.
const MAX_THROTTLE_WAIT: Duration = Duration::from_secs(300);
/// The most throttled answers one request accepts before it fails.
const MAX_THROTTLES: u32 = 60;

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub throttled: AtomicU64,
    pub paused_ms: AtomicU64,
    pub retries: AtomicU64,
    pub fragment_retries: AtomicU64,
    /// Responses by HTTP method and status (status 0: no response, a network error).
    pub by_status: parking_lot::Mutex<std::collections::BTreeMap<(String, u16), u64>>,
}

impl Counters {
    fn record(&self, method: &str, status: u16) {
        *self
            .by_status
            .lock()
            .entry((method.to_string(), status))
            .or_default() += 1;
    }
}

/// A pause shared by every request of a connection while SharePoint throttles it.
#[derive(Default)]
struct Gate {
    until: Mutex<Option<Instant>>,
}

impl Gate {
    async fn wait(&self) -> Duration {
        let started = Instant::now();
        loop {
            let until = *self.until.lock();
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => return started.elapsed(),
            }
        }
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut current = self.until.lock();
        if current.is_none_or(|t| t < until) {
            *current = Some(until);
        }
    }
}

/// Exponential backoff with jitter: between half and all of `base * 2^attempt`, capped.
pub fn backoff(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let full = base.saturating_mul(1u32 << attempt.min(16)).min(cap);
    let half = full / 2;
    half + full.mul_f64(rand::random::<f64>() * 0.5)
}

pub struct Client {
    pub name: String,
    http: reqwest::Client,
    graph_url: String,
    tokens: Arc<dyn TokenSource>,
    standing: Arc<dyn Standing>,
    gate: Gate,
    permits: Semaphore,
    limiter: Option<DefaultDirectRateLimiter>,
    limits: Limits,
    pub counters: Counters,
}

/// The reqwest client every connection uses: no redirects (downloads are followed by hand,
/// without the Authorization header), rustls, the ISV user agent, bounded waits. HTTP/1.1
/// only: concurrent requests each get a connection of their own, which is what parallel
/// downloads are for (SharePoint paces each TCP connection; HTTP/2 would multiplex them all
/// onto one).
pub fn http_client(limits: &Limits) -> reqwest::Client {
    reqwest::Client::builder()
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(15))
        .read_timeout(limits.request_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .build()
        .expect("a TLS backend is compiled in")
}

impl Client {
    pub fn new(
        name: &str,
        graph_url: &str,
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
        standing: Arc<dyn Standing>,
        limits: &Limits,
    ) -> Self {
        let limiter = limits.requests_per_second.map(|rps| {
            let per_period = Duration::from_secs_f64(1.0 / rps);
            let quota = Quota::with_period(per_period)
                .expect("a positive period")
                .allow_burst(NonZeroU32::new(rps.ceil().max(1.0) as u32).expect("at least one"));
            RateLimiter::direct(quota)
        });
        Client {
            name: name.to_string(),
            http,
            graph_url: format!("{}/v1.0", graph_url.trim_end_matches('/')),
            tokens,
            standing,
            gate: Gate::default(),
            permits: Semaphore::new(limits.max_concurrent_requests),
            limiter,
            limits: limits.clone(),
            counters: Counters::default(),
        }
    }

    /// `https://graph.microsoft.com/v1.0` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.graph_url)
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Upload-session fragment size, a multiple of 320 KiB.
    pub fn upload_chunk(&self) -> u64 {
        self.limits.upload_chunk_bytes
    }

    /// Ranged GETs in flight at once for one file read sequentially (1: one streaming GET).
    pub fn download_streams(&self) -> usize {
        self.limits.download_streams
    }

    /// Bytes per ranged GET of a parallel download.
    pub fn download_block(&self) -> u64 {
        self.limits.download_block_bytes
    }

    fn disabled(&self) -> Option<Error> {
        self.standing
            .disabled()
            .map(|why| Error::disabled(&self.name, &why))
    }

    /// Sends the request `build` makes (called again for each attempt), with the bearer token
    /// when `authorized`. Answers the first successful (2xx/3xx) response; a failure answer is
    /// turned into an [`Error`] after the retries it deserves.
    pub async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        authorized: bool,
    ) -> Result<Response> {
        self.send_with(build, authorized, self.limits.max_retries)
            .await
    }

    /// Like [`Client::send`] but without retrying transient failures (throttling pauses still
    /// apply): for upload fragments, whose retry must resume from the session's status.
    pub async fn send_once(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response> {
        self.send_with(build, false, 0).await
    }

    async fn send_with(
        &self,
        build: impl Fn(&reqwest::Client) -> RequestBuilder,
        authorized: bool,
        max_retries: u32,
    ) -> Result<Response> {
        let mut attempts = 0u32;
        let mut refreshed = false;
        let mut throttled_for = Duration::ZERO;
        let mut throttles = 0u32;
        loop {
            if let Some(e) = self.disabled() {
                return Err(e);
            }
            let paused = self.gate.wait().await;
            self.counters
                .paused_ms
                .fetch_add(paused.as_millis() as u64, Ordering::Relaxed);
            if let Some(limiter) = &self.limiter {
                limiter.until_ready().await;
            }
            let permit = self
                .permits
                .acquire()
                .await
                .expect("the semaphore is never closed");
            let mut request = build(&self.http);
            let token = if authorized {
                match self.tokens.token().await {
                    Ok(token) => Some(token),
                    Err(TokenError::Disabled {
                        code,
                        message,
                        action,
                    }) => {
                        return Err(Error::disabled(
                            &self.name,
                            &format!("{message} ({code}). {action}"),
                        ));
                    }
                    Err(TokenError::Transient(why)) => {
                        drop(permit);
                        self.retry_later(&mut attempts, max_retries, &why).await?;
                        continue;
                    }
                }
            } else {
                None
            };
            if let Some(token) = &token {
                request = request.bearer_auth(token.secret());
            }
            self.counters.requests.fetch_add(1, Ordering::Relaxed);
            let (http, built) = request.build_split();
            let method = built
                .as_ref()
                .map(|r| r.method().as_str().to_string())
                .unwrap_or_default();
            let outcome = match built {
                Ok(built) => http.execute(built).await,
                Err(e) => Err(e),
            };
            drop(permit);
            self.counters.record(
                &method,
                outcome.as_ref().map(|r| r.status().as_u16()).unwrap_or(0),
            );
            let response = match outcome {
                Ok(response) => response,
                Err(e) => {
                    let failure = format!("network: {}", network_failure(e));
                    self.retry_later(&mut attempts, max_retries, &failure)
                        .await?;
                    continue;
                }
            };
            let status = response.status();
            if status.is_success() || status.is_redirection() {
                return Ok(response);
            }
            if status == StatusCode::UNAUTHORIZED
                && !refreshed
                && let Some(token) = &token
            {
                self.tokens.invalidate(token);
                refreshed = true;
                continue;
            }
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            match retry_hint(status, retry_after) {
                Some(Retry::Pause(wait)) => {
                    self.counters.throttled.fetch_add(1, Ordering::Relaxed);
                    throttled_for += wait;
                    throttles += 1;
                    if throttled_for > MAX_THROTTLE_WAIT || throttles > MAX_THROTTLES {
                        return Err(Error::new(
                            Kind::Unavailable,
                            format!(
                                "SharePoint kept throttling connection '{}' for over {} s; try again later",
                                self.name,
                                MAX_THROTTLE_WAIT.as_secs()
                            ),
                        ));
                    }
                    tracing::warn!(connection = %self.name, status = status.as_u16(), wait_ms = wait.as_millis() as u64, "throttled; pausing the connection");
                    self.gate.pause(wait);
                }
                Some(Retry::Backoff) => {
                    let body = response.bytes().await.unwrap_or_default();
                    let error = Error::from_response(status, &body);
                    self.retry_later(&mut attempts, max_retries, &error.message)
                        .await?;
                }
                None => {
                    let body = response.bytes().await.unwrap_or_default();
                    return Err(Error::from_response(status, &body));
                }
            }
        }
    }

    /// Counts an attempt and sleeps its backoff; fails once the attempts are used up.
    async fn retry_later(&self, attempts: &mut u32, max_retries: u32, why: &str) -> Result<()> {
        *attempts += 1;
        if *attempts > max_retries {
            return Err(Error::new(
                Kind::Unavailable,
                format!(
                    "SharePoint connection '{}' failed after {} attempts: {why}",
                    self.name, attempts
                ),
            ));
        }
        self.counters.retries.fetch_add(1, Ordering::Relaxed);
        let wait = backoff(
            *attempts - 1,
            Duration::from_millis(250),
            Duration::from_secs(30),
        );
        tracing::debug!(connection = %self.name, attempt = *attempts, wait_ms = wait.as_millis() as u64, why, "retrying");
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// A network failure for logs and errors: reqwest's message without the request's URL (a
/// download URL carries `tempauth`, an upload session's URL its session token), and its cause.
pub(crate) fn network_failure(e: reqwest::Error) -> String {
    let e = e.without_url();
    match std::error::Error::source(&e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_stays_jittered_and_capped() {
        let base = Duration::from_millis(100);
        let cap = Duration::from_secs(5);
        for attempt in 0..10 {
            let full = (base * (1 << attempt)).min(cap);
            for _ in 0..50 {
                let wait = backoff(attempt, base, cap);
                assert!(
                    wait >= full / 2 && wait <= full,
                    "attempt {attempt}: {wait:?}"
                );
            }
        }
        assert!(backoff(40, base, cap) <= cap);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_waiter_until_it_passes() {
        let gate = Arc::new(Gate::default());
        gate.pause(Duration::from_secs(3));
        gate.pause(Duration::from_secs(1));
        let started = Instant::now();
        let waiters: Vec<_> = (0..5)
            .map(|_| {
                let g = gate.clone();
                tokio::spawn(async move { g.wait().await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap();
        }
        assert!(started.elapsed() >= Duration::from_secs(3));
    }
}
