//! What a user may do in a mount: [`Permission`], the set type [`Permissions`], and parsing of
//! `permissions = "*"` / `permissions = ["list", ...]`.

use super::{Error, raw};

/// Permissions of a mount that does not list any.
const DEFAULT: [Permission; 2] = [Permission::List, Permission::Read];

/// One thing a user may do in a mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// List directories.
    List,
    /// Download files.
    Read,
    /// Create new files.
    Write,
    /// Replace existing files.
    Overwrite,
    /// Delete files and empty directories.
    Delete,
    /// Rename or move.
    Rename,
    /// Create directories.
    Mkdir,
}

impl Permission {
    /// Every permission, in the order they are documented.
    pub const ALL: [Permission; 7] = [
        Permission::List,
        Permission::Read,
        Permission::Write,
        Permission::Overwrite,
        Permission::Delete,
        Permission::Rename,
        Permission::Mkdir,
    ];

    /// The name used in the configuration file.
    pub fn name(self) -> &'static str {
        match self {
            Permission::List => "list",
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Overwrite => "overwrite",
            Permission::Delete => "delete",
            Permission::Rename => "rename",
            Permission::Mkdir => "mkdir",
        }
    }

    /// Parses a configuration-file name.
    pub fn from_name(name: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.name() == name)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`Permission`]s.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Permissions(u8);

impl Permissions {
    /// No permissions.
    pub const NONE: Permissions = Permissions(0);

    /// Every permission.
    pub fn all() -> Permissions {
        Permission::ALL.into_iter().collect()
    }

    /// Whether `permission` is granted.
    pub fn allows(self, permission: Permission) -> bool {
        self.0 & permission.bit() != 0
    }

    /// Adds `permission`.
    pub fn insert(&mut self, permission: Permission) {
        self.0 |= permission.bit();
    }

    /// The granted permissions, in documented order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.allows(*p))
    }
}

impl FromIterator<Permission> for Permissions {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Permissions::NONE;
        iter.into_iter().for_each(|p| set.insert(p));
        set
    }
}

impl std::fmt::Debug for Permissions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set()
            .entries(self.iter().map(Permission::name))
            .finish()
    }
}

/// A mount's `permissions` value at `key`: absent -> list + read; `"*"` (alone or in the list)
/// -> everything; otherwise a non-empty list of names.
pub(super) fn parse(key: &str, raw: Option<raw::Permissions>) -> Result<Permissions, Error> {
    let names = match raw {
        None => return Ok(DEFAULT.into_iter().collect()),
        Some(raw::Permissions::Text(text)) if text == "*" => return Ok(Permissions::all()),
        Some(raw::Permissions::Text(_)) => {
            return Err(Error::invalid(
                key,
                "expected \"*\" or a list such as [\"list\", \"read\"]",
            ));
        }
        Some(raw::Permissions::List(names)) => names,
    };
    if names.is_empty() {
        return Err(Error::invalid(key, "empty; grant at least \"list\""));
    }
    let mut set = Permissions::NONE;
    for name in &names {
        if name == "*" {
            return Ok(Permissions::all());
        }
        let permission = Permission::from_name(name).ok_or_else(|| {
            Error::invalid(
                key,
                format!(
                    "unknown permission {name:?} (use list, read, write, overwrite, delete, rename, mkdir or \"*\")"
                ),
            )
        })?;
        set.insert(permission);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(names: &[&str]) -> Option<raw::Permissions> {
        Some(raw::Permissions::List(
            names.iter().map(|n| n.to_string()).collect(),
        ))
    }

    #[test]
    fn parses_defaults_star_and_lists() {
        let default = parse("k", None).unwrap();
        assert_eq!(
            default.iter().collect::<Vec<_>>(),
            [Permission::List, Permission::Read]
        );
        let all = parse("k", Some(raw::Permissions::Text("*".into()))).unwrap();
        assert!(Permission::ALL.iter().all(|p| all.allows(*p)));
        assert_eq!(
            parse("k", list(&["read", "*"])).unwrap(),
            Permissions::all()
        );
        let some = parse("k", list(&["mkdir", "write"])).unwrap();
        assert_eq!(format!("{some:?}"), r#"{"write", "mkdir"}"#);
        assert!(!some.allows(Permission::Read));
    }

    #[test]
    fn rejects_unknown_names() {
        let err = parse("k", list(&["read", "exec"])).unwrap_err().to_string();
        assert!(err.starts_with("k: unknown permission \"exec\""), "{err}");
        assert!(parse("k", list(&[])).is_err());
        assert!(parse("k", Some(raw::Permissions::Text("read".into()))).is_err());
    }
}
