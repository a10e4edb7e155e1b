//! Stage two for `[[notify]]`: alert notification targets (a webhook or an SMTP server), what
//! each is sent, how hard each delivery is tried, and its optional daily digest.

use std::collections::HashSet;
use std::time::Duration;

use lettre::message::Mailbox;

use super::types::{Notify, NotifyChannel, Smtp, Webhook};
use super::validate::{Context, choice, required, unique};
use super::{Error, raw, values};
use crate::events::Kind;

const ATTEMPTS: u32 = 8;
const MAX_ATTEMPTS: u32 = 50;
const TIMEOUT: Duration = Duration::from_secs(10);

/// The keys only one type takes, with that type.
const TYPE_KEYS: [(&str, &str); 10] = [
    ("url", "webhook"),
    ("secret", "webhook"),
    ("host", "email"),
    ("port", "email"),
    ("starttls", "email"),
    ("ca", "email"),
    ("username", "email"),
    ("password", "email"),
    ("from", "email"),
    ("to", "email"),
];

#[derive(Clone, Copy, PartialEq)]
enum Type {
    Webhook,
    Email,
}

/// Validates every notification target; names are unique.
pub(super) fn targets(raw: Vec<raw::Notify>, cx: &Context<'_>) -> Result<Vec<Notify>, Error> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, n) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("notify[{i}].{field}");
        let text = required(n.kind.clone(), &at("type"))?;
        let kind = choice(
            &at("type"),
            &text,
            &[("webhook", Type::Webhook), ("email", Type::Email)],
        )?;
        refuse_other_keys(&n, &text, &at)?;
        let name = match &n.name {
            Some(name) => values::name(&at("name"), name)?,
            None => format!("{text}-{}", i + 1),
        };
        unique(&mut seen, &at("name"), &name)?;
        let events = events(&at("events"), n.events.as_deref())?;
        let digest = n
            .digest
            .as_deref()
            .map(|t| {
                chrono::NaiveTime::parse_from_str(t, "%H:%M").map_err(|_| {
                    Error::invalid(
                        at("digest"),
                        format!("{t:?} is not a time like \"08:00\" (UTC)"),
                    )
                })
            })
            .transpose()?;
        let attempts = n.attempts.unwrap_or(ATTEMPTS);
        if !(1..=MAX_ATTEMPTS).contains(&attempts) {
            return Err(Error::invalid(
                at("attempts"),
                format!("must be between 1 and {MAX_ATTEMPTS}"),
            ));
        }
        let timeout = match &n.timeout {
            Some(text) => values::duration(&at("timeout"), text)?,
            None => TIMEOUT,
        };
        let channel = match kind {
            Type::Webhook => NotifyChannel::Webhook(webhook(n, cx, &at)?),
            Type::Email => NotifyChannel::Email(smtp(n, cx, &at)?),
        };
        out.push(Notify {
            name,
            events,
            digest,
            attempts,
            timeout,
            channel,
        });
    }
    Ok(out)
}

/// A key of the other type is a mistake (a webhook's `host`): refused, naming its type.
fn refuse_other_keys(
    n: &raw::Notify,
    kind: &str,
    at: &dyn Fn(&str) -> String,
) -> Result<(), Error> {
    let given = [
        n.url.is_some(),
        n.secret.is_some(),
        n.host.is_some(),
        n.port.is_some(),
        n.starttls.is_some(),
        n.ca.is_some(),
        n.username.is_some(),
        n.password.is_some(),
        n.from.is_some(),
        n.to.is_some(),
    ];
    for ((key, owner), given) in TYPE_KEYS.iter().zip(given) {
        if given && *owner != kind {
            return Err(Error::invalid(
                at(key),
                format!("only a target of type = \"{owner}\" takes it"),
            ));
        }
    }
    Ok(())
}

