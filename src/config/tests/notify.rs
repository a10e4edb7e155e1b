//! `[[notify]]`: defaults, each type's keys, and bad values named by key without the secret.

use std::time::Duration;

use super::{STATE, error, parse_str};
use crate::config::NotifyChannel;
use crate::events::Kind;

#[test]
fn targets_take_their_defaults() {
    let config = parse_str(&format!(
        "{STATE}[[notify]]\ntype = \"webhook\"\nurl = \"https://h.example/x?token=abc\"\n\
         [[notify]]\ntype = \"email\"\nhost = \"smtp.example\"\nfrom = \"a@example.com\"\n\
         to = [\"Ops <ops@example.com>\"]\n\
         [[notify]]\nname = \"relay\"\ntype = \"email\"\nhost = \"localhost\"\nstarttls = false\n\
         username = \"u\"\npassword = \"hunter2\"\nfrom = \"a@example.com\"\nto = [\"b@example.com\"]\n\
         events = [\"user_locked\", \"sync_aborted\", \"user_locked\"]\nattempts = 3\ntimeout = \"2s\"\n"
    ))
    .unwrap();
    let [hook, mail, relay] = &config.notify[..] else {
        panic!("{:?}", config.notify);
    };
    assert_eq!(
        (hook.name.as_str(), mail.name.as_str()),
        ("webhook-1", "email-2")
    );
    assert_eq!(hook.events, Kind::ALL);
    assert_eq!((hook.attempts, hook.timeout), (8, Duration::from_secs(10)));
    let NotifyChannel::Webhook(webhook) = &hook.channel else {
        panic!("{hook:?}");
    };
    assert!(webhook.secret.is_none());
    assert!(
        !format!("{hook:?}").contains("token"),
        "the URL's query stays out of Debug"
    );
    let NotifyChannel::Email(smtp) = &mail.channel else {
        panic!("{mail:?}");
    };
    assert_eq!(
        (smtp.port, smtp.starttls, smtp.login.is_none()),
        (587, true, true)
    );
    assert_eq!(smtp.to[0].email.to_string(), "ops@example.com");
    assert_eq!(relay.events, [Kind::SyncAborted, Kind::UserLocked]);
    assert_eq!((relay.attempts, relay.timeout), (3, Duration::from_secs(2)));
    let NotifyChannel::Email(smtp) = &relay.channel else {
        panic!("{relay:?}");
    };
    assert_eq!((smtp.port, smtp.starttls), (25, false));
    assert!(
        !format!("{relay:?}").contains("hunter2"),
        "the password stays out of Debug"
    );
}

#[test]
fn bad_targets_name_their_key_and_hide_the_secret() {
    let hook = "[[notify]]\ntype = \"webhook\"\nurl = \"https://h.example/\"\n";
    let mail = "[[notify]]\ntype = \"email\"\nhost = \"h\"\nfrom = \"a@example.com\"\n";
    let cases: Vec<(String, &str)> = vec![
        (
            "[[notify]]\nurl = \"https://h/\"".into(),
            "notify[0].type: required",
        ),
        (
            "[[notify]]\ntype = \"sms\"".into(),
            "notify[0].type: \"sms\" is not one of",
        ),
        (
            "[[notify]]\ntype = \"webhook\"".into(),
            "notify[0].url: required",
        ),
        (
            "[[notify]]\ntype = \"webhook\"\nurl = \"ftp://h/secret-path\"".into(),
            "notify[0].url: must be an http:// or https:// URL",
        ),
        (
            format!("{hook}host = \"h\""),
            "notify[0].host: only a target of type = \"email\"",
        ),
        (
            format!("{hook}events = []"),
            "notify[0].events: must name at least one",
        ),
        (
            format!("{hook}events = [\"disk_full\"]"),
            "notify[0].events: \"disk_full\" is not one of",
        ),
        (
            format!("{hook}attempts = 0"),
            "notify[0].attempts: must be between 1 and 50",
        ),
        (
            format!("{hook}timeout = \"0s\""),
            "notify[0].timeout: must be longer than zero",
        ),
        (
            format!("{hook}{hook}name = \"webhook-1\""),
            "notify[1].name: \"webhook-1\" is used more",
        ),
        (format!("{hook}unknown = 1"), "unknown field `unknown`"),
        (
            format!("{mail}secret = \"s\"\nto = [\"b@example.com\"]"),
            "notify[0].secret: only a target of type = \"webhook\"",
        ),
        (mail.to_string(), "notify[0].to: required"),
        (
            format!("{mail}to = []"),
            "notify[0].to: must name at least one address",
        ),
        (
            format!("{mail}to = [\"not an address\"]"),
            "notify[0].to[0]: \"not an address\" is not an e-mail address",
        ),
        (
            format!("{mail}to = [\"b@example.com\"]\npassword = \"hunter2\""),
            "notify[0].username: required",
        ),
        (
            format!("{mail}to = [\"b@example.com\"]\nport = 0"),
            "notify[0].port: must not be 0",
        ),
        (
            format!("{mail}to = [\"b@example.com\"]\nstarttls = false\nca = \"/etc/ca.pem\""),
            "notify[0].ca: only with starttls = true",
        ),
        (
            format!("{mail}to = [\"b@example.com\"]\nca = \"/nonexistent/ca.pem\""),
            "notify[0].ca: cannot read /nonexistent/ca.pem",
        ),
        (
            format!("{hook}ca = \"/etc/ca.pem\""),
            "notify[0].ca: only a target of type = \"email\"",
        ),
    ];
    for (body, expected) in cases {
        let message = error(&format!("{STATE}{body}\n")).to_string();
        assert!(
            message.contains(expected),
            "{body}:\n{message}\nexpected {expected}"
        );
        assert!(
            !message.contains("hunter2") && !message.contains("secret-path"),
            "{message}"
        );
    }
}

#[test]
fn notify_cannot_be_overridden_from_the_environment() {
    let env = std::collections::HashMap::from([(
        "SPGATE_NOTIFY__URL".to_string(),
        "https://x/".to_string(),
    )]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spgate.toml");
    std::fs::write(&path, STATE).unwrap();
    let message = crate::config::load_with_env(&path, &env)
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("array sections cannot be overridden"),
        "{message}"
    );
}

#[test]
fn an_email_target_trusts_the_certificates_of_its_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let issued = rcgen::generate_simple_self_signed(vec!["relay.example".to_string()]).unwrap();
    let (ca, not_ca) = (dir.path().join("ca.pem"), dir.path().join("key.pem"));
    std::fs::write(&ca, issued.cert.pem()).unwrap();
    std::fs::write(&not_ca, issued.signing_key.serialize_pem()).unwrap();
    let target = |file: &std::path::Path| {
        format!(
            "{STATE}[[notify]]\ntype = \"email\"\nhost = \"relay.example\"\nfrom = \"a@example.com\"\n\
             to = [\"b@example.com\"]\nca = \"{}\"\n",
            file.display()
        )
    };
    let config = parse_str(&target(&ca)).unwrap();
    let NotifyChannel::Email(smtp) = &config.notify[0].channel else {
        panic!("{:?}", config.notify);
    };
    assert_eq!(smtp.ca.as_deref(), Some(ca.as_path()));
    let message = error(&target(&not_ca)).to_string();
    assert!(message.contains("holds no PEM certificate"), "{message}");
    assert!(!message.contains("BEGIN"), "{message}");
}
