//! One case per kind of bad value: the error must name the key and hide the secret.

use super::{CONNECTION, KEY, STATE, error};

/// Each case: TOML after `[state]` and one connection named "sp", and the expected message start.
#[test]
fn bad_values_name_their_key() {
    let user = format!("[[users]]\nname = \"u\"\nauthorized_keys = [\"{KEY}\"]\n");
    let mount = "[[users.mounts]]\npath = \"/\"\nconnection = \"sp\"\n";
    let sync = "[[syncs]]\nname = \"s\"\nlocal = \"/l\"\nconnection = \"sp\"\nremote = \"/\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            "[sftp]\nlisten = \"localhost\"".into(),
            "sftp.listen: \"localhost\" is not an IP:port",
        ),
        (
            "[ftp]\npassive_ports = \"9-1\"".into(),
            "ftp.passive_ports: 9-1: need",
        ),
        (
            "[ftp]\npassive_ports = [1, 2, 3]".into(),
            "ftp.passive_ports: expected a port range",
        ),
        (
            "[limits]\nmax_per_address = 0".into(),
            "limits.max_per_address: must be between 1 and 1000000",
        ),
        (
            "[ftp]\nidle_timeout = \"10 minutes\"".into(),
            "ftp.idle_timeout: \"10 minutes\" is not a duration",
        ),
        (
            "[ftp]\ntls_required = \"all\"".into(),
            "ftp.tls_required: FTPS is required but ftp.tls",
        ),
        (
            "[ftp]\nproxy_control_port = 21".into(),
            "ftp.proxy_control_port: set only with ftp.proxy_protocol = true",
        ),
        (
            "[ftp]\ntls_required = \"yes\"".into(),
            "ftp.tls_required: \"yes\" is not one of \"none\", \"all\", \"per-user\"",
        ),
        (
            "[ftp]\ntls = { cert = \"c\" }".into(),
            "ftp.tls.key: required",
        ),
        (
            "[ftp]\ngreeting = \"a\\nb\"".into(),
            "ftp.greeting: must be a single line",
        ),
        (
            "[admin]\nlisten = \"0.0.0.0:8080\"".into(),
            "admin.token: required when admin.listen",
        ),
        (
            CONNECTION.into(),
            "connections[1].name: \"sp\" is used more than once",
        ),
        (
            CONNECTION.replace("\"sp\"", "\"a b\""),
            "connections[1].name: \"a b\": use only",
        ),
        (
            CONNECTION
                .replace("sp\"", "x\"")
                .replace("/sites/partners", "/partners"),
            "connections[1].site: \"https://contoso.sharepoint.com/partners\": the path must be",
        ),
        (
            CONNECTION
                .replace("sp\"", "x\"")
                .replace("client_secret = \"literal-secret-value\"", ""),
            "connections[1]: connection \"x\" has no credential",
        ),
        (
            CONNECTION.replace("sp\"", "x\"") + "auth = \"device_code\"\n",
            "connections[1]: connection \"x\" has more than one credential (client_secret, auth)",
        ),
        (
            CONNECTION.replace("sp\"", "x\"").replace(
                "client_secret = \"literal-secret-value\"",
                "auth = \"password\"",
            ),
            "connections[1].auth: \"password\" is not one of \"delegated\", \"device_code\"",
        ),
        (
            CONNECTION.replace("sp\"", "x\"").replace(
                "client_secret = \"literal-secret-value\"",
                "certificate = { key = \"k\" }",
            ),
            "connections[1].certificate.cert: required",
        ),
        (
            CONNECTION
                .replace("sp\"", "x\"")
                .replace("tenant = \"contoso.onmicrosoft.com\"\n", ""),
            "connections[1].tenant: required",
        ),
        (
            CONNECTION
                .replace("sp\"", "x\"")
                .replace("contoso.onmicrosoft.com", "a/b"),
            "connections[1].tenant: expected a tenant id",
        ),
        (
            "download_streams = 0".into(),
            "connections[0].download_streams: must be between 1 and 16",
        ),
        (
            "download_block_mib = 65".into(),
            "connections[0].download_block_mib: must be between 1 and 64 (MiB)",
        ),
        (
            format!("{user}password_hash = \"$2b$hash\"\n{mount}"),
            "users[0].password_hash: must be an Argon2 PHC string",
        ),
        (
            "[[users]]\nname = \"u\"\n[[users.mounts]]\npath = \"/\"\nlocal = \"/x\"".into(),
            "users[0]: user \"u\" can never log in",
        ),
        (
            format!("{user}{mount}[[users]]\nname = \"u\"\nenabled = false"),
            "users[1].name: \"u\" is used more than once",
        ),
        (
            "[[users]]\nname = \"u\"\nauthorized_keys = [\"ssh-ed25519 AAAA\"]".into(),
            "users[0].authorized_keys[0]: the key data is not a ssh-ed25519 key",
        ),
        (
            format!("{user}allow_from = [\"10.0.0.0/8\", \"everywhere\"]\n{mount}"),
            "users[0].allow_from[1]: \"everywhere\" is not an IP address",
        ),
        (
            format!("{user}ftp_tls_required = true\n{mount}[ftp]\n"),
            "users[0].ftp_tls_required: needs ftp.tls_required = \"per-user\"",
        ),
        (
            user.clone(),
            "users[0].mounts: user \"u\" has no [[users.mounts]]",
        ),
        (
            format!(
                "{user}{mount}[[users.mounts]]\npath = \"/in\"\nlocal = \"/x\"\n{}local = \"/y\"",
                mount.replace("\"/\"", "\"/other\"")
            ),
            "users[0].mounts[2]: give either connection+remote or local, not both",
        ),
        (
            format!("{user}{mount}[[users.mounts]]\npath = \"/x\"\nremote = \"/a\""),
            "users[0].mounts[1]: remote needs a connection",
        ),
        (
            format!("{user}{mount}[[users.mounts]]\npath = \"/x\""),
            "users[0].mounts[1]: give either connection+remote or local",
        ),
        (
            format!("{user}{mount}{mount}"),
            "users[0].mounts[1].path: \"/\" is used more than once",
        ),
        (
            format!("{user}{}", mount.replace("\"/\"", "\"/a/../b\"")),
            "users[0].mounts[0].path: \"/a/../b\" must not contain \"..\"",
        ),
        (
            format!("{user}{}", mount.replace("\"/\"", "\"inbox\"")),
            "users[0].mounts[0].path: \"inbox\" must start with '/'",
        ),
        (
            format!("{user}{}", mount.replace("\"sp\"", "\"nope\"")),
            "users[0].mounts[0].connection: no connection named \"nope\"",
        ),
        (
            format!("{user}{mount}permissions = [\"read\", \"execute\"]"),
            "users[0].mounts[0].permissions: unknown permission \"execute\"",
        ),
        (
            format!("{user}{mount}permissions = \"read\""),
            "users[0].mounts[0].permissions: expected \"*\" or a list",
        ),
        (
            format!("{user}{mount}permissions = []"),
            "users[0].mounts[0].permissions: empty",
        ),
        (
            format!("{user}{mount}names = \"escape\""),
            "users[0].mounts[0].names: \"escape\" is not one of \"encode\", \"refuse\"",
        ),
        (
            format!("{user}[[users.mounts]]\npath = \"/\"\nlocal = \"/x\"\nnames = \"refuse\""),
            "users[0].mounts[0].names: applies to SharePoint mounts only",
        ),
        (
            format!("{sync}direction = \"push\"\nnames = \"keep\""),
            "syncs[0].names: \"keep\" is not one of",
        ),
        (
            format!("{sync}direction = \"two-way\"\nafter_copy = \"delete\""),
            "syncs[0].after_copy: \"delete\" only works with",
        ),
        (
            format!("{sync}direction = \"push\"\ninterval = \"5\""),
            "syncs[0].interval: \"5\" is not a duration",
        ),
        (
            format!("{sync}direction = \"sideways\""),
            "syncs[0].direction: \"sideways\" is not one of",
        ),
        (sync.into(), "syncs[0].direction: required"),
        (
            format!("{sync}direction = \"pull\"\nconflict = \"mine\""),
            "syncs[0].conflict: \"mine\" is not one of",
        ),
        (
            format!("{sync}direction = \"pull\"\nmax_delete = {{ percent = 101 }}"),
            "syncs[0].max_delete.percent: must be between 0 and 100",
        ),
        (
            format!("{}direction = \"pull\"", sync.replace("\"sp\"", "\"nope\"")),
            "syncs[0].connection: no connection named \"nope\"",
        ),
        (
            format!("{sync}direction = \"pull\"\n{sync}direction = \"pull\""),
            "syncs[1].name: \"s\" is used more than once",
        ),
    ];
    for (extra, expected) in cases {
        let message = error(&format!("{STATE}{CONNECTION}{extra}\n"));
        assert!(
            message.starts_with(expected),
            "expected {expected:?}\n     got {message:?}"
        );
        assert!(!message.contains("literal-secret-value"), "{message}");
    }
    assert_eq!(error(""), "state: required");
    assert_eq!(error("[state]"), "state.dir: required");
}

#[test]
fn unknown_and_mistyped_keys_are_named() {
    let message = error(&format!("{STATE}[sftp]\nlisten_on = \"0.0.0.0:22\"\n"));
    assert!(
        message.contains("unknown field `listen_on`") && message.contains("sftp"),
        "{message}"
    );

    let message = error(&format!("{STATE}{CONNECTION}client_secert = \"x\"\n"));
    assert!(
        message.contains("client_secert") && message.contains("connections[0]"),
        "{message}"
    );

    let message = error(&format!("{STATE}[ftp]\nproxy_protocol = \"maybe\"\n"));
    assert!(message.contains("ftp.proxy_protocol"), "{message}");

    let message = error(&format!(
        "{STATE}[[syncs]]\nname = \"s\"\nmax_delete = {{ count = -1 }}\n"
    ));
    assert!(message.contains("syncs[0].max_delete.count"), "{message}");
}

#[test]
fn syntax_errors_give_a_position_but_no_excerpt() {
    let message = error(&format!(
        "{STATE}{}",
        CONNECTION.replace("value\"", "value")
    ));
    assert!(
        message.starts_with("<string>:9:38: invalid TOML"),
        "{message}"
    );
    assert!(!message.contains("literal-secret"), "{message}");
}
