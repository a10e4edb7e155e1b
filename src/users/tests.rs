use std::net::IpAddr;
use std::time::{Duration, Instant};

use russh::keys::PrivateKey;
use russh::keys::ssh_key::private::Ed25519Keypair;

use super::*;
use crate::config::AuthorizedKey;

const ECDSA: &str = "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBC0FMO+vGQ0kvKzxLvWaIFQN4IoCBHMTKVlOJSTE0dq9+zYFjclvw1i5r/YzAWb4GALFVMScKAmn3BjWNyurhzQ= bob@host";
const RSA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDv+8nDaVryK8Qshc79cy7nUegDmodxEy2vVQ2IZmEUqfEridfQfG7M4Olge2LT1U1jeA2vDcioPko55Kv1zumtKkIE5Ebr5ote71xUsOgjDimSSxK0Gab+7OP9mfuc+20Y7E1w+6qGG2qoj+Dseu6dSpKkbY6nd7F0XV0nBGzGb5hVKr8X0bK73OhQlA7oeGSYcrS1t0zT2fdXO+NrM0jQV9D+bJwAGLgUJYgruWlT2vWqzmkrM6/7DuS+j2EVBJaHugPthcrEmfa6t86wLxMiOZMo1PvENAal17lh2+FUlHEDMU9NXISUUiKmQwne5ER+F7mw40PMVLLqX62FCPWj carol";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A user with no credentials, enabled, reachable from anywhere.
fn user(name: &str) -> User {
    User {
        name: name.to_owned(),
        password_hash: None,
        authorized_keys: Vec::new(),
        allow_from: Vec::new(),
        enabled: true,
        ftp_tls_required: false,
        mounts: Vec::new(),
    }
}

fn with_password(name: &str, password: &str) -> User {
    User {
        password_hash: Some(hash_password(password)),
        ..user(name)
    }
}

/// A fresh Ed25519 key. (`PrivateKey::random` wants a rand_core 0.10 RNG, which spgate's
/// `rand` 0.9 is not; a random seed gives the same thing.)
fn ed25519() -> PrivateKey {
    PrivateKey::from(Ed25519Keypair::from_seed(&rand::random()))
}

/// The authorized-keys entry for an OpenSSH public key line.
fn authorized(line: &str) -> AuthorizedKey {
    let mut tokens = line.split_whitespace();
    AuthorizedKey {
        algorithm: tokens.next().unwrap().to_owned(),
        base64: tokens.next().unwrap().to_owned(),
        comment: tokens.collect::<Vec<_>>().join(" "),
    }
}

fn with_key(name: &str, key: &PublicKey) -> User {
    User {
        authorized_keys: vec![authorized(&key.to_openssh().unwrap())],
        ..user(name)
    }
}

const HOME: &str = "192.0.2.7";

#[tokio::test]
async fn right_password_logs_in_wrong_one_does_not() {
    let mut alice = with_password("alice", "s3cret");
    alice.ftp_tls_required = true;
    let users = Users::new(&[alice]);
    let account = users.password("alice", "s3cret", ip(HOME)).await.unwrap();
    assert_eq!(account.name, "alice");
    assert!(account.ftp_tls_required);
    assert_eq!(
        users
            .password("alice", "s3cret ", ip(HOME))
            .await
            .unwrap_err(),
        Refused("wrong password")
    );
    assert_eq!(
        users.password("alice", "", ip(HOME)).await.unwrap_err(),
        Refused("wrong password")
    );
    assert_eq!(
        users
            .password("Alice", "s3cret", ip(HOME))
            .await
            .unwrap_err(),
        Refused("unknown user")
    );
}

#[tokio::test]
async fn unknown_user_costs_as_much_as_a_wrong_password() {
    let users = Users::new(&[with_password("alice", "s3cret")]);
    let time = |name: &'static str| {
        let users = &users;
        async move {
            let start = Instant::now();
            let outcome = users.password(name, "guess", ip(HOME)).await;
            (start.elapsed(), outcome)
        }
    };
    // The fastest of a few runs each, interleaved, so that a busy machine does not skew one side.
    let (mut unknown, mut wrong) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let (elapsed, outcome) = time("mallory").await;
        assert_eq!(outcome.unwrap_err(), Refused("unknown user"));
        unknown = unknown.min(elapsed);
        let (elapsed, outcome) = time("alice").await;
        assert_eq!(outcome.unwrap_err(), Refused("wrong password"));
        wrong = wrong.min(elapsed);
    }
    let ratio = unknown.as_secs_f64() / wrong.as_secs_f64();
    assert!(
        (0.5..=2.0).contains(&ratio),
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
}

