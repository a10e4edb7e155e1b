//! `spgate check`: for each connection, step by step, a token, the site, the library and its
//! root; then, for each mount and sync job on it, its remote folder, a listing where it needs
//! to list and a write probe (a `.spgate-check-<random>` file created and deleted) where it
//! needs to write. Every failure comes with what to do. Nothing is written to the state: the
//! store is opened only if it exists and left as it was, connections have detached health (no
//! alert), and the one write is a delegated sign-in's rotated refresh token, when its saved
//! access token has expired (not saving it would sign the server out).

use std::collections::BTreeSet;
use std::io::Write;

use bytes::Bytes;
use futures_util::TryStreamExt;

use crate::config::{
    AfterCopy, Config, Connection as ConnectionConfig, Credential, Direction, MountTarget,
    Permission,
};
use crate::connections::Connection;
use crate::connections::store::Paths;
use crate::graph::{self, Drive, Kind, OnConflict, sites};

/// What a mount or a sync job does with its remote folder.
struct Use {
    /// `user alice, mount /inbox` or `sync job nightly`.
    who: String,
    remote: String,
    list: bool,
    write: bool,
}

/// A failed step: what failed, and what to do.
struct Failure {
    what: String,
    todo: String,
}

impl Failure {
    fn new(what: impl Into<String>, todo: impl Into<String>) -> Failure {
        Failure {
            what: what.into(),
            todo: todo.into(),
        }
    }
}

/// Checks every connection of `config` and what uses it, writing the report to `out`: whether
/// everything passed.
pub async fn check(config: &Config, out: &mut impl Write) -> std::io::Result<bool> {
    let paths = Paths::existing(config);
    let mut all_ok = true;
    for c in &config.connections {
        writeln!(
            out,
            "connection {}: {}, {}, library '{}'",
            c.name,
            c.credential.kind(),
            c.site.url,
            c.drive
        )?;
        all_ok &= connection(c, &uses(config, &c.name), &paths, out).await?;
    }
    // An SQLite store opened for a delegated sign-in is closed, so that it is left as found.
    paths.close().await;
    Ok(all_ok)
}

/// The mounts and sync jobs on connection `name`, with what each needs.
fn uses(config: &Config, name: &str) -> Vec<Use> {
    let mut uses = Vec::new();
    for user in &config.users {
        for mount in &user.mounts {
            if let MountTarget::SharePoint {
                connection, remote, ..
            } = &mount.target
                && connection == name
            {
                let p = mount.permissions;
                uses.push(Use {
                    who: format!("user {}, mount {}", user.name, mount.path),
                    remote: remote.clone(),
                    list: p.allows(Permission::List),
                    write: [
                        Permission::Write,
                        Permission::Overwrite,
                        Permission::Delete,
                        Permission::Rename,
                        Permission::Mkdir,
                    ]
                    .into_iter()
                    .any(|w| p.allows(w)),
                });
            }
        }
    }
    for job in config.syncs.iter().filter(|j| j.connection == name) {
        let write = match job.direction {
            Direction::Push | Direction::TwoWay => true,
            Direction::Pull => job.after_copy == AfterCopy::Delete,
        };
        uses.push(Use {
            who: format!("sync job {}", job.name),
            remote: job.remote.clone(),
            list: true,
            write,
        });
    }
    uses
}

fn ok(out: &mut impl Write, text: &str) -> std::io::Result<()> {
    writeln!(out, "  ok      {text}")
}

fn failed(out: &mut impl Write, failure: &Failure) -> std::io::Result<()> {
    writeln!(out, "  FAILED  {}", failure.what)?;
    writeln!(out, "          what to do: {}", failure.todo)
}