/// `events = [...]`: kinds by name; absent means every kind.
fn events(key: &str, names: Option<&[String]>) -> Result<Vec<Kind>, Error> {
    let Some(names) = names else {
        return Ok(Kind::ALL.to_vec());
    };
    if names.is_empty() {
        return Err(Error::invalid(
            key,
            "must name at least one event (leave it out for all)",
        ));
    }
    let mut kinds = names
        .iter()
        .map(|name| {
            Kind::parse(name).ok_or_else(|| {
                let all: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
                Error::invalid(key, format!("{name:?} is not one of {}", all.join(", ")))
            })
        })
        .collect::<Result<Vec<Kind>, Error>>()?;
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

fn webhook(
    n: raw::Notify,
    cx: &Context<'_>,
    at: &dyn Fn(&str) -> String,
) -> Result<Webhook, Error> {
    let text = required(n.url, &at("url"))?;
    // The URL is not quoted back: its path or query may hold a token.
    let url = reqwest::Url::parse(&text)
        .map_err(|e| Error::invalid(at("url"), format!("not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(Error::invalid(
            at("url"),
            "must be an http:// or https:// URL",
        ));
    }
    let secret = n.secret.map(|s| cx.secret(&at("secret"), &s)).transpose()?;
    Ok(Webhook { url, secret })
}

fn smtp(n: raw::Notify, cx: &Context<'_>, at: &dyn Fn(&str) -> String) -> Result<Smtp, Error> {
    let host = values::non_empty(&at("host"), &required(n.host, &at("host"))?)?;
    let starttls = n.starttls.unwrap_or(true);
    let port = match n.port {
        Some(0) => return Err(Error::invalid(at("port"), "must not be 0")),
        Some(port) => port,
        None if starttls => 587,
        None => 25,
    };
    let ca =
        n.ca.map(|text| ca(&at("ca"), &text, starttls, cx))
            .transpose()?;
    let login = match (n.username, n.password) {
        (Some(user), Some(password)) => Some((
            values::non_empty(&at("username"), &user)?,
            cx.secret(&at("password"), &password)?,
        )),
        (None, None) => None,
        (Some(_), None) => {
            return Err(Error::Missing {
                key: at("password"),
            });
        }
        (None, Some(_)) => {
            return Err(Error::Missing {
                key: at("username"),
            });
        }
    };
    let mailbox = |key: &str, text: &str| {
        text.parse::<Mailbox>()
            .map_err(|e| Error::invalid(key, format!("{text:?} is not an e-mail address: {e}")))
    };
    let from = mailbox(&at("from"), &required(n.from, &at("from"))?)?;
    let to = required(n.to, &at("to"))?
        .iter()
        .enumerate()
        .map(|(j, text)| mailbox(&at(&format!("to[{j}]")), text))
        .collect::<Result<Vec<Mailbox>, Error>>()?;
    if to.is_empty() {
        return Err(Error::invalid(at("to"), "must name at least one address"));
    }
    Ok(Smtp {
        host,
        port,
        starttls,
        ca,
        login,
        from,
        to,
    })
}

/// `ca = "PATH"`: a PEM file holding at least one certificate, for a server spoken to with
/// STARTTLS.
fn ca(
    key: &str,
    text: &str,
    starttls: bool,
    cx: &Context<'_>,
) -> Result<std::path::PathBuf, Error> {
    if !starttls {
        return Err(Error::invalid(
            key,
            "only with starttls = true (plain SMTP checks no certificate)",
        ));
    }
    let path = cx.path(key, text)?;
    let pem = std::fs::read(&path)
        .map_err(|e| Error::invalid(key, format!("cannot read {}: {e}", path.display())))?;
    if x509_parser::pem::Pem::iter_from_buffer(&pem)
        .filter_map(|block| block.ok())
        .all(|block| block.label != "CERTIFICATE")
    {
        return Err(Error::invalid(
            key,
            format!("{} holds no PEM certificate", path.display()),
        ));
    }
    Ok(path)
}
