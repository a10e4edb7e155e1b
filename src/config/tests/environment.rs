//! Environment overrides, `env:`/`file:` secrets and loading from a file.

use std::collections::HashMap;
use std::path::Path;

use super::{CONNECTION, STATE};
use crate::config::{Credential, Error, load, load_with_env};

#[test]
fn env_and_file_secrets_resolve_and_stay_hidden() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("admin.token"), "token-from-file\n").unwrap();
    let toml = format!(
        "{STATE}[admin]\nlisten = \"0.0.0.0:8080\"\ntoken = \"file:admin.token\"\n{}",
        CONNECTION.replace("literal-secret-value", "env:SPGATE_TEST_CLIENT_SECRET")
    );
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, &toml).unwrap();
    let env = HashMap::from([(
        "SPGATE_TEST_CLIENT_SECRET".to_owned(),
        "secret-from-env".to_owned(),
    )]);

    let config = load_with_env(&path, &env).unwrap();
    assert_eq!(
        config
            .admin
            .as_ref()
            .unwrap()
            .token
            .as_ref()
            .unwrap()
            .expose(),
        "token-from-file"
    );
    let Credential::ClientSecret(secret) = &config.connections[0].credential else {
        panic!()
    };
    assert_eq!(secret.expose(), "secret-from-env");
    let debug = format!("{config:?}");
    assert!(!debug.contains("secret-from-env") && !debug.contains("token-from-file"));
    assert!(debug.contains("Secret(***)"));

    let message = load_with_env(&path, &HashMap::new())
        .unwrap_err()
        .to_string();
    assert_eq!(
        message,
        "connections[0].client_secret: environment variable SPGATE_TEST_CLIENT_SECRET is not set"
    );
    std::fs::remove_file(dir.path().join("admin.token")).unwrap();
    let message = load_with_env(&path, &env).unwrap_err().to_string();
    let expected = format!(
        "admin.token: cannot read secret file {}",
        dir.path().join("admin.token").display()
    );
    assert!(message.starts_with(&expected), "{message}");
}

#[test]
fn environment_overrides_file_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, format!("{STATE}[sftp]\nlisten = \"0.0.0.0:2222\"\n")).unwrap();
    let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };

    let config = load_with_env(
        &path,
        &env(&[
            ("SPGATE_SFTP__LISTEN", "127.0.0.1:2200"),
            ("SPGATE_FTP__PROXY_PROTOCOL", "true"),
            ("SPGATE_FTP__PASSIVE_PORTS", "6000-6009"),
            ("SPGATE_ADMIN__LISTEN", "127.0.0.1:9000"),
            ("SPGATE_ADMIN__TOKEN", "0123"),
            ("SPGATE_STATE__DIR", "/tmp/other"),
            ("SPGATE_LOG", "debug"),
            ("SPGATE_CONFIG", "/etc/spgate.toml"),
        ]),
    )
    .unwrap();
    assert_eq!(config.sftp.unwrap().listen.to_string(), "127.0.0.1:2200");
    let ftp = config.ftp.unwrap();
    assert_eq!(
        ftp.proxy_protocol,
        Some(2121),
        "the control port defaults to the listen port"
    );
    assert_eq!(ftp.passive_ports, 6000..=6009);
    assert_eq!(config.admin.unwrap().token.unwrap().expose(), "0123");
    assert_eq!(config.state.dir, Path::new("/tmp/other"));

    let message = load_with_env(&path, &env(&[("SPGATE_SFTP__LISTNE", "x")]))
        .unwrap_err()
        .to_string();
    assert!(message.contains("unknown field `listne`"), "{message}");

    let message = load_with_env(&path, &env(&[("SPGATE_USERS__0__NAME", "x")])).unwrap_err();
    assert!(
        message
            .to_string()
            .starts_with("users: SPGATE_USERS__0__NAME: array sections")
    );
}

#[test]
fn load_resolves_relative_paths_against_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, "[state]\ndir = \"state\"\n").unwrap();
    assert_eq!(load(&path).unwrap().state.dir, dir.path().join("state"));
    assert!(matches!(
        load(&dir.path().join("missing.toml")),
        Err(Error::Read { .. })
    ));
}
