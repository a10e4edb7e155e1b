//! Alert notifications from a running gateway: `[[notify]]` webhook and e-mail targets get
//! exactly one delivery for a connection disabled by a revoked app and one for its re-enabling,
//! each with its event id (and, for the webhook, its HMAC signature); a user locked out after
//! failed logins is announced; a sync job is announced when it aborts and when it recovers, not
//! at every run; a webhook that fails twice gets the same event three times and counts it
//! delivered; `spgate notify test` sends each target one test notification and says what
//! became of it. The receivers run here: an axum webhook receiver and Python's aiosmtpd
//! (`tests/smtp_sink.py`), both on port 0.

mod common;
mod notify_support;

use common::{Ctx, KillOnDrop};
use notify_support::{Receiver, Sink, mail_header, wait_for};
use serde_json::Value;

const TOKEN: &str = "notify-admin-token";
const HOOK_SECRET: &str = "hook-signing-secret";
const SMTP_LOGIN: (&str, &str) = ("notifier", "smtp-password");

fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

struct Served {
    admin: String,
    sftp_port: u16,
    dir: tempfile::TempDir,
    _child: KillOnDrop,
}

/// `spgate serve` with SFTP and the admin endpoint, user `alice` (password `alice-pw`) on
/// `connection` (a SharePoint mount of `[[connections]] sp`) or a local folder, and `more`
/// (the `[[notify]]` tables, `[[syncs]]`).
fn serve(connection: Option<&Ctx>, more: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::create_dir(&local).unwrap();
    let mount = match connection {
        Some(_) => "connection = \"sp\"\nremote = \"/Shared\"".to_string(),
        None => format!("local = {}", quote(local.to_str().unwrap())),
    };
    let config = format!(
        "[state]\ndir = {state}\n\n[sftp]\nlisten = \"127.0.0.1:0\"\n\n\
         [admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\n\
         {connection}\n\
         [[users]]\nname = \"alice\"\npassword_hash = {hash}\n\
         [[users.mounts]]\npath = \"/\"\n{mount}\npermissions = \"*\"\n\n\
         {more}",
        state = quote(dir.path().join("state").to_str().unwrap()),
        connection = connection
            .map(|c| c.connection_toml("sp"))
            .unwrap_or_default(),
        hash = quote(&spgate::users::hash_password("alice-pw")),
    );
    let (child, sftp_port, admin) = common::spawn_sftp_admin(dir.path(), &config);
    Served {
        sftp_port,
        admin: format!("http://{admin}"),
        dir,
        _child: KillOnDrop(child),
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- spgate log ----\n{}", self.log());
        }
    }
}

impl Served {
    /// Whether `user` logs in over SFTP with `password` and lists the root.
    async fn can_log_in(&self, user: &str, password: &str) -> bool {
        tokio::process::Command::new("curl")
            .args(["-sS", "-k", "-o", "/dev/null", "--user"])
            .arg(format!("{user}:{password}"))
            .arg(format!("sftp://127.0.0.1:{}/", self.sftp_port))
            .stderr(std::process::Stdio::null())
            .status()
            .await
            .unwrap()
            .success()
    }

    /// The outcomes of sync job `job`'s finished runs, newest first.
    async fn sync_outcomes(&self, job: &str) -> Vec<String> {
        let url = format!("{}/api/v1/syncs/{job}/runs", self.admin);
        let runs = common::get_json_with(&url, TOKEN).await;
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|r| r["outcome"].as_str().map(str::to_string))
            .collect()
    }

    async fn post(&self, path: &str) -> (u16, String) {
        common::post_with(&format!("{}{path}", self.admin), TOKEN).await
    }

    /// The `spgate_notification*` samples of `/metrics`.
    async fn notification_metrics(&self) -> Vec<String> {
        let text = reqwest::get(format!("{}/metrics", self.admin))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with("spgate_notification"))
            .map(str::to_string)
            .collect()
    }

    /// Runs `spgate ARGS --config <the served file>` beside the server.
    fn spgate(&self, args: &[&str]) -> std::process::Output {
        common::spgate_with(&self.dir.path().join("spgate.toml"), args)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("spgate.log")).unwrap_or_default()
    }

    /// Fails logins as `user` until `locked` says the lock was announced (at most 20).
    async fn lock_out<F: Future<Output = bool>>(&self, user: &str, locked: impl Fn() -> F) {
        for _ in 0..20 {
            assert!(!self.can_log_in(user, "wrong-password").await);
            if locked().await {
                return;
            }
        }
        panic!(
            "no user_locked notice after 20 failed logins:\n{}",
            self.log()
        );
    }
}

