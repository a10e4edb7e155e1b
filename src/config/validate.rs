//! Stage two: raw structs -> validated [`Config`]. Drives the per-section validators
//! ([`super::connections`], [`super::users`], [`super::syncs`]), checks the service sections
//! (`[state]`, `[sftp]`, `[ftp]`, `[admin]`) with their defaults, and holds the helpers they share.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::types::{
    Admin, Audit, CertKey, ClientLimits, Config, Connection, Database, Ftp, Names, Sftp, State,
    TlsRequired, UploadCommit,
};
use super::{Error, Secret, connections, notify, raw, secret, syncs, users, values};

const SFTP_LISTEN: &str = "0.0.0.0:2222";
const LOGIN_GRACE: Duration = Duration::from_secs(120);
const FTP_LISTEN: &str = "0.0.0.0:2121";
const FTP_PASSIVE_PORTS: std::ops::RangeInclusive<u16> = 50000..=50100;
const FTP_IDLE_TIMEOUT: Duration = Duration::from_secs(600);
const FTP_GREETING: &str = "spgate FTP gateway ready";

/// What validation needs from outside the file.
pub(super) struct Context<'a> {
    /// Looks up an environment variable for `env:` secrets.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// Directory that relative paths are joined to.
    pub base: &'a Path,
}

impl Context<'_> {
    /// A non-empty file system path, joined to the base directory when relative.
    pub fn path(&self, key: &str, text: &str) -> Result<PathBuf, Error> {
        Ok(self.base.join(values::non_empty(key, text)?))
    }

    /// Resolves a secret value (literal, `env:VAR` or `file:PATH`).
    pub fn secret(&self, key: &str, raw: &str) -> Result<Secret, Error> {
        secret::resolve(key, raw, self.env, self.base)
    }
}

/// Unwraps a required value.
pub(super) fn required<T>(value: Option<T>, key: &str) -> Result<T, Error> {
    value.ok_or_else(|| Error::Missing {
        key: key.to_owned(),
    })
}

/// One of a fixed set of strings.
pub(super) fn choice<T: Copy>(key: &str, text: &str, options: &[(&str, T)]) -> Result<T, Error> {
    options
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| {
            let names: Vec<String> = options
                .iter()
                .map(|(name, _)| format!("{name:?}"))
                .collect();
            Error::invalid(key, format!("{text:?} is not one of {}", names.join(", ")))
        })
}

/// `names = "encode" | "refuse"` of a SharePoint mount or a sync job (default `encode`).
pub(super) fn names(key: &str, text: Option<&str>) -> Result<Names, Error> {
    choice(
        key,
        text.unwrap_or("encode"),
        &[("encode", Names::Encode), ("refuse", Names::Refuse)],
    )
}

/// `upload_commit`: `"queued"` (default), `"close"` or `"close:DURATION"`.
pub(super) fn upload_commit(key: &str, text: Option<&str>) -> Result<UploadCommit, Error> {
    match text.unwrap_or("queued") {
        "queued" => Ok(UploadCommit::Queued),
        "close" => Ok(UploadCommit::Close),
        other => match other.strip_prefix("close:") {
            Some(wait) => {
                let wait = super::values::duration(key, wait)?;
                if wait.is_zero() || wait > Duration::from_secs(600) {
                    return Err(Error::invalid(key, "the wait must be between 1s and 10m"));
                }
                Ok(UploadCommit::CloseWithin(wait))
            }
            None => Err(Error::invalid(
                key,
                "must be \"queued\", \"close\" or \"close:DURATION\" (e.g. \"close:10s\")",
            )),
        },
    }
}

/// Records `name` in `seen`, failing if it was already there.
pub(super) fn unique(seen: &mut HashSet<String>, key: &str, name: &str) -> Result<(), Error> {
    if seen.insert(name.to_owned()) {
        Ok(())
    } else {
        Err(Error::Duplicate {
            key: key.to_owned(),
            name: name.to_owned(),
        })
    }
}

