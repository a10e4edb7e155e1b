//! `type = "webhook"`: each notification POSTed as JSON, with its id in `X-Spgate-Event` (the
//! same on every try, for the receiver to de-duplicate) and, with a `secret`, the body's
//! HMAC-SHA256 in `X-Spgate-Signature: sha256=<hex>`. A 2xx answer delivers it; a 408, 429 or
//! 5xx, or no answer, is tried again; any other answer (a redirect included) is final.

use std::fmt::Write as _;
use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use sha2::Sha256;

use super::error::{Error, Kind, Result};
use super::message::{Channel, Message};
use crate::config::{Secret, Webhook as Config};

/// The header naming the notification (its id).
pub const EVENT_HEADER: &str = "X-Spgate-Event";
/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "X-Spgate-Signature";
/// The header counting the tries of this notification, from 1.
pub const ATTEMPT_HEADER: &str = "X-Spgate-Attempt";

pub struct Webhook {
    url: reqwest::Url,
    secret: Option<Secret>,
    http: reqwest::Client,
}

impl Webhook {
    pub fn new(config: &Config, timeout: Duration) -> Result<Webhook> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| Error::caused(Kind::Permanent, "building the HTTP client", e))?;
        Ok(Webhook {
            url: config.url.clone(),
            secret: config.secret.clone(),
            http,
        })
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &Secret, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    let mut out = String::from("sha256=");
    for byte in mac.finalize().into_bytes() {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

#[async_trait::async_trait]
impl Channel for Webhook {
    async fn send(&self, message: &Message, attempt: u32) -> Result<()> {
        let body = serde_json::to_vec(&message.json)
            .map_err(|e| Error::caused(Kind::Permanent, "encoding the notification", e))?;
        let mut request = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(USER_AGENT, concat!("spgate/", env!("CARGO_PKG_VERSION")))
            .header(EVENT_HEADER, &message.id)
            .header(ATTEMPT_HEADER, attempt.to_string());
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        // The URL stays out of the error: its path or query may hold a token.
        let response = request.body(body).send().await.map_err(|e| {
            Error::caused(
                Kind::Transient,
                "the webhook did not answer",
                e.without_url(),
            )
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let again = status.is_server_error()
            || status == StatusCode::TOO_MANY_REQUESTS
            || status == StatusCode::REQUEST_TIMEOUT;
        let kind = if again {
            Kind::Transient
        } else {
            Kind::Permanent
        };
        Err(Error::new(kind, format!("the webhook answered {status}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        let secret = Secret::new("Jefe");
        assert_eq!(
            signature(&secret, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
