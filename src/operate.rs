//! The operator's commands about connections: `connect`, `connections [enable]`,
//! `alerts`. Each writes human-readable lines to `out` and answers whether all went well.

use std::io::Write;

use futures_util::TryStreamExt;

use crate::config::{Config, Credential};
use crate::connections::store::Paths;
use crate::connections::{Connection, auth::TokenError};
use crate::storage::queue::Queue;
use crate::users::lockout::Lockout;

/// Signs connection `c` in, finds its library and lists the library's root: the library's id
/// and how many items its root's first page holds, or what failed (with what to do).
pub async fn probe(
    c: &crate::config::Connection,
    paths: &Paths,
) -> Result<(String, usize), String> {
    let connection = Connection::open(c, paths)
        .await
        .map_err(|e| e.to_string())?;
    let drive = connection.drive().await.map_err(|e| e.to_string())?;
    let first_page = std::pin::pin!(drive.list("/"))
        .try_next()
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    Ok((drive.id.clone(), first_page.len()))
}

/// Runs the device-code sign-in of connection `name` and saves its refresh token.
pub async fn connect(config: &Config, name: &str, out: &mut impl Write) -> std::io::Result<bool> {
    let Some(c) = config.connection(name) else {
        writeln!(out, "no connection named '{name}' in the configuration")?;
        return Ok(false);
    };
    if !matches!(c.credential, Credential::DeviceCode) {
        writeln!(
            out,
            "connection '{name}' signs in as an app (client secret or certificate); `connect` is for auth = \"device_code\""
        )?;
        return Ok(false);
    }
    let connection = Connection::open(c, &Paths::of(config)).await?;
    let result = connection
        .tokens
        .sign_in(|message| {
            let _ = writeln!(out, "{message}\nwaiting for the sign-in to be approved...");
            let _ = out.flush();
        })
        .await;
    match result {
        Ok(()) => {
            connection
                .health
                .enable("signed in again with `spgate connect`")
                .await?;
            writeln!(
                out,
                "signed in; the refresh token is saved under {}",
                config.state.dir.display()
            )?;
            Ok(true)
        }
        Err(TokenError::Disabled {
            code,
            message,
            action,
        }) => {
            writeln!(out, "sign-in failed: {message} ({code}). {action}")?;
            Ok(false)
        }
        Err(TokenError::Transient(why)) => {
            writeln!(out, "sign-in failed: {why}")?;
            Ok(false)
        }
    }
}

/// One line per connection: its state and, when disabled, why and what to do.
pub async fn connections(config: &Config, out: &mut impl Write) -> std::io::Result<()> {
    let paths = Paths::of(config);
    for c in &config.connections {
        let connection = Connection::open(c, &paths).await?;
        match connection.health.alert() {
            None => writeln!(out, "{}\tenabled", c.name)?,
            Some(a) => writeln!(
                out,
                "{}\tdisabled since {}: {} ({}). {}",
                c.name,
                a.time.format("%Y-%m-%d %H:%M:%SZ"),
                a.message,
                a.code,
                a.action
            )?,
        }
    }
    Ok(())
}

/// Enables connection `name` again and clears its alert.
pub async fn enable(config: &Config, name: &str, out: &mut impl Write) -> std::io::Result<bool> {
    let Some(c) = config.connection(name) else {
        writeln!(out, "no connection named '{name}' in the configuration")?;
        return Ok(false);
    };
    let connection = Connection::open(c, &Paths::of(config)).await?;
    if connection
        .health
        .enable("enabled by `spgate connections enable`")
        .await?
    {
        writeln!(out, "{name}: enabled; its alert is cleared")?;
    } else {
        writeln!(out, "{name}: already enabled")?;
    }
    Ok(true)
}

/// The open alerts.
pub async fn alerts(config: &Config, out: &mut impl Write) -> std::io::Result<usize> {
    let store = Paths::of(config).store().await?;
    let open = crate::connections::health::open_alerts(&store).await?;
    if open.is_empty() {
        writeln!(out, "no open alerts")?;
    }
    for a in &open {
        writeln!(
            out,
            "{}\t{}\t{}: {}\n\twhat to do: {}",
            a.time.format("%Y-%m-%d %H:%M:%SZ"),
            a.connection,
            a.code,
            a.message,
            a.action
        )?;
    }
    Ok(open.len())
}

/// `spgate queue list`: one line per queued upload (never its upload URL).
pub async fn queue_list(config: &Config, out: &mut impl Write) -> std::io::Result<bool> {
    let store = Paths::of(config).store().await?;
    let rows = Queue::open(&config.state.dir, store).await?.list().await?;
    if rows.is_empty() {
        writeln!(out, "the upload queue is empty")?;
    }
    for row in rows {
        let state = match (&row.failed, row.uploaded, &row.upload_url) {
            (Some(_), _, _) => "quarantined",
            (None, true, _) => "finishing",
            (None, false, Some(_)) => "uploading",
            (None, false, None) => "waiting",
        };
        writeln!(
            out,
            "{}	{state}	{}	{}	{} bytes	user {} ({})	queued {}{}",
            row.id,
            row.connection,
            row.target.as_deref().unwrap_or("(deleted)"),
            row.size,
            row.origin.user,
            row.origin.vpath,
            row.queued_at.format("%Y-%m-%d %H:%M:%SZ"),
            row.failed
                .map(|why| format!("\n\tfailed: {why}"))
                .unwrap_or_default()
        )?;
    }
    Ok(true)
}

/// `spgate queue retry ID`.
pub async fn queue_retry(config: &Config, id: i64, out: &mut impl Write) -> std::io::Result<bool> {
    let store = Paths::of(config).store().await?;
    let done = Queue::open(&config.state.dir, store)
        .await?
        .retry(id)
        .await?;
    quarantine_answer(
        out,
        id,
        done,
        "queued again; the gateway uploads it shortly",
    )
}

/// `spgate queue discard ID`.
pub async fn queue_discard(
    config: &Config,
    id: i64,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    let store = Paths::of(config).store().await?;
    let done = Queue::open(&config.state.dir, store)
        .await?
        .discard(id)
        .await?;
    quarantine_answer(out, id, done, "discarded, with its file")
}

fn quarantine_answer(
    out: &mut impl Write,
    id: i64,
    done: bool,
    what: &str,
) -> std::io::Result<bool> {
    if done {
        writeln!(out, "{id}: {what}")?;
    } else {
        writeln!(
            out,
            "{id}: no quarantined upload has this id (see spgate queue list)"
        )?;
    }
    Ok(done)
}

/// `spgate lockouts [clear USER | clear --all]`: the login locks in the state store, which
/// every server using it obeys at once. With `clear`, `Some(None)` clears every lock,
/// `Some(Some(user))` that user's.
pub async fn lockouts(
    config: &Config,
    clear: Option<Option<&str>>,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    let lockout = Lockout::shared(Paths::of(config).store().await?);
    if let Some(user) = clear {
        let cleared = lockout.clear(user).await?;
        writeln!(out, "{cleared} lock(s) cleared")?;
        return Ok(true);
    }
    let locked = lockout.list().await?;
    if locked.is_empty() {
        writeln!(out, "no locked logins")?;
    }
    for l in &locked {
        writeln!(
            out,
            "{}\tfrom {}\t{} failed logins\tunlocks in {} s",
            l.user, l.addresses, l.failures, l.remaining_s
        )?;
    }
    Ok(true)
}