/// Validates the whole file.
pub(super) fn config(raw: raw::Config, cx: &Context<'_>) -> Result<Config, Error> {
    let state = required(raw.state, "state")?;
    let dir = cx.path("state.dir", &required(state.dir, "state.dir")?)?;
    let password = state
        .database_password
        .map(|p| cx.secret("state.database_password", &p))
        .transpose()?;
    let database = match state.database.as_deref() {
        None => Database::in_dir(&dir),
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| Error::invalid("state.database", format!("not a URL: {e}")))?;
            if parsed.password().is_some() {
                return Err(Error::invalid(
                    "state.database",
                    "put the password in state.database_password (env: or file:), not in the URL",
                ));
            }
            Database::Postgres {
                url: url.to_string(),
                password,
            }
        }
        Some(url) if url.starts_with("sqlite:") => {
            let path = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or_default();
            Database::Sqlite(cx.path("state.database", path)?)
        }
        Some(_) => {
            return Err(Error::invalid(
                "state.database",
                "must be a postgres://... URL, or sqlite:PATH (default: SQLite in state.dir)",
            ));
        }
    };
    let state = State {
        dir,
        database,
        secret_key: state
            .secret_key
            .map(|k| cx.secret("state.secret_key", &k))
            .transpose()?,
    };
    let sftp = raw.sftp.map(sftp).transpose()?.flatten();
    let ftp = raw.ftp.map(|f| ftp(f, cx)).transpose()?.flatten();
    let admin = raw.admin.map(|a| admin(a, cx)).transpose()?.flatten();
    let (audit, audit_retention) = audit(raw.audit)?;
    let limits = limits(raw.limits.unwrap_or_default())?;
    let connections = connections::connections(raw.connections, cx)?;
    let tls_required = ftp.as_ref().map(|f| f.tls_required);
    let users = users::users(raw.users, &connections, tls_required, cx)?;
    let syncs = syncs::syncs(raw.syncs, &connections, cx)?;
    let notify = notify::targets(raw.notify, cx)?;
    Ok(Config {
        source: super::Source::new(
            "",
            "<unassembled>",
            Default::default(),
            false,
            PathBuf::new(),
        ),
        state,
        sftp,
        ftp,
        admin,
        audit,
        audit_retention,
        limits,
        connections,
        users,
        syncs,
        notify,
    })
}

fn limits(raw: raw::Limits) -> Result<ClientLimits, Error> {
    let defaults = ClientLimits::default();
    let value = |key: &str, given: Option<u64>, default: usize, least: u64| {
        let Some(n) = given else {
            return Ok(default);
        };
        if !(least..=1_000_000).contains(&n) {
            return Err(Error::invalid(
                key,
                format!("must be between {least} and 1000000"),
            ));
        }
        Ok(n as usize)
    };
    Ok(ClientLimits {
        max_connections: value(
            "limits.max_connections",
            raw.max_connections,
            defaults.max_connections,
            1,
        )?,
        max_per_address: value(
            "limits.max_per_address",
            raw.max_per_address,
            defaults.max_per_address,
            1,
        )?,
        max_unauthenticated: value(
            "limits.max_unauthenticated",
            raw.max_unauthenticated,
            defaults.max_unauthenticated,
            1,
        )?,
        max_sessions_per_user: value(
            "limits.max_sessions_per_user",
            raw.max_sessions_per_user,
            defaults.max_sessions_per_user,
            0,
        )?,
        max_channels_per_connection: value(
            "limits.max_channels_per_connection",
            raw.max_channels_per_connection,
            defaults.max_channels_per_connection,
            1,
        )?,
        max_handles_per_login: value(
            "limits.max_handles_per_login",
            raw.max_handles_per_login,
            defaults.max_handles_per_login,
            1,
        )?,
    })
}

/// How long the state store keeps audit events unless `[audit] retention` says otherwise.
const AUDIT_RETENTION: std::time::Duration = std::time::Duration::from_secs(30 * 86_400);

/// `[audit]`: the sink, and how long the state store keeps events (default 30 days).
fn audit(raw: Option<raw::Audit>) -> Result<(Audit, std::time::Duration), Error> {
    let raw = raw.unwrap_or(raw::Audit {
        target: None,
        max_size_mib: None,
        keep: None,
        retention: None,
    });
    let retention = match &raw.retention {
        Some(text) => values::duration("audit.retention", text)?,
        None => AUDIT_RETENTION,
    };
    let target = choice(
        "audit.target",
        raw.target.as_deref().unwrap_or("file"),
        &[("file", 0u8), ("stdout", 1), ("off", 2)],
    )?;
    let max_size_mib = raw.max_size_mib.unwrap_or(100);
    if !(1..=100_000).contains(&max_size_mib) {
        return Err(Error::invalid(
            "audit.max_size_mib",
            "must be between 1 and 100000",
        ));
    }
    let keep = raw.keep.unwrap_or(10);
    if keep > 1000 {
        return Err(Error::invalid("audit.keep", "must be at most 1000"));
    }
    let sink = match target {
        0 => Audit::File {
            max_bytes: max_size_mib * 1024 * 1024,
            keep,
        },
        1 => Audit::Stdout,
        _ => Audit::Off,
    };
    Ok((sink, retention))
}

fn sftp(raw: raw::Sftp) -> Result<Option<Sftp>, Error> {
    let listen = values::socket_addr("sftp.listen", raw.listen.as_deref().unwrap_or(SFTP_LISTEN))?;
    let proxy_protocol = raw.proxy_protocol.unwrap_or(false);
    let login_grace_time = match raw.login_grace_time {
        Some(text) => values::duration("sftp.login_grace_time", &text)?,
        None => LOGIN_GRACE,
    };
    Ok(raw.enabled.unwrap_or(true).then_some(Sftp {
        listen,
        proxy_protocol,
        login_grace_time,
    }))
}

