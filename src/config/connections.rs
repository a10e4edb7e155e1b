//! Stage two for `[[connections]]`: names, tenant and app ids, the site URL, the library and
//! endpoints with their defaults, and the one credential each connection must have.

use std::collections::HashSet;

use super::types::{Connection, Credential, Limits, Pem, Site};
use super::validate::{Context, choice, required, unique};
use super::{Error, Secret, raw, values};

const DRIVE: &str = "Documents";
const AUTHORITY: &str = "https://login.microsoftonline.com";
const GRAPH_URL: &str = "https://graph.microsoft.com";

/// `certificate = { cert, key }`, each a file's path or the PEM text itself. Text is checked
/// here, so that a certificate that does not parse, or a key that is not a PEM private key, is
/// refused when saved rather than at the first sign-in. Errors never quote the text.
fn certificate(at: &str, raw: raw::CertKey, cx: &Context<'_>) -> Result<Credential, Error> {
    let pem = |field: &str, value: Option<String>| -> Result<(String, Pem), Error> {
        let key = format!("{at}.{field}");
        let value = required(value, &key)?;
        let pem = match Pem::is_text(&value) {
            true => Pem::Text(Secret::new(value)),
            false => Pem::File(cx.path(&key, &value)?),
        };
        Ok((key, pem))
    };
    let (cert_at, cert) = pem("cert", raw.cert)?;
    let (key_at, key) = pem("key", raw.key)?;
    if let Pem::Text(text) = &cert {
        let parsed = x509_parser::pem::parse_x509_pem(text.expose().as_bytes())
            .map_err(|e| e.to_string())
            .and_then(|(_, pem)| pem.parse_x509().map(|_| ()).map_err(|e| e.to_string()));
        if let Err(why) = parsed {
            return Err(Error::invalid(
                cert_at,
                format!("not a PEM certificate: {why}"),
            ));
        }
    }
    if let Pem::Text(text) = &key {
        let label = x509_parser::pem::parse_x509_pem(text.expose().as_bytes())
            .map(|(_, pem)| pem.label)
            .unwrap_or_default();
        if !label.ends_with("PRIVATE KEY") {
            return Err(Error::invalid(
                key_at,
                "not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
            ));
        }
        if let Err(why) = Pem::signing_key(text.expose().as_bytes()) {
            return Err(Error::invalid(key_at, why));
        }
    }
    Ok(Credential::Certificate { cert, key })
}

/// Validates every connection; names are unique.
pub(super) fn connections(
    raw: Vec<raw::Connection>,
    cx: &Context<'_>,
) -> Result<Vec<Connection>, Error> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, c) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("connections[{i}].{field}");
        let limits = limits(i, &c)?;
        let name = values::name(&at("name"), &required(c.name, &at("name"))?)?;
        unique(&mut seen, &at("name"), &name)?;
        let tenant = values::non_empty(&at("tenant"), &required(c.tenant, &at("tenant"))?)?;
        if !tenant
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '.' || ch == '-')
        {
            return Err(Error::invalid(
                at("tenant"),
                "expected a tenant id (GUID) or domain name",
            ));
        }
        let client_id =
            values::non_empty(&at("client_id"), &required(c.client_id, &at("client_id"))?)?;
        let site = site(&at("site"), &required(c.site, &at("site"))?)?;
        let drive = values::non_empty(&at("drive"), c.drive.as_deref().unwrap_or(DRIVE))?;
        let authority = base_url(
            &at("authority"),
            c.authority.as_deref().unwrap_or(AUTHORITY),
        )?;
        let graph_url = base_url(
            &at("graph_url"),
            c.graph_url.as_deref().unwrap_or(GRAPH_URL),
        )?;

        let mut given = Vec::new();
        if let Some(raw) = &c.client_secret {
            given.push((
                "client_secret",
                Credential::ClientSecret(cx.secret(&at("client_secret"), raw)?),
            ));
        }
        if let Some(raw) = c.certificate {
            given.push(("certificate", certificate(&at("certificate"), raw, cx)?));
        }
        if let Some(auth) = &c.auth {
            choice(&at("auth"), auth, &[("delegated", ()), ("device_code", ())])?;
            given.push(("auth", Credential::DeviceCode));
        }
        let given_keys: Vec<&str> = given.iter().map(|(key, _)| *key).collect();
        let credential = match given.pop() {
            Some((_, credential)) if given.is_empty() => credential,
            None => {
                return Err(Error::invalid(
                    format!("connections[{i}]"),
                    format!(
                        "connection {name:?} has no credential: set one of client_secret, certificate or auth = \"delegated\""
                    ),
                ));
            }
            Some(_) => {
                return Err(Error::invalid(
                    format!("connections[{i}]"),
                    format!(
                        "connection {name:?} has more than one credential ({}); keep exactly one",
                        given_keys.join(", ")
                    ),
                ));
            }
        };
        out.push(Connection {
            name,
            tenant,
            client_id,
            site,
            drive,
            authority,
            graph_url,
            credential,
            limits,
        });
    }
    Ok(out)
}