fn kinds(receiver: &Receiver) -> Vec<String> {
    receiver
        .got()
        .iter()
        .map(|h| h.json()["kind"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoke_reaches_each_target_once_and_so_does_the_enable() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("Shared").await;
    let hook = Receiver::start(&[]).await;
    let (user, password) = SMTP_LOGIN;
    let sink = Sink::start(&format!("{user}:{password}"));
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("smtp-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let notify = format!(
        "[[notify]]\nname = \"ops-hook\"\ntype = \"webhook\"\nurl = {url}\nsecret = {secret}\n\n\
         [[notify]]\nname = \"ops-mail\"\ntype = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
         ca = {ca}\nusername = \"{user}\"\npassword = {password_file}\n\
         from = \"spgate <spgate@example.com>\"\nto = [\"ops@example.com\", \"oncall@example.com\"]\n",
        url = quote(&hook.url),
        secret = quote(HOOK_SECRET),
        port = sink.port,
        ca = quote(sink.ca.to_str().unwrap()),
        password_file = quote(&format!("file:{}", password_file.display())),
    );
    let served = serve(Some(&ctx), &notify);
    assert!(served.can_log_in("alice", "alice-pw").await);

    // The app is revoked: the next login's request disables the connection.
    ctx.revoke_app(true).await;
    assert!(!served.can_log_in("alice", "alice-pw").await);
    wait_for("webhook deliveries", 1, || async { hook.got().len() }).await;
    wait_for("e-mails", 1, || async { sink.mails().len() }).await;
    // Still disabled: another login announces nothing new.
    assert!(!served.can_log_in("alice", "alice-pw").await);

    // Fixed in the tenant, then the file saved again: enabled, announced once.
    ctx.revoke_app(false).await;
    let (status, body) = served.post("/api/v1/reload").await;
    assert_eq!(status, 200, "{body}");
    assert!(served.can_log_in("alice", "alice-pw").await);
    wait_for("webhook deliveries", 2, || async { hook.got().len() }).await;
    wait_for("e-mails", 2, || async { sink.mails().len() }).await;

    // Revoked again, then enabled by `spgate connections enable` beside the server, a process
    // with no targets of its own: the server that sees the alert cleared announces it, once.
    ctx.revoke_app(true).await;
    assert!(!served.can_log_in("alice", "alice-pw").await);
    wait_for("webhook deliveries", 3, || async { hook.got().len() }).await;
    ctx.revoke_app(false).await;
    let enabled = served.spgate(&["connections", "enable", "sp"]);
    assert!(enabled.status.success(), "{enabled:?}");
    wait_for("webhook deliveries", 4, || async { hook.got().len() }).await;
    wait_for("e-mails", 4, || async { sink.mails().len() }).await;
    assert!(served.can_log_in("alice", "alice-pw").await);

    // A lockout last: each target's queue is delivered in order, so once its notice is in,
    // nothing announced before it is still on its way.
    served
        .lock_out("mallory", || async {
            kinds(&hook).contains(&"user_locked".to_string())
        })
        .await;
    wait_for("e-mails", 5, || async { sink.mails().len() }).await;
    assert_eq!(
        kinds(&hook),
        [
            "connection_disabled",
            "connection_enabled",
            "connection_disabled",
            "connection_enabled",
            "user_locked"
        ],
        "log:\n{}",
        served.log()
    );

    let hooks = hook.got();
    let mails = sink.mails();
    assert_eq!(mails.len(), 5, "{mails:#?}");
    for (hook, mail) in hooks.iter().zip(&mails) {
        let json = hook.json();
        let id = json["id"].as_str().unwrap();
        assert_eq!(hook.header("x-spgate-event"), id);
        assert_eq!(hook.header("x-spgate-attempt"), "1");
        assert!(hook.signed_with(HOOK_SECRET), "bad signature: {hook:?}");
        assert_eq!(hook.header("content-type"), "application/json");
        assert!(!json["message"].as_str().unwrap().is_empty(), "{json}");
        assert!(!json["action"].as_str().unwrap().is_empty(), "{json}");
        assert!(json["time"].as_str().unwrap().ends_with('Z'), "{json}");
        // The same notice by e-mail: its id, as an administrator reads it.
        assert_eq!(mail_header(mail, "Message-ID"), format!("<{id}@spgate>"));
        assert_eq!(mail_header(mail, "X-Sink-Login"), user);
        // STARTTLS (the default), trusting the relay's own CA through `ca`.
        assert_eq!(mail_header(mail, "X-Sink-TLS"), "yes");
        assert_eq!(
            mail_header(mail, "X-Sink-To"),
            "ops@example.com,oncall@example.com"
        );
        assert_eq!(
            mail_header(mail, "Subject"),
            format!("[spgate] {}", json["title"].as_str().unwrap())
        );
        assert!(mail.contains("What to do: "), "{mail}");
        assert!(!mail.contains(password), "{mail}");
    }
    let disabled = hooks[0].json();
    assert_eq!(
        disabled["subject"],
        serde_json::json!({"type": "connection", "name": "sp"})
    );
    assert_eq!(disabled["title"], "SharePoint connection sp disabled");
    for (enabled, reason) in [
        (&hooks[1], "(the configuration was saved again (reload))"),
        (&hooks[3], "(enabled by `spgate connections enable`)"),
    ] {
        let json = enabled.json();
        assert_eq!(json["title"], "SharePoint connection sp enabled again");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
        assert!(message.contains("AADSTS"), "{message}");
    }
    let locked = hooks[4].json();
    assert_eq!(
        locked["subject"],
        serde_json::json!({"type": "user", "name": "mallory"})
    );
    assert!(
        locked["action"]
            .as_str()
            .unwrap()
            .contains("spgate lockouts clear mallory"),
        "{locked}"
    );

    let metrics = served.notification_metrics().await;
    for line in [
        "spgate_notifications_total{target=\"ops-hook\",outcome=\"delivered\"} 5",
        "spgate_notifications_total{target=\"ops-mail\",outcome=\"delivered\"} 5",
    ] {
        assert!(
            metrics.iter().any(|l| l == line),
            "{line} not in {metrics:#?}"
        );
    }
    assert!(
        !metrics.iter().any(|l| l.contains("failed")),
        "{metrics:#?}"
    );
    let log = served.log();
    assert!(
        !log.contains(password) && !log.contains(HOOK_SECRET),
        "a secret in the log"
    );
}

/// `spgate notify test`: one test notification per target, at once, no retries; what became
/// of each is printed, and exit 1 if one was not delivered. The relay's certificate is checked:
/// a target without `ca` cannot deliver to it.
#[tokio::test(flavor = "multi_thread")]
async fn notify_test_sends_each_target_one_notification_and_says_what_became_of_it() {
    let hook = Receiver::start(&[200, 404]).await;
    let (user, password) = SMTP_LOGIN;
    let sink = Sink::start(&format!("{user}:{password}"));
    let dir = tempfile::tempdir().unwrap();
    let mail = |name: &str, ca: &str| {
        format!(
            "[[notify]]\nname = \"{name}\"\ntype = \"email\"\nhost = \"127.0.0.1\"\n\
             port = {port}\n{ca}username = \"{user}\"\npassword = \"{password}\"\n\
             from = \"spgate@example.com\"\nto = [\"ops@example.com\"]\n",
            port = sink.port,
        )
    };
    let config = dir.path().join("spgate.toml");
    std::fs::write(
        &config,
        format!(
            "[state]\ndir = {state}\n\n\
             [[notify]]\nname = \"ops-hook\"\ntype = \"webhook\"\nurl = {url}\nsecret = {secret}\n\n\
             {trusted}\n{untrusted}",
            state = quote(dir.path().join("state").to_str().unwrap()),
            url = quote(&hook.url),
            secret = quote(HOOK_SECRET),
            trusted = mail("ops-mail", &format!("ca = {}\n", quote(sink.ca.to_str().unwrap()))),
            untrusted = mail("no-ca", ""),
        ),
    )
    .unwrap();
    let notify_test = |args: &[&str]| {
        let out = common::spgate_with(&config, &[&["notify", "test"], args].concat());
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };

    let (code, text) = notify_test(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("ops-hook: delivered (id "), "{text}");
    assert!(text.contains("ops-mail: delivered (id "), "{text}");
    let refused = text
        .lines()
        .find(|l| l.starts_with("no-ca: FAILED: "))
        .unwrap_or_else(|| panic!("no-ca delivered without trusting the relay:\n{text}"));
    assert!(refused.to_lowercase().contains("certificate"), "{refused}");
    assert!(
        !text.contains(password) && !text.contains(HOOK_SECRET),
        "{text}"
    );
    let got = hook.got();
    assert_eq!(got.len(), 1);
    let json = got[0].json();
    assert_eq!(
        (json["kind"].as_str(), json["target"].as_str()),
        (Some("test"), Some("ops-hook"))
    );
    assert!(got[0].signed_with(HOOK_SECRET));
    assert!(text.contains(json["id"].as_str().unwrap()), "{text}");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    assert_eq!(
        mail_header(&mails[0], "Subject"),
        "[spgate] test notification"
    );
    assert_eq!(mail_header(&mails[0], "X-Sink-TLS"), "yes");

    // One target; the receiver refuses it: said, exit 1, and not tried again.
    let (code, text) = notify_test(&["ops-hook"]);
    assert_eq!(code, Some(1), "{text}");
    assert_eq!(
        text.trim(),
        "ops-hook: FAILED: the webhook answered 404 Not Found"
    );
    assert_eq!(hook.got().len(), 2);
    let (code, text) = notify_test(&["ops-mail"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = notify_test(&["nope"]);
    assert_eq!(
        (code, text.trim()),
        (Some(1), "no [[notify]] target named 'nope'")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_webhook_gets_the_same_event_again_until_it_takes_it() {
    let hook = Receiver::start(&[500, 500]).await;
    let notify = format!(
        "[[notify]]\nname = \"flaky\"\ntype = \"webhook\"\nurl = {url}\nevents = [\"user_locked\"]\n",
        url = quote(&hook.url),
    );
    let served = serve(None, &notify);
    served
        .lock_out("alice", || async { !hook.got().is_empty() })
        .await;
    wait_for("webhook requests", 3, || async { hook.got().len() }).await;
    let got = hook.got();
    let first: Value = got[0].json();
    assert_eq!(first["kind"], "user_locked");
    for (n, request) in got.iter().enumerate() {
        assert_eq!(
            request.header("x-spgate-event"),
            first["id"].as_str().unwrap()
        );
        assert_eq!(request.header("x-spgate-attempt"), (n + 1).to_string());
        assert_eq!(request.body, got[0].body, "every try sends the same body");
        assert_eq!(
            request.header("x-spgate-signature"),
            "",
            "no secret, no signature"
        );
    }
    let counted = "spgate_notifications_total{target=\"flaky\",outcome=\"delivered\"} 1";
    wait_for("the delivery counted", 1, || async {
        usize::from(
            served
                .notification_metrics()
                .await
                .iter()
                .any(|l| l == counted),
        )
    })
    .await;
    let metrics = served.notification_metrics().await;
    assert!(
        metrics
            .iter()
            .any(|l| l == "spgate_notification_retries_total{target=\"flaky\"} 2"),
        "{metrics:#?}"
    );
    assert_eq!(hook.got().len(), 3, "nothing after the delivery");
    // The lock holds: even the right password is refused now.
    assert!(!served.can_log_in("alice", "alice-pw").await);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_job_is_announced_when_it_fails_and_when_it_recovers_not_every_run() {
    let ctx = Ctx::new().await;
    ctx.mkdirs("Shared").await;
    ctx.mkdirs("Mirror").await;
    ctx.put("Mirror/a.txt", b"hello").await;
    let hook = Receiver::start(&[]).await;
    let mirror = tempfile::tempdir().unwrap();
    let more = format!(
        "[[notify]]\ntype = \"webhook\"\nurl = {url}\n\n\
         [[syncs]]\nname = \"mirror\"\nlocal = {local}\nconnection = \"sp\"\nremote = \"/Mirror\"\n\
         direction = \"pull\"\ninterval = \"1h\"\n",
        url = quote(&hook.url),
        local = quote(mirror.path().to_str().unwrap()),
    );
    let served = serve(Some(&ctx), &more);
    let runs = |n: usize| {
        let served = &served;
        async move {
            wait_for("sync runs", n, || async {
                served.sync_outcomes("mirror").await.len()
            })
            .await
        }
    };
    // The first run (at start) copies the file: nothing to announce.
    runs(1).await;
    let copy = mirror.path().join("a.txt");
    assert_eq!(std::fs::read(&copy).unwrap(), b"hello");

    // The local copy vanishes: the empty-folder guard aborts the run, which is announced.
    std::fs::remove_file(&copy).unwrap();
    assert_eq!(served.post("/api/v1/syncs/mirror/run").await.0, 202);
    wait_for("webhook deliveries", 1, || async { hook.got().len() }).await;
    let aborted = hook.got()[0].json();
    assert_eq!(aborted["kind"], "sync_aborted", "{aborted}");
    assert_eq!(
        aborted["subject"],
        serde_json::json!({"type": "sync_job", "name": "mirror"})
    );

    // It is back: the next run succeeds and says so; the one after says nothing.
    std::fs::write(&copy, b"hello").unwrap();
    for n in [3, 4] {
        assert_eq!(served.post("/api/v1/syncs/mirror/run").await.0, 202);
        runs(n).await;
    }
    assert_eq!(
        served.sync_outcomes("mirror").await,
        ["success", "success", "aborted", "success"]
    );
    served
        .lock_out("mallory", || async {
            kinds(&hook).contains(&"user_locked".to_string())
        })
        .await;
    assert_eq!(
        kinds(&hook),
        ["sync_aborted", "sync_recovered", "user_locked"],
        "log:\n{}",
        served.log()
    );
    assert_eq!(hook.got()[1].json()["title"], "sync job mirror recovered");
}