fn ftp(raw: raw::Ftp, cx: &Context<'_>) -> Result<Option<Ftp>, Error> {
    let listen = values::socket_addr("ftp.listen", raw.listen.as_deref().unwrap_or(FTP_LISTEN))?;
    let passive_ports = match &raw.passive_ports {
        Some(range) => values::port_range("ftp.passive_ports", range)?,
        None => FTP_PASSIVE_PORTS,
    };
    let passive_host = raw
        .passive_host
        .map(|h| values::non_empty("ftp.passive_host", &h))
        .transpose()?;
    let idle_timeout = match raw.idle_timeout {
        Some(text) => values::duration("ftp.idle_timeout", &text)?,
        None => FTP_IDLE_TIMEOUT,
    };
    let login_grace_time = match raw.login_grace_time {
        Some(text) => values::duration("ftp.login_grace_time", &text)?,
        None => LOGIN_GRACE,
    };
    let greeting = raw.greeting.unwrap_or_else(|| FTP_GREETING.to_owned());
    if greeting.chars().any(char::is_control) {
        return Err(Error::invalid(
            "ftp.greeting",
            "must be a single line of text",
        ));
    }
    let tls = raw.tls.map(|t| cert_key("ftp.tls", t, cx)).transpose()?;
    let tls_required = choice(
        "ftp.tls_required",
        raw.tls_required.as_deref().unwrap_or("none"),
        &[
            ("none", TlsRequired::None),
            ("all", TlsRequired::All),
            ("per-user", TlsRequired::PerUser),
        ],
    )?;
    if tls_required != TlsRequired::None && tls.is_none() {
        return Err(Error::invalid(
            "ftp.tls_required",
            "FTPS is required but ftp.tls is not set",
        ));
    }
    let ftp = Ftp {
        listen,
        passive_ports,
        passive_host,
        idle_timeout,
        login_grace_time,
        greeting,
        tls,
        tls_required,
        proxy_protocol: match (raw.proxy_protocol.unwrap_or(false), raw.proxy_control_port) {
            (true, port) => Some(port.unwrap_or(listen.port())),
            (false, None) => None,
            (false, Some(_)) => {
                return Err(Error::invalid(
                    "ftp.proxy_control_port",
                    "set only with ftp.proxy_protocol = true",
                ));
            }
        },
    };
    Ok(raw.enabled.unwrap_or(true).then_some(ftp))
}

/// `{ cert = "...", key = "..." }`, both required.
pub(super) fn cert_key(key: &str, raw: raw::CertKey, cx: &Context<'_>) -> Result<CertKey, Error> {
    let cert_key = format!("{key}.cert");
    let key_key = format!("{key}.key");
    Ok(CertKey {
        cert: cx.path(&cert_key, &required(raw.cert, &cert_key)?)?,
        key: cx.path(&key_key, &required(raw.key, &key_key)?)?,
    })
}

/// `[admin] listen` when the section is present without it.
const ADMIN_LISTEN: &str = "127.0.0.1:9090";

fn admin(raw: raw::Admin, cx: &Context<'_>) -> Result<Option<Admin>, Error> {
    let token = raw
        .token
        .map(|t| cx.secret("admin.token", &t))
        .transpose()?;
    let listen = values::socket_addr(
        "admin.listen",
        raw.listen.as_deref().unwrap_or(ADMIN_LISTEN),
    )?;
    if token.is_none() && !listen.ip().is_loopback() {
        return Err(Error::invalid(
            "admin.token",
            "required when admin.listen is not a loopback address",
        ));
    }
    let strict = choice(
        "admin.readiness",
        raw.readiness.as_deref().unwrap_or("full"),
        &[("full", true), ("listeners", false)],
    )?;
    let tls = raw.tls.map(|t| cert_key("admin.tls", t, cx)).transpose()?;
    let public_url = raw
        .public_url
        .map(|url| {
            let url = url.trim().trim_end_matches('/').to_string();
            let ok = (url.starts_with("https://") || url.starts_with("http://"))
                && !url.contains(['?', '#', ' ']);
            if ok {
                Ok(url)
            } else {
                Err(Error::invalid(
                    "admin.public_url",
                    "expected an http(s) URL such as https://spgate.example.com",
                ))
            }
        })
        .transpose()?;
    Ok(Some(Admin {
        listen,
        token,
        ready_needs_health: strict,
        tls,
        public_url,
    }))
}

/// `name` if it names one of `connections`.
pub(super) fn known_connection(
    key: &str,
    name: String,
    connections: &[Connection],
) -> Result<String, Error> {
    if connections.iter().any(|c| c.name == name) {
        Ok(name)
    } else {
        Err(Error::UnknownConnection {
            key: key.to_owned(),
            name,
        })
    }
}
