//! Parsers for single configuration values used by several sections: durations, socket
//! addresses, port ranges, names and slash-separated paths. Each takes the key it is parsing so
//! that its error names it.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::{Error, raw};

/// A duration written as one or more `<integer><unit>` groups, unit `s`, `m`, `h` or `d`:
/// `30s`, `5m`, `1h30m`, `1d`. Zero is rejected.
pub(super) fn duration(key: &str, text: &str) -> Result<Duration, Error> {
    let bad = || {
        Error::invalid(
            key,
            format!("{text:?} is not a duration like \"30s\", \"5m\", \"1h30m\", \"1d\""),
        )
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut secs: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let mut chars = rest[digits..].chars();
        let unit = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3600,
            Some('d') => 86_400,
            _ => return Err(bad()),
        };
        secs = number
            .checked_mul(unit)
            .and_then(|s| secs.checked_add(s))
            .ok_or_else(bad)?;
        rest = chars.as_str();
    }
    if secs == 0 {
        return Err(Error::invalid(key, "must be longer than zero"));
    }
    Ok(Duration::from_secs(secs))
}

/// An `IP:port` socket address (`0.0.0.0:2222`, `[::]:2222`).
pub(super) fn socket_addr(key: &str, text: &str) -> Result<SocketAddr, Error> {
    text.trim().parse().map_err(|_| {
        Error::invalid(
            key,
            format!("{text:?} is not an IP:port address like \"0.0.0.0:2222\""),
        )
    })
}

/// A passive port range, `"a-b"` or `[a, b]`, with `0 < a <= b`.
pub(super) fn port_range(key: &str, range: &raw::PortRange) -> Result<RangeInclusive<u16>, Error> {
    let bad = || {
        Error::invalid(
            key,
            r#"expected a port range like "50000-50100" or [50000, 50100]"#,
        )
    };
    let (low, high) = match range {
        raw::PortRange::Text(text) => {
            let (a, b) = text.split_once('-').ok_or_else(bad)?;
            let a: u16 = a.trim().parse().map_err(|_| bad())?;
            let b: u16 = b.trim().parse().map_err(|_| bad())?;
            (a, b)
        }
        raw::PortRange::Pair(pair) => match pair[..] {
            [a, b] => (a, b),
            _ => return Err(bad()),
        },
    };
    if low == 0 || low > high {
        return Err(Error::invalid(
            key,
            format!("{low}-{high}: need 0 < first port <= last port"),
        ));
    }
    Ok(low..=high)
}

/// A connection or sync job name: `[A-Za-z0-9_-]+`.
pub(super) fn name(key: &str, text: &str) -> Result<String, Error> {
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if text.is_empty() || !text.chars().all(ok) {
        return Err(Error::invalid(
            key,
            format!("{text:?}: use only letters, digits, '_' and '-'"),
        ));
    }
    Ok(text.to_owned())
}

/// A login name: `[A-Za-z0-9._@-]+` (so e-mail addresses work).
pub(super) fn user_name(key: &str, text: &str) -> Result<String, Error> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "._@-".contains(c);
    if text.is_empty() || !text.chars().all(ok) {
        return Err(Error::invalid(
            key,
            format!("{text:?}: use only letters, digits, '.', '_', '@' and '-'"),
        ));
    }
    Ok(text.to_owned())
}

/// A non-empty string without surrounding whitespace.
pub(super) fn non_empty(key: &str, text: &str) -> Result<String, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::invalid(key, "must not be empty"));
    }
    Ok(text.to_owned())
}

/// A slash-separated path normalised to `/a/b` form (`/` for the root): repeated slashes and `.`
/// segments dropped, `..` rejected. With `absolute`, the text must start with `/`.
pub(super) fn slash_path(key: &str, text: &str, absolute: bool) -> Result<String, Error> {
    if absolute && !text.starts_with('/') {
        return Err(Error::invalid(key, format!("{text:?} must start with '/'")));
    }
    let mut out = String::new();
    for segment in text.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if segment == ".." {
            return Err(Error::invalid(
                key,
                format!("{text:?} must not contain \"..\""),
            ));
        }
        if segment.contains('\\') || segment.chars().any(char::is_control) {
            return Err(Error::invalid(
                key,
                format!("{text:?} contains '\\' or a control character"),
            ));
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s| duration("k", s).map(|d| d.as_secs());
        assert_eq!(d("30s").unwrap(), 30);
        assert_eq!(d("5m").unwrap(), 300);
        assert_eq!(d("1h").unwrap(), 3600);
        assert_eq!(d("2d").unwrap(), 172_800);
        assert_eq!(d("1h30m").unwrap(), 5400);
        for bad in [
            "",
            "5",
            "m",
            "5x",
            "-5m",
            "1.5h",
            "5 m",
            "99999999999999999999s",
        ] {
            let err = d(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("k: ") && err.contains("not a duration"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            d("0s").unwrap_err().to_string(),
            "k: must be longer than zero"
        );
    }

    #[test]
    fn port_ranges() {
        let text = |s: &str| port_range("k", &raw::PortRange::Text(s.into()));
        assert_eq!(text("50000-50100").unwrap(), 50000..=50100);
        assert_eq!(
            port_range("k", &raw::PortRange::Pair(vec![1, 1])).unwrap(),
            1..=1
        );
        assert!(text("50100-50000").is_err());
        assert!(text("0-10").is_err());
        assert!(text("50000").is_err());
        assert!(port_range("k", &raw::PortRange::Pair(vec![1])).is_err());
    }

    #[test]
    fn slash_paths() {
        assert_eq!(slash_path("k", "/", true).unwrap(), "/");
        assert_eq!(slash_path("k", "//inbox/./a//", true).unwrap(), "/inbox/a");
        assert_eq!(slash_path("k", "Shared/In", false).unwrap(), "/Shared/In");
        assert!(slash_path("k", "inbox", true).is_err());
        assert!(
            slash_path("k", "/a/../b", true)
                .unwrap_err()
                .to_string()
                .contains("..")
        );
    }
}
