//! Where the answer of a sign-in goes: the redirect URI, matched against the app's
//! registration as Entra matches it (scheme, host, path and query; the port too, except for
//! loopback hosts), and the answer sent there the way the request asked (`response_mode`).

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::request::{Rejection, param};
use super::{aadsts, pages};
use crate::sim::auth::Params;
use crate::sim::error::AuthError;
use crate::sim::state::App;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    Query,
    Fragment,
    FormPost,
}

/// Where and how the answer goes back to the app.
#[derive(Debug, Clone)]
pub struct ReplyTo {
    pub redirect_uri: String,
    pub mode: ResponseMode,
    pub state: Option<String>,
}

/// Where a request's answer goes, once its redirect URI is known to be the app's; a page
/// otherwise (no redirect URI 900971, one the app did not register 50011).
pub fn reply_to(app: &App, params: &Params) -> Result<ReplyTo, Rejection> {
    let Some(redirect_uri) = param(params, "redirect_uri") else {
        return Err(Rejection::Page(aadsts(
            "invalid_request",
            900971,
            "No reply address provided.",
        )));
    };
    if !app
        .redirect_uris
        .iter()
        .any(|registered| redirect_matches(registered, redirect_uri))
    {
        return Err(Rejection::Page(aadsts(
            "invalid_request",
            50011,
            &format!(
                "The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal. Navigate to https://aka.ms/redirectUriMismatchError to learn more about how to fix this.",
                app.client_id
            ),
        )));
    }
    let mut reply = ReplyTo {
        redirect_uri: redirect_uri.to_string(),
        mode: ResponseMode::Query,
        state: param(params, "state").map(str::to_string),
    };
    reply.mode = match param(params, "response_mode") {
        None | Some("query") => ResponseMode::Query,
        Some("fragment") => ResponseMode::Fragment,
        Some("form_post") => ResponseMode::FormPost,
        Some(other) => {
            let e = aadsts(
                "invalid_request",
                70007,
                &format!(
                    "The response_mode '{other}' is not supported: use query, fragment or form_post."
                ),
            );
            return Err(Rejection::Reply(reply, e));
        }
    };
    Ok(reply)
}

/// Hosts whose redirect URIs may use `http` and match on any port.
pub fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host == "127.0.0.1" || host == "[::1]"
}

/// Whether `requested` names the registered redirect URI: scheme and host (ignoring case),
/// path and query (exactly) and the port, which Entra ignores for loopback hosts.
pub fn redirect_matches(registered: &str, requested: &str) -> bool {
    let (Ok(registered), Ok(requested)) = (registered.parse::<Uri>(), requested.parse::<Uri>())
    else {
        return false;
    };
    let (Some(scheme), Some(host)) = (registered.scheme_str(), registered.host()) else {
        return false;
    };
    let same_origin = requested
        .scheme_str()
        .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        && requested
            .host()
            .is_some_and(|h| h.eq_ignore_ascii_case(host));
    same_origin
        && (is_loopback(host) || port(&registered) == port(&requested))
        && registered.path() == requested.path()
        && registered.query() == requested.query()
}

fn port(uri: &Uri) -> Option<u16> {
    uri.port_u16().or(match uri.scheme_str() {
        Some(s) if s.eq_ignore_ascii_case("https") => Some(443),
        Some(s) if s.eq_ignore_ascii_case("http") => Some(80),
        _ => None,
    })
}

/// Checks a redirect URI of the seed: absolute, no fragment, `http` only to a loopback host.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.contains('#') {
        return Err("a redirect URI cannot have a fragment".into());
    }
    let parsed: Uri = uri.parse().map_err(|e| format!("not a URI: {e}"))?;
    let (Some(scheme), Some(host)) = (parsed.scheme_str(), parsed.host()) else {
        return Err("not an absolute URI".into());
    };
    if scheme.eq_ignore_ascii_case("http") && !is_loopback(host) {
        return Err(
            "http is allowed only for localhost, 127.0.0.1 and [::1], as in Entra; use https"
                .into(),
        );
    }
    Ok(())
}

impl ReplyTo {
    /// Sends `params` (and `state`) to the redirect URI the way the request asked for.
    pub fn send(&self, mut params: Vec<(&'static str, String)>) -> Response {
        if let Some(state) = &self.state {
            params.push(("state", state.clone()));
        }
        let encoded = serde_urlencoded::to_string(&params).unwrap_or_default();
        let location = match self.mode {
            ResponseMode::FormPost => return pages::form_post(&self.redirect_uri, &params),
            ResponseMode::Fragment => format!("{}#{encoded}", self.redirect_uri),
            ResponseMode::Query if self.redirect_uri.contains('?') => {
                format!("{}&{encoded}", self.redirect_uri)
            }
            ResponseMode::Query => format!("{}?{encoded}", self.redirect_uri),
        };
        (
            StatusCode::FOUND,
            [
                (header::LOCATION, location),
                (header::CACHE_CONTROL, "no-store".to_string()),
            ],
        )
            .into_response()
    }

    /// Sends an error back to the app.
    pub fn error(&self, e: &AuthError) -> Response {
        self.send(vec![
            ("error", e.error.to_string()),
            ("error_description", e.full_description()),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port() {
        let registered = "http://localhost/console/oauth/callback";
        assert!(redirect_matches(registered, registered));
        assert!(redirect_matches(
            registered,
            "http://localhost:53123/console/oauth/callback"
        ));
        assert!(redirect_matches(
            "http://127.0.0.1:8080/cb",
            "http://127.0.0.1:9/cb"
        ));
        assert!(redirect_matches("http://[::1]/cb", "http://[::1]:4711/cb"));
        assert!(!redirect_matches(
            registered,
            "http://127.0.0.1/console/oauth/callback"
        ));
        assert!(!redirect_matches(
            registered,
            "https://localhost/console/oauth/callback"
        ));
        assert!(!redirect_matches(
            registered,
            "http://localhost:53123/console/oauth/Callback"
        ));
        assert!(!redirect_matches(
            registered,
            "http://localhost/console/oauth/callback?x=1"
        ));
    }

    #[test]
    fn other_hosts_match_on_their_port() {
        let registered = "https://gateway.example.com/console/oauth/callback";
        assert!(redirect_matches(
            registered,
            "https://GATEWAY.example.com:443/console/oauth/callback"
        ));
        assert!(!redirect_matches(
            registered,
            "https://gateway.example.com:8443/console/oauth/callback"
        ));
        assert!(!redirect_matches(
            registered,
            "https://gateway.example.com.evil.test/console/oauth/callback"
        ));
        assert!(!redirect_matches(registered, "not a uri"));
    }

    #[test]
    fn seed_redirect_uris_follow_entra_rules() {
        assert!(check_redirect_uri("http://localhost/cb").is_ok());
        assert!(check_redirect_uri("https://gw.example.com/cb").is_ok());
        assert!(check_redirect_uri("myapp://auth").is_ok());
        assert!(check_redirect_uri("http://gw.example.com/cb").is_err());
        assert!(check_redirect_uri("https://gw.example.com/cb#x").is_err());
        assert!(check_redirect_uri("/relative").is_err());
    }
}