/// 320 KiB: upload fragments must be multiples of this.
const FRAGMENT_UNIT: u64 = 327_680;

fn limits(i: usize, c: &raw::Connection) -> Result<Limits, Error> {
    let at = |field: &str| format!("connections[{i}].{field}");
    let mut limits = Limits::default();
    if let Some(n) = c.max_concurrent_requests {
        if !(1..=256).contains(&n) {
            return Err(Error::invalid(
                at("max_concurrent_requests"),
                "must be between 1 and 256",
            ));
        }
        limits.max_concurrent_requests = n;
    }
    if let Some(rps) = c.requests_per_second {
        if !(rps.is_finite() && rps > 0.0) {
            return Err(Error::invalid(
                at("requests_per_second"),
                "must be a positive number",
            ));
        }
        limits.requests_per_second = Some(rps);
    }
    if let Some(mib) = c.upload_chunk_mib {
        if !(1..=59).contains(&mib) {
            return Err(Error::invalid(
                at("upload_chunk_mib"),
                "must be between 1 and 59 (MiB)",
            ));
        }
        limits.upload_chunk_bytes = (mib * 1024 * 1024 / FRAGMENT_UNIT).max(1) * FRAGMENT_UNIT;
    }
    if let Some(n) = c.download_streams {
        if !(1..=16).contains(&n) {
            return Err(Error::invalid(
                at("download_streams"),
                "must be between 1 and 16",
            ));
        }
        limits.download_streams = n;
    }
    if let Some(n) = c.upload_workers {
        if !(1..=16).contains(&n) {
            return Err(Error::invalid(
                at("upload_workers"),
                "must be between 1 and 16",
            ));
        }
        limits.upload_workers = n;
    }
    if let Some(mib) = c.download_block_mib {
        if !(1..=64).contains(&mib) {
            return Err(Error::invalid(
                at("download_block_mib"),
                "must be between 1 and 64 (MiB)",
            ));
        }
        limits.download_block_bytes = mib * 1024 * 1024;
    }
    if let Some(n) = c.max_retries {
        limits.max_retries = n.min(20);
    }
    if let Some(text) = &c.request_timeout {
        limits.request_timeout = values::duration(&at("request_timeout"), text)?;
    }
    Ok(limits)
}

/// Splits `scheme://authority/path`, requiring an http(s) scheme, a host, and no user info,
/// query or fragment. Returns the lower-cased scheme and authority, and the path.
fn http_url<'a>(key: &str, text: &'a str) -> Result<(String, String, &'a str), Error> {
    let bad = |why: &str| Error::invalid(key, format!("{text:?}: {why}"));
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| bad("not an http(s) URL"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "https" && scheme != "http" {
        return Err(bad("the scheme must be https or http"));
    }
    if rest.contains(['?', '#']) {
        return Err(bad("a query or fragment is not allowed"));
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains(['@', ' ']) {
        return Err(bad("expected a host name after the scheme"));
    }
    Ok((scheme, authority.to_ascii_lowercase(), path))
}

/// A base URL such as `https://graph.microsoft.com`, returned without a trailing slash.
fn base_url(key: &str, text: &str) -> Result<String, Error> {
    let (scheme, host, path) = http_url(key, text.trim())?;
    Ok(format!("{scheme}://{host}{}", path.trim_end_matches('/')))
}

/// A SharePoint site URL: `https://HOST/sites/NAME` or `https://HOST/teams/NAME`.
fn site(key: &str, text: &str) -> Result<Site, Error> {
    let (scheme, host, path) = http_url(key, text.trim())?;
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let path = match segments[..] {
        [kind, name]
            if !name.is_empty()
                && ["sites", "teams"].contains(&kind.to_ascii_lowercase().as_str()) =>
        {
            format!("/{}/{name}", kind.to_ascii_lowercase())
        }
        _ => {
            return Err(Error::invalid(
                key,
                format!("{text:?}: the path must be /sites/NAME or /teams/NAME"),
            ));
        }
    };
    Ok(Site {
        url: format!("{scheme}://{host}{path}"),
        host,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_and_urls() {
        let s = site("k", "https://Contoso.SharePoint.com/sites/partners/").unwrap();
        assert_eq!(s.host, "contoso.sharepoint.com");
        assert_eq!(s.path, "/sites/partners");
        assert_eq!(s.url, "https://contoso.sharepoint.com/sites/partners");
        assert_eq!(
            site("k", "http://127.0.0.1:9000/teams/x").unwrap().host,
            "127.0.0.1:9000"
        );
        for bad in [
            "ftp://h/sites/x",
            "https:///sites/x",
            "https://h/x/y",
            "https://h/sites/",
            "https://h/sites/x/y",
            "https://h/sites/x?a=b",
            "https://u@h/sites/x",
        ] {
            assert!(site("k", bad).is_err(), "{bad}");
        }
        assert_eq!(
            base_url("k", "https://graph.microsoft.com/").unwrap(),
            "https://graph.microsoft.com"
        );
        assert!(base_url("k", "graph.microsoft.com").is_err());
    }
}