/// One connection's steps, then its uses: whether all passed.
async fn connection(
    c: &ConnectionConfig,
    uses: &[Use],
    paths: &Paths,
    out: &mut impl Write,
) -> std::io::Result<bool> {
    let connection = Connection::detached(c, paths);
    let drive = match steps(c, &connection, out).await? {
        Ok(drive) => drive,
        Err(failure) => {
            failed(out, &failure)?;
            if !uses.is_empty() {
                writeln!(
                    out,
                    "  skipped {} mount(s) and sync job(s) on it",
                    uses.len()
                )?;
            }
            return Ok(false);
        }
    };
    let mut all_ok = true;
    // One write probe per folder, however many mounts and jobs write there.
    let mut probed = BTreeSet::new();
    for u in uses {
        let folder_key = u.remote.to_lowercase();
        let probe = u.write && !probed.contains(&folder_key);
        match folder(c, &drive, u, probe).await {
            Ok(done) => {
                if probe {
                    probed.insert(folder_key);
                }
                ok(out, &format!("{} -> {}: {done}", u.who, u.remote))?
            }
            Err(failure) => {
                all_ok = false;
                failed(out, &failure)?;
            }
        }
    }
    Ok(all_ok)
}

/// Token, site, library, root listing; each step's line written as it passes. The library, or
/// the step that failed.
async fn steps(
    c: &ConnectionConfig,
    connection: &Connection,
    out: &mut impl Write,
) -> std::io::Result<Result<Drive, Failure>> {
    if matches!(c.credential, Credential::DeviceCode)
        && let Some(failure) = saved_sign_in(c, connection).await
    {
        return Ok(Err(failure));
    }
    if let Err(e) = connection.tokens.get().await {
        let (what, todo) = match e {
            graph::access::TokenError::Disabled {
                code,
                message,
                action,
            } => (format!("token: {message} ({code})"), action),
            graph::access::TokenError::Transient(why) => (
                format!("token: the identity platform did not answer: {why}"),
                format!(
                    "check that this host reaches {} (proxy, firewall), then run check again",
                    c.authority
                ),
            ),
        };
        return Ok(Err(Failure::new(what, todo)));
    }
    let who = match &c.credential {
        Credential::DeviceCode => "signed in as the saved account".to_string(),
        _ => format!("app {} of tenant {}", c.client_id, c.tenant),
    };
    ok(out, &format!("token: {who}"))?;
    let site_id = match Drive::find_site(&connection.client, &c.site.host, &c.site.path).await {
        Ok(id) => id,
        Err(e) => return Ok(Err(site_failure(c, connection, &e).await)),
    };
    ok(out, &format!("site: {site_id}"))?;
    let drive = match Drive::open_in(connection.client.clone(), &site_id, &c.drive).await {
        Ok(drive) => drive,
        Err(e) if e.kind == Kind::NotFound => {
            return Ok(Err(Failure::new(
                format!("library: {}", e.message),
                "set the connection's `drive` to one of the site's libraries (its name as SharePoint shows it)",
            )));
        }
        Err(e) => return Ok(Err(Failure::new(format!("library: {e}"), advice(c, &e)))),
    };
    let root = std::pin::pin!(drive.list("/")).try_next().await;
    match root {
        Ok(page) => {
            let n = page.map_or(0, |p| p.len());
            ok(
                out,
                &format!(
                    "library: {} ({}), {n} item(s) at its root",
                    c.drive, drive.id
                ),
            )?;
        }
        Err(e) => {
            return Ok(Err(Failure::new(
                format!("library: its root cannot be listed: {e}"),
                advice(c, &e),
            )));
        }
    }
    Ok(Ok(drive))
}

