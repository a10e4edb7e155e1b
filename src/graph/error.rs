//! The Graph client's error: one kind per thing a caller may do differently, classified where the
//! failure is seen (transient and retried there; permanent; or needing a human).

use std::time::Duration;

use reqwest::StatusCode;

use super::names::NameError;
use crate::wire::ErrorResponse;

/// What went wrong, as far as a caller needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The item does not exist.
    NotFound,
    /// The name is taken.
    AlreadyExists,
    /// SharePoint refused the operation for this app or user.
    PermissionDenied,
    /// A name or path breaks SharePoint's rules (checked before any request).
    InvalidName,
    /// The item is locked (open in Office, checked out).
    Locked,
    /// The item changed since its eTag was read.
    Modified,
    /// The library is full.
    QuotaExceeded,
    /// Delta must start over.
    ResyncRequired,
    /// The connection is disabled until an administrator acts (see its alert).
    Disabled,
    /// Throttled or unavailable beyond the retry budget; trying later may work.
    Unavailable,
    /// A request the client got wrong or the service refused as malformed.
    Invalid,
    /// Reading or writing local data failed.
    Io,
}

/// A Graph client error: its kind, a message safe to show, and the source.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: Kind,
    pub message: String,
    /// The Graph error code (most specific inner code first), when the service sent one.
    pub code: Option<String>,
    /// The HTTP status of the failed answer, when the failure is one (a 403 and a lasting 401
    /// are both [`Kind::PermissionDenied`]; a site search tells them apart).
    pub status: Option<u16>,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
            status: None,
            source: None,
        }
    }

    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    pub fn disabled(connection: &str, why: &str) -> Self {
        Self::new(
            Kind::Disabled,
            format!("SharePoint connection '{connection}' is disabled: {why}"),
        )
    }

    /// The error for a failed Graph response, from its status and body.
    pub fn from_response(status: StatusCode, body: &[u8]) -> Self {
        let parsed: Option<ErrorResponse> = serde_json::from_slice(body).ok();
        let code = parsed.as_ref().map(most_specific_code);
        let service_message = parsed
            .as_ref()
            .map(|p| p.error.message.clone())
            .unwrap_or_default();
        let kind = match (status.as_u16(), code.as_deref()) {
            (400, Some("invalidName" | "pathIsTooLong")) => Kind::InvalidName,
            (400, _) => Kind::Invalid,
            (401 | 403, _) => Kind::PermissionDenied,
            (404, _) => Kind::NotFound,
            (409, _) => Kind::AlreadyExists,
            (410, _) => Kind::ResyncRequired,
            (412, _) => Kind::Modified,
            (423, _) => Kind::Locked,
            (507, _) => Kind::QuotaExceeded,
            (429 | 503 | 509, _) | (500..=599, _) => Kind::Unavailable,
            _ => Kind::Invalid,
        };
        let message = if service_message.is_empty() {
            format!("SharePoint answered {status}")
        } else {
            format!("SharePoint answered {status}: {service_message}")
        };
        Self {
            kind,
            message,
            code,
            status: Some(status.as_u16()),
            source: None,
        }
    }
}

/// The innermost error code of a Graph error body (e.g. `fragmentOverlap` under `invalidRange`).
fn most_specific_code(response: &ErrorResponse) -> String {
    let mut code = response.error.code.clone();
    let mut inner = response.error.inner_error.as_ref();
    while let Some(i) = inner {
        if let Some(c) = &i.code {
            code = c.clone();
        }
        inner = i.inner_error.as_deref();
    }
    code
}

impl From<NameError> for Error {
    fn from(e: NameError) -> Self {
        Self::new(Kind::InvalidName, e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Self::new(Kind::Io, format!("local I/O failed: {e}")).with_source(e)
    }
}

/// Whether a status is worth another attempt, and after how long at least.
pub fn retry_hint(status: StatusCode, retry_after: Option<Duration>) -> Option<Retry> {
    match status.as_u16() {
        429 | 503 => Some(Retry::Pause(retry_after.unwrap_or(Duration::from_secs(5)))),
        509 => Some(Retry::Pause(retry_after.unwrap_or(Duration::from_secs(60)))),
        500 | 502 | 504 => Some(Retry::Backoff),
        _ => None,
    }
}

/// How to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Throttled: pause every request of the connection this long.
    Pause(Duration),
    /// Transient: back off exponentially with jitter.
    Backoff,
}

/// Parses `Retry-After` (seconds, or an HTTP date).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_and_inner_codes() {
        let body = br#"{"error":{"code":"invalidRequest","message":"bad","innerError":{"code":"pathIsTooLong"}}}"#;
        let e = Error::from_response(StatusCode::BAD_REQUEST, body);
        assert_eq!(
            (e.kind, e.code.as_deref(), e.status),
            (Kind::InvalidName, Some("pathIsTooLong"), Some(400))
        );
        let nested = br#"{"error":{"code":"invalidRange","innererror":{"code":"x","innerError":{"code":"fragmentOverlap"}}}}"#;
        assert_eq!(
            Error::from_response(StatusCode::RANGE_NOT_SATISFIABLE, nested)
                .code
                .as_deref(),
            Some("fragmentOverlap")
        );
        for (status, kind) in [
            (404, Kind::NotFound),
            (409, Kind::AlreadyExists),
            (412, Kind::Modified),
            (423, Kind::Locked),
            (507, Kind::QuotaExceeded),
            (410, Kind::ResyncRequired),
            (503, Kind::Unavailable),
            (403, Kind::PermissionDenied),
        ] {
            assert_eq!(
                Error::from_response(StatusCode::from_u16(status).unwrap(), b"not json").kind,
                kind,
                "{status}"
            );
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        let wait = parse_retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn which_statuses_are_retried() {
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            retry_hint(StatusCode::TOO_MANY_REQUESTS, after),
            Some(Retry::Pause(Duration::from_secs(3)))
        );
        assert_eq!(
            retry_hint(StatusCode::SERVICE_UNAVAILABLE, None),
            Some(Retry::Pause(Duration::from_secs(5)))
        );
        assert_eq!(
            retry_hint(StatusCode::BAD_GATEWAY, None),
            Some(Retry::Backoff)
        );
        assert_eq!(retry_hint(StatusCode::NOT_FOUND, None), None);
        assert_eq!(retry_hint(StatusCode::INSUFFICIENT_STORAGE, None), None);
    }
}
