//! Graph-style and identity-platform-style error answers.
//!
//! Every failure the simulator sends is built here, so that bodies and headers match what
//! Microsoft's services send: `{"error":{"code","message","innerError":{...}}}` for Graph and
//! `{"error","error_description":"AADSTSnnnn: ...","error_codes":[n],...}` for tokens.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use crate::wire::{ErrorBody, ErrorResponse, InnerError, TokenError};

tokio::task_local! {
    /// The `request-id` and the caller's `client-request-id` of the request being answered.
    pub static REQUEST_IDS: (String, Option<String>);
}

/// A Graph error answer.
#[derive(Debug, Clone)]
pub struct GraphError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub inner: Option<&'static str>,
    pub retry_after: Option<u64>,
}

pub type GraphResult<T> = Result<T, GraphError>;

impl GraphError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            inner: None,
            retry_after: None,
        }
    }

    pub fn inner(mut self, code: &'static str) -> Self {
        self.inner = Some(code);
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalidRequest", message)
    }

    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "itemNotFound",
            "The resource could not be found.",
        )
    }

    pub fn name_exists() -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "nameAlreadyExists",
            "The specified item name already exists.",
        )
    }

    pub fn access_denied() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "accessDenied",
            "Access denied. You do not have permission to perform this action or access this resource.",
        )
    }

    pub fn locked() -> Self {
        Self::new(
            StatusCode::LOCKED,
            "notAllowed",
            "The resource you are attempting to access is locked.",
        )
        .inner("resourceLocked")
    }

    pub fn unauthenticated(message: &str) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
    }

    pub fn bad_json() -> Self {
        Self::invalid(
            "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.",
        )
    }
}

fn request_ids() -> (String, Option<String>) {
    REQUEST_IDS
        .try_with(Clone::clone)
        .unwrap_or_else(|_| (uuid::Uuid::new_v4().to_string(), None))
}

impl IntoResponse for GraphError {
    fn into_response(self) -> Response {
        let (request_id, client_request_id) = request_ids();
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code.to_string(),
                message: self.message,
                inner_error: Some(InnerError {
                    code: self.inner.map(str::to_string),
                    date: Some(Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()),
                    request_id: Some(request_id),
                    client_request_id,
                    inner_error: None,
                }),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED && self.code == "InvalidAuthenticationToken" {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                ),
            );
        }
        response
    }
}

/// An identity-platform token error (`AADSTSnnnn`).
#[derive(Debug, Clone)]
pub struct AuthError {
    pub status: StatusCode,
    pub error: &'static str,
    pub aadsts: u64,
    pub description: String,
}

impl AuthError {
    pub fn new(status: StatusCode, error: &'static str, aadsts: u64, description: &str) -> Self {
        Self {
            status,
            error,
            aadsts,
            description: description.to_string(),
        }
    }

    /// `AADSTSnnnn: description Trace ID: ... Timestamp: ...`, the `error_description` of a
    /// token answer and of an error sent back to a redirect URI.
    pub fn full_description(&self) -> String {
        let (trace_id, _) = request_ids();
        format!(
            "AADSTS{}: {} Trace ID: {trace_id} Timestamp: {}",
            self.aadsts,
            self.description,
            Utc::now().format("%Y-%m-%d %H:%M:%SZ")
        )
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let (trace_id, correlation_id) = request_ids();
        let body = TokenError {
            error: self.error.to_string(),
            error_description: self.full_description(),
            error_codes: vec![self.aadsts],
            timestamp: Some(Utc::now().format("%Y-%m-%d %H:%M:%SZ").to_string()),
            trace_id: Some(trace_id.clone()),
            correlation_id: Some(correlation_id.unwrap_or(trace_id)),
        };
        (self.status, axum::Json(body)).into_response()
    }
}