/// Why a delegated connection has no sign-in to use: the state store cannot be read, or holds
/// none for it. None when it has one.
async fn saved_sign_in(c: &ConnectionConfig, connection: &Connection) -> Option<Failure> {
    let sign_in = format!(
        "sign in from the web console (Sign in with Microsoft), or run `spgate connect {} --config FILE`",
        c.name
    );
    match connection.tokens.paths().grant(&c.name).await {
        Ok(Some(_)) => None,
        Ok(None) if connection.tokens.paths().old_grant_exists(&c.name) => Some(Failure::new(
            "token: the sign-in is still in an earlier version's file (tokens/NAME.json)",
            "start the server once: it moves the sign-in into the state store",
        )),
        Ok(None) => Some(Failure::new("token: nobody has signed in", sign_in)),
        Err(crate::state::Error::Refused(why)) if why.contains("no state store") => {
            Some(Failure::new(
                "token: nobody has signed in (there is no state store yet)",
                sign_in,
            ))
        }
        Err(e) => Some(Failure::new(
            format!("token: the saved sign-in cannot be read: {e}"),
            "see the message (the state store's schema, key or database)",
        )),
    }
}

/// Why the site could not be found, with what to do: not granted (403), or no such site (404,
/// with the names closest to it among the sites the app can see).
async fn site_failure(c: &ConnectionConfig, connection: &Connection, e: &graph::Error) -> Failure {
    let url = &c.site.url;
    match e.kind {
        Kind::PermissionDenied if matches!(c.credential, Credential::DeviceCode) => {
            Failure::new(format!("site {url}: access denied ({e})"), account_denied())
        }
        Kind::PermissionDenied => Failure::new(
            format!("site {url}: access denied ({e})"),
            format!(
                "the app is not granted on this site. With the Sites.Selected permission, a \
                 tenant administrator grants it: {}; or give the app the application permission \
                 Sites.ReadWrite.All with admin consent",
                grant_call(c)
            ),
        ),
        Kind::NotFound => {
            let name = c.site.path.rsplit('/').next().unwrap_or_default();
            let seen = match sites::search(&connection.client, name).await {
                Ok(sites::Search::Found { sites, .. }) => {
                    let mut near: Vec<(f64, String)> = sites
                        .into_iter()
                        .map(|s| {
                            let last = s.web_url.rsplit('/').next().unwrap_or_default().to_string();
                            (
                                strsim::jaro_winkler(&last.to_lowercase(), &name.to_lowercase()),
                                s.web_url,
                            )
                        })
                        .filter(|(score, _)| *score > 0.7)
                        .collect();
                    near.sort_by(|a, b| b.0.total_cmp(&a.0));
                    let near: Vec<String> = near.into_iter().take(3).map(|(_, url)| url).collect();
                    match near.is_empty() {
                        true => " (no site the app can see has a name close to it)".to_string(),
                        false => format!(
                            "; sites the app can see with a close name: {}",
                            near.join(", ")
                        ),
                    }
                }
                Ok(sites::Search::Refused) => {
                    " (the app is limited to the sites granted to it and cannot search for others)"
                        .to_string()
                }
                Err(_) => String::new(),
            };
            Failure::new(
                format!("site {url}: there is no such site"),
                format!(
                    "check the connection's `site` (https://HOST/sites/NAME or /teams/NAME){seen}"
                ),
            )
        }
        _ => Failure::new(format!("site {url}: {e}"), advice(c, e)),
    }
}

