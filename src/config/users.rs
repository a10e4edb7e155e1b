//! Stage two for `[[users]]`: login names, credentials, source networks, the FTPS requirement
//! and each user's mount table with its permissions.

use std::collections::HashSet;
use std::net::IpAddr;

use base64::Engine as _;
use ipnet::IpNet;

use super::types::{AuthorizedKey, Connection, Mount, MountTarget, TlsRequired, User};
use super::validate::{Context, known_connection, names, required, unique, upload_commit};
use super::{Error, permissions, raw, values};

/// Validates every user. `ftp_tls` is `ftp.tls_required`, or `None` when FTP is off.
pub(super) fn users(
    raw: Vec<raw::User>,
    connections: &[Connection],
    ftp_tls: Option<TlsRequired>,
    cx: &Context<'_>,
) -> Result<Vec<User>, Error> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(raw.len());
    for (i, u) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("users[{i}].{field}");
        let name = values::user_name(&at("name"), &required(u.name, &at("name"))?)?;
        unique(&mut seen, &at("name"), &name)?;
        let enabled = u.enabled.unwrap_or(true);

        if let Some(hash) = &u.password_hash
            && !hash.starts_with("$argon2")
        {
            return Err(Error::invalid(
                at("password_hash"),
                "must be an Argon2 PHC string starting with \"$argon2\"",
            ));
        }
        let authorized_keys = u
            .authorized_keys
            .iter()
            .enumerate()
            .map(|(j, line)| authorized_key(&at(&format!("authorized_keys[{j}]")), line))
            .collect::<Result<Vec<_>, _>>()?;
        if enabled && u.password_hash.is_none() && authorized_keys.is_empty() {
            return Err(Error::invalid(
                format!("users[{i}]"),
                format!(
                    "user {name:?} can never log in: set password_hash or authorized_keys (or enabled = false)"
                ),
            ));
        }
        let allow_from = u
            .allow_from
            .iter()
            .enumerate()
            .map(|(j, text)| network(&at(&format!("allow_from[{j}]")), text))
            .collect::<Result<Vec<_>, _>>()?;
        let ftp_tls_required =
            ftp_tls_required(&at("ftp_tls_required"), ftp_tls, u.ftp_tls_required)?;

        if enabled && u.mounts.is_empty() {
            return Err(Error::invalid(
                at("mounts"),
                format!("user {name:?} has no [[users.mounts]]"),
            ));
        }
        let mut paths = HashSet::new();
        let mut mounts = Vec::with_capacity(u.mounts.len());
        for (j, m) in u.mounts.into_iter().enumerate() {
            let mount = mount(&format!("users[{i}].mounts[{j}]"), m, connections, cx)?;
            unique(
                &mut paths,
                &format!("users[{i}].mounts[{j}].path"),
                &mount.path,
            )?;
            mounts.push(mount);
        }

        out.push(User {
            name,
            password_hash: u.password_hash,
            authorized_keys,
            allow_from,
            enabled,
            ftp_tls_required,
            mounts,
        });
    }
    Ok(out)
}

/// The effective FTPS requirement; a user value that `ftp.tls_required` would ignore is an error.
fn ftp_tls_required(
    key: &str,
    mode: Option<TlsRequired>,
    user: Option<bool>,
) -> Result<bool, Error> {
    match (mode, user) {
        (Some(TlsRequired::All), Some(false)) => Err(Error::invalid(
            key,
            "false conflicts with ftp.tls_required = \"all\"",
        )),
        (Some(TlsRequired::None), Some(true)) => Err(Error::invalid(
            key,
            "needs ftp.tls_required = \"per-user\" (or \"all\")",
        )),
        (Some(TlsRequired::All), _) => Ok(true),
        (Some(TlsRequired::PerUser), user) => Ok(user.unwrap_or(false)),
        (Some(TlsRequired::None) | None, _) => Ok(false),
    }
}

