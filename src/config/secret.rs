//! [`Secret`]: a client secret or token whose value never reaches logs or error messages, and
//! the resolution of the `env:VAR` and `file:/path` forms a configuration value may take.

use std::fmt;
use std::path::Path;

use super::Error;

/// A secret string. `Debug` and `Display` print `Secret(***)`; only [`Secret::expose`] gives the
/// value.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that is already known.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret `raw` gives as a configuration value would (`env:VAR`, `file:PATH` relative to
    /// the working directory, or the value itself); `what` names it in errors.
    pub fn from_reference(what: &str, raw: &str) -> Result<Secret, Error> {
        let base = std::env::current_dir().unwrap_or_default();
        resolve(what, raw, &|var| std::env::var(var).ok(), &base)
    }

    /// The secret value. Call it only where the value is sent (a token request, a comparison).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Compared by value (to tell whether a configuration changed); not in constant time, so not
/// for checking what a client sent.
impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.0 == other.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Resolves the configuration value `raw` of `key`:
/// - `env:VAR`: the value of `VAR`, looked up with `env`;
/// - `file:PATH`: the file's contents without trailing line breaks (a relative `PATH` is joined
///   to `base`);
/// - anything else: the value itself.
///
/// Errors name `key` and the variable or path, never the value. An empty result is an error.
pub(super) fn resolve(
    key: &str,
    raw: &str,
    env: &dyn Fn(&str) -> Option<String>,
    base: &Path,
) -> Result<Secret, Error> {
    let value = if let Some(var) = raw.strip_prefix("env:") {
        if var.is_empty() {
            return Err(Error::invalid(key, "`env:` needs a variable name"));
        }
        env(var).ok_or_else(|| Error::MissingEnv {
            key: key.to_owned(),
            var: var.to_owned(),
        })?
    } else if let Some(path) = raw.strip_prefix("file:") {
        if path.is_empty() {
            return Err(Error::invalid(key, "`file:` needs a path"));
        }
        let path = base.join(path);
        let mut text = std::fs::read_to_string(&path).map_err(|source| Error::SecretFile {
            key: key.to_owned(),
            path: path.clone(),
            source,
        })?;
        let len = text.trim_end_matches(['\r', '\n']).len();
        text.truncate(len);
        text
    } else {
        raw.to_owned()
    };
    if value.is_empty() {
        return Err(Error::invalid(key, "the secret is empty"));
    }
    Ok(Secret(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "Secret(***)");
        assert_eq!(secret.to_string(), "Secret(***)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn literal_env_and_file_forms() {
        let base = Path::new("/");
        assert_eq!(resolve("k", "lit", &no_env, base).unwrap().expose(), "lit");

        let env = |var: &str| (var == "TOKEN_VAR").then(|| "from-env".to_owned());
        let secret = resolve("k", "env:TOKEN_VAR", &env, base).unwrap();
        assert_eq!(secret.expose(), "from-env");

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.txt"), "from-file\r\n\n").unwrap();
        let secret = resolve("k", "file:s.txt", &no_env, dir.path()).unwrap();
        assert_eq!(secret.expose(), "from-file");
    }

    #[test]
    fn errors_name_key_and_source_but_not_value() {
        let base = Path::new("/");
        let err = resolve("admin.token", "env:NO_SUCH_VAR", &no_env, base).unwrap_err();
        assert_eq!(
            err.to_string(),
            "admin.token: environment variable NO_SUCH_VAR is not set"
        );

        let err = resolve(
            "connections[0].client_secret",
            "file:/no/such",
            &no_env,
            base,
        );
        let msg = err.unwrap_err().to_string();
        assert!(msg.starts_with("connections[0].client_secret: cannot read secret file /no/such"));

        let env = |_: &str| Some(String::new());
        let err = resolve("admin.token", "env:EMPTY", &env, base).unwrap_err();
        assert_eq!(err.to_string(), "admin.token: the secret is empty");
    }
}