/// A mount's or a job's folder: it exists and is a folder; listed where the use lists; a file
/// created and deleted there where it writes (`probe`: once per folder). What was done, or
/// what failed.
async fn folder(
    c: &ConnectionConfig,
    drive: &Drive,
    u: &Use,
    probe: bool,
) -> Result<String, Failure> {
    let at = |what: &str| format!("{} -> {}: {what}", u.who, u.remote);
    match drive.stat(&u.remote).await {
        Ok(entry) if entry.is_dir => {}
        Ok(_) => {
            return Err(Failure::new(
                at(&format!("a file, not a folder, in library '{}'", c.drive)),
                format!("fix `remote` of {}", u.who),
            ));
        }
        Err(e) if e.kind == Kind::NotFound => {
            return Err(Failure::new(
                at(&format!("there is no such folder in library '{}'", c.drive)),
                format!(
                    "create the folder in SharePoint, or fix `remote` of {}",
                    u.who
                ),
            ));
        }
        Err(e) => return Err(Failure::new(at(&e.to_string()), advice(c, &e))),
    }
    let mut done = vec!["exists"];
    if u.list {
        if let Err(e) = std::pin::pin!(drive.list(&u.remote)).try_next().await {
            return Err(Failure::new(
                at(&format!("cannot be listed: {e}")),
                advice(c, &e),
            ));
        }
        done.push("listed");
    }
    if probe {
        let name = format!(".spgate-check-{:08x}", rand::random::<u32>());
        let path = match u.remote.as_str() {
            "/" => format!("/{name}"),
            remote => format!("{remote}/{name}"),
        };
        let bytes = Bytes::from_static(b"spgate check: a write probe, deleted at once\n");
        if let Err(e) = drive.upload_small(&path, bytes, OnConflict::Fail).await {
            let todo = match e.kind {
                Kind::PermissionDenied => write_denied(c),
                _ => {
                    // A retried upload whose first try landed answers 409: the probe may be
                    // there; delete it if so.
                    let _ = drive.delete(&path).await;
                    advice(c, &e)
                }
            };
            return Err(Failure::new(at(&format!("cannot be written: {e}")), todo));
        }
        // A retried delete whose first try landed answers 404: deleted.
        if let Err(e) = drive.delete(&path).await
            && e.kind != Kind::NotFound
        {
            return Err(Failure::new(
                at(&format!(
                    "the write probe {path} was created but not deleted: {e}"
                )),
                format!("delete {path} in SharePoint; the app may lack the right to delete"),
            ));
        }
        done.push("write probe created and deleted");
    }
    Ok(done.join(", "))
}

/// What to do when the app may read the library but not write it.
fn write_denied(c: &ConnectionConfig) -> String {
    match c.credential {
        Credential::DeviceCode => "the signed-in account can read but not write here: give it \
            Edit (Contribute) permission on the library or folder in SharePoint"
            .to_string(),
        _ => format!(
            "the app can read but not write this library. With Sites.Selected, grant it the \
             role write (a read grant lets it list and download only): {}; with application \
             permissions, Sites.ReadWrite.All (not Sites.Read.All) with admin consent",
            grant_call(c)
        ),
    }
}

/// The Graph request that grants connection `c`'s app write access to its site
/// (Sites.Selected).
fn grant_call(c: &ConnectionConfig) -> String {
    format!(
        "GET {graph}/v1.0/sites/{host}:{path}?$select=id for the site's id, then POST \
         {graph}/v1.0/sites/{{site-id}}/permissions with {{\"roles\": [\"write\"], \
         \"grantedToIdentities\": [{{\"application\": {{\"id\": \"{client}\", \"displayName\": \
         \"spgate\"}}}}]}}",
        graph = c.graph_url,
        host = c.site.host,
        path = c.site.path,
        client = c.client_id
    )
}

/// What to do when a delegated connection's account may not reach the site or library.
fn account_denied() -> String {
    "the signed-in account has no access here: ask the site's owner to give it access (Edit, or \
     Read for read-only use), or sign in with an account that has it"
        .into()
}

/// What to do about any other Graph failure.
fn advice(c: &ConnectionConfig, e: &graph::Error) -> String {
    match e.kind {
        Kind::PermissionDenied if matches!(c.credential, Credential::DeviceCode) => {
            account_denied()
        }
        Kind::PermissionDenied => format!(
            "the credential may not do this: check the app's permissions and the site's grant ({})",
            grant_call(c)
        ),
        Kind::Unavailable => format!(
            "SharePoint did not answer in time or throttled the app: check that this host \
             reaches {}, then run check again",
            c.graph_url
        ),
        Kind::Disabled => "the connection was refused its token: see the token step".into(),
        _ => "see the message; run check again once it is fixed".into(),
    }
}