/// One `[[users.mounts]]` entry at key `at` (`users[i].mounts[j]`).
fn mount(
    at: &str,
    m: raw::Mount,
    connections: &[Connection],
    cx: &Context<'_>,
) -> Result<Mount, Error> {
    let field = |name: &str| format!("{at}.{name}");
    let path = values::slash_path(&field("path"), &required(m.path, &field("path"))?, true)?;
    let target = match (m.connection, m.remote, m.local) {
        (Some(connection), remote, None) => MountTarget::SharePoint {
            connection: known_connection(&field("connection"), connection, connections)?,
            remote: values::slash_path(&field("remote"), remote.as_deref().unwrap_or("/"), false)?,
            names: names(&field("names"), m.names.as_deref())?,
            commit: upload_commit(&field("upload_commit"), m.upload_commit.as_deref())?,
        },
        (None, None, Some(_)) if m.names.is_some() => {
            return Err(Error::invalid(
                field("names"),
                "applies to SharePoint mounts only; a local folder takes any name",
            ));
        }
        (None, None, Some(_)) if m.upload_commit.is_some() => {
            return Err(Error::invalid(
                field("upload_commit"),
                "applies to SharePoint mounts only; a local folder stores at close",
            ));
        }
        (None, None, Some(local)) => MountTarget::Local {
            dir: cx.path(&field("local"), &local)?,
        },
        (None, Some(_), None) => {
            return Err(Error::invalid(at, "remote needs a connection"));
        }
        (None, None, None) => {
            return Err(Error::invalid(at, "give either connection+remote or local"));
        }
        (_, _, Some(_)) => {
            return Err(Error::invalid(
                at,
                "give either connection+remote or local, not both",
            ));
        }
    };
    let permissions = permissions::parse(&field("permissions"), m.permissions)?;
    Ok(Mount {
        path,
        target,
        permissions,
    })
}

/// A CIDR network; a bare address means a single host (/32 or /128).
fn network(key: &str, text: &str) -> Result<IpNet, Error> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            Error::invalid(
                key,
                format!("{text:?} is not an IP address or CIDR network"),
            )
        })
}

/// One OpenSSH public key line, `<type> <base64> [comment]`. The blob must decode and start with
/// the same key type.
fn authorized_key(key: &str, line: &str) -> Result<AuthorizedKey, Error> {
    let mut tokens = line.split_whitespace();
    let (Some(algorithm), Some(blob)) = (tokens.next(), tokens.next()) else {
        return Err(Error::invalid(
            key,
            "expected an OpenSSH public key line: <type> <base64> [comment]",
        ));
    };
    let type_ok = |c: char| c.is_ascii_alphanumeric() || "-_.@".contains(c);
    if !algorithm.chars().all(type_ok) || !algorithm.contains('-') {
        return Err(Error::invalid(
            key,
            format!("{algorithm:?} is not an SSH key type"),
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| Error::invalid(key, "the key is not valid base64"))?;
    let embedded = bytes.split_first_chunk::<4>().and_then(|(len, rest)| {
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        rest.get(..len)
    });
    if embedded != Some(algorithm.as_bytes()) {
        return Err(Error::invalid(
            key,
            format!("the key data is not a {algorithm} key"),
        ));
    }
    Ok(AuthorizedKey {
        algorithm: algorithm.to_owned(),
        base64: blob.to_owned(),
        comment: tokens.collect::<Vec<_>>().join(" "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        assert_eq!(
            network("k", "10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            network("k", "192.0.2.7").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            network("k", "2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(network("k", "10.0.0.0/33").is_err());
    }

    #[test]
    fn authorized_keys() {
        let line = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHKAaBHWMnL+He+bTAO8GGjhzVTELUqQyBuelVdMgVoZ alice@laptop";
        let k = authorized_key("k", line).unwrap();
        assert_eq!(k.algorithm, "ssh-ed25519");
        assert_eq!(k.comment, "alice@laptop");
        assert!(authorized_key("k", "ssh-ed25519").is_err());
        assert!(authorized_key("k", "ssh-ed25519 not*base64").is_err());
        let swapped = line.replace("ssh-ed25519 ", "ssh-rsa ");
        assert!(
            authorized_key("k", &swapped)
                .unwrap_err()
                .to_string()
                .contains("not a ssh-rsa key")
        );
    }
}