#[tokio::test]
async fn disabled_users_and_users_without_password_are_refused() {
    let key = ed25519();
    let disabled = User {
        enabled: false,
        ..with_password("bob", "s3cret")
    };
    let disabled_key = User {
        enabled: false,
        ..with_key("dave", key.public_key())
    };
    let keys_only = with_key("carol", key.public_key());
    let users = Users::new(&[disabled, disabled_key, keys_only]);
    assert_eq!(
        users.password("bob", "s3cret", ip(HOME)).await.unwrap_err(),
        Refused("account disabled")
    );
    assert!(
        users
            .public_key("dave", key.public_key(), ip(HOME))
            .is_err()
    );
    assert!(!users.accepts_key("dave", key.public_key(), ip(HOME)));
    assert_eq!(
        users.password("carol", "", ip(HOME)).await.unwrap_err(),
        Refused("no password set")
    );
    assert!(
        users
            .public_key("carol", key.public_key(), ip(HOME))
            .is_ok()
    );
}

#[tokio::test]
async fn allow_from_limits_source_addresses() {
    let key = ed25519();
    let mut v4 = with_password("v4", "pw");
    v4.allow_from = vec!["192.0.2.0/24".parse().unwrap()];
    v4.authorized_keys = with_key("", key.public_key()).authorized_keys;
    let mut v6 = with_password("v6", "pw");
    v6.allow_from = vec![
        "2001:db8::/32".parse().unwrap(),
        "10.1.2.3/32".parse().unwrap(),
    ];
    let users = Users::new(&[v4, v6]);

    for (name, peer, allowed) in [
        ("v4", "192.0.2.7", true),
        ("v4", "::ffff:192.0.2.7", true),
        ("v4", "192.0.3.7", false),
        ("v4", "2001:db8::1", false),
        ("v6", "2001:db8:1::1", true),
        ("v6", "10.1.2.3", true),
        ("v6", "2001:db9::1", false),
        ("v6", "10.1.2.4", false),
        ("v6", "::1", false),
    ] {
        let outcome = users.password(name, "pw", ip(peer)).await;
        assert_eq!(outcome.is_ok(), allowed, "{name} from {peer}");
    }
    assert!(
        users
            .public_key("v4", key.public_key(), ip("192.0.2.200"))
            .is_ok()
    );
    assert!(
        users
            .public_key("v4", key.public_key(), ip("198.51.100.1"))
            .is_err()
    );
}

#[test]
fn public_keys_match_by_key_data() {
    let (alice_key, other_key) = (ed25519(), ed25519());
    let mut alice = with_key("alice", alice_key.public_key());
    alice
        .authorized_keys
        .extend([authorized(ECDSA), authorized(RSA)]);
    let users = Users::new(&[alice, with_key("bob", other_key.public_key())]);

    let account = users
        .public_key("alice", alice_key.public_key(), ip(HOME))
        .unwrap();
    assert_eq!(account.name, "alice");
    assert!(users.accepts_key("alice", alice_key.public_key(), ip(HOME)));
    // The comment is not part of the key.
    let mut renamed = alice_key.public_key().clone();
    renamed.set_comment("someone else");
    assert!(users.public_key("alice", &renamed, ip(HOME)).is_ok());
    for line in [ECDSA, RSA] {
        let offered = PublicKey::from_openssh(line.rsplit_once(' ').unwrap().0).unwrap();
        assert!(
            users.public_key("alice", &offered, ip(HOME)).is_ok(),
            "{line}"
        );
        assert!(
            users.public_key("bob", &offered, ip(HOME)).is_err(),
            "{line}"
        );
    }

    assert_eq!(
        users
            .public_key("alice", other_key.public_key(), ip(HOME))
            .unwrap_err(),
        Refused("key not authorized")
    );
    assert!(!users.accepts_key("alice", other_key.public_key(), ip(HOME)));
    assert!(
        users
            .public_key("nobody", alice_key.public_key(), ip(HOME))
            .is_err()
    );
}

#[tokio::test]
async fn unusable_credentials_are_left_out() {
    let key = ed25519();
    let mut odd = with_key("odd", key.public_key());
    odd.password_hash = Some("$argon2id$not a phc string".into());
    let broken = AuthorizedKey {
        algorithm: "ssh-ed25519".into(), // not what the blob says
        ..authorized(ECDSA)
    };
    odd.authorized_keys.insert(0, broken);
    let users = Users::new(&[odd]);
    assert!(users.password("odd", "", ip(HOME)).await.is_err());
    assert!(users.public_key("odd", key.public_key(), ip(HOME)).is_ok());
}

#[test]
fn debug_shows_names_only() {
    let users = Users::new(&[with_password("alice", "pw"), user("bob")]);
    assert_eq!(format!("{users:?}"), r#"Users { names: ["alice", "bob"] }"#);
}

#[test]
fn shareable_across_tasks() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let users = Users::new(&[]);
    send_sync(&users);
    send(&users.password("alice", "pw", ip(HOME)));
}
