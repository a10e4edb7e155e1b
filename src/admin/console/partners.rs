//! Partners (the SFTP/FTP users): the list, the form (password set or generated, SSH keys,
//! allowed addresses, mounts with the folder picker and permission checkboxes), their open
//! sessions and lockouts, and a test of what a login will see.

use std::sync::Arc;

use axum::extract::{Path, Query, State as Extract};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::TryStreamExt;
use minijinja::{Value, context};
use serde_json::{Map, Value as Json, json};

use super::connections::names;
use super::picker::{missing_folder, normalize};
use super::{Fields, Posted, Signed, delete_page, enc, message, page, see, stored};
use crate::admin::State;
use crate::admin::records::save_record;
use crate::config::Permission;
use crate::config::Section;
use crate::session::control::Change;

/// `GET /console/partners`.
pub async fn list(Extract(state): Extract<Arc<State>>, signed: Signed) -> Response {
    let gateway = state.gateway();
    let records = match gateway.store.list(Section::Users).await {
        Ok(records) => records,
        Err(e) => return message(&state, &signed, "Partners", &e.to_string(), "/console/").await,
    };
    let sessions = gateway.admission.sessions();
    let locked = gateway.lockout.list().await.unwrap_or_default();
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            let f = r.record.as_object().cloned().unwrap_or_default();
            let mounts: Vec<String> = f
                .get("mounts")
                .and_then(Json::as_array)
                .map(|ms| {
                    ms.iter()
                        .map(|m| {
                            let at = m.get("path").and_then(Json::as_str).unwrap_or("/");
                            match (
                                m.get("connection").and_then(Json::as_str),
                                m.get("remote").and_then(Json::as_str),
                                m.get("local").and_then(Json::as_str),
                            ) {
                                (Some(c), remote, _) => {
                                    format!("{at} → {c}:{}", remote.unwrap_or("/"))
                                }
                                (None, _, Some(local)) => format!("{at} → local {local}"),
                                _ => at.to_string(),
                            }
                        })
                        .collect()
                })
                .unwrap_or_default();
            context! {
                name => r.name.clone(),
                enabled => f.get("enabled").and_then(Json::as_bool).unwrap_or(true),
                mounts => mounts,
                sessions => sessions.iter().filter(|s| s.user == r.name).count(),
                locked => locked.iter().any(|l| l.user == r.name),
                managed_by => r.managed_by.clone(),
            }
        })
        .collect();
    page(
        &state,
        &signed,
        "partners.html",
        context! { title => "Partners", nav => "partners", rows => rows },
    )
    .await
}

#[derive(serde::Deserialize, Default)]
pub struct Prefill {
    /// From the folder picker: the mount to add.
    connection: Option<String>,
    remote: Option<String>,
}

/// `GET /console/partners/new`.
pub async fn new(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Query(q): Query<Prefill>,
) -> Response {
    form(&state, &signed, None, Map::new(), q, None).await
}

/// `GET /console/partners/{name}`.
pub async fn show(
    Extract(state): Extract<Arc<State>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(q): Query<Prefill>,
) -> Response {
    match state.gateway().store.get(Section::Users, &name).await {
        Ok(Some(record)) => {
            let fields = record.record.as_object().cloned().unwrap_or_default();
            let extra = context! { managed_by => record.managed_by, has_password => fields.contains_key("password_hash") };
            form(&state, &signed, Some(name), fields, q, Some(extra)).await
        }
        Ok(None) => {
            message(
                &state,
                &signed,
                "Not found",
                &format!("There is no partner {name}."),
                "/console/partners",
            )
            .await
        }
        Err(e) => {
            message(
                &state,
                &signed,
                "Partners",
                &e.to_string(),
                "/console/partners",
            )
            .await
        }
    }
}

/// One mount as the form shows it.
fn mount_view(i: usize, m: &Map<String, Json>) -> Value {
    let permissions: Vec<String> = match m.get("permissions") {
        Some(Json::String(s)) if s == "*" => Permission::ALL
            .iter()
            .map(|p| p.name().to_string())
            .collect(),
        Some(Json::Array(list)) => list
            .iter()
            .filter_map(Json::as_str)
            .map(str::to_string)
            .collect(),
        _ => vec!["list".into(), "read".into()],
    };
    context! {
        i => i,
        path => m.get("path").and_then(Json::as_str).unwrap_or(""),
        connection => m.get("connection").and_then(Json::as_str).unwrap_or(""),
        remote => m.get("remote").and_then(Json::as_str).unwrap_or(""),
        local => m.get("local").and_then(Json::as_str).unwrap_or(""),
        permissions => permissions,
        blank => m.is_empty(),
    }
}

async fn form(
    state: &State,
    signed: &Signed,
    name: Option<String>,
    fields: Map<String, Json>,
    prefill: Prefill,
    extra: Option<Value>,
) -> Response {
    let gateway = state.gateway();
    let mut mounts: Vec<Map<String, Json>> = fields
        .get("mounts")
        .and_then(Json::as_array)
        .map(|ms| ms.iter().filter_map(|m| m.as_object().cloned()).collect())
        .unwrap_or_default();
    let mut blank = Map::new();
    if let Some(connection) = prefill.connection {
        blank.insert("connection".into(), json!(connection));
        blank.insert(
            "remote".into(),
            json!(normalize(prefill.remote.as_deref().unwrap_or("/"))),
        );
        blank.insert("path".into(), json!("/"));
        blank.insert("permissions".into(), json!(["list", "read", "write"]));
    }
    let prefilled = !blank.is_empty();
    // One more, to add a mount.
    mounts.push(blank);
    let mounts: Vec<Value> = mounts
        .iter()
        .enumerate()
        .map(|(i, m)| mount_view(i, m))
        .collect();
    let mount_count = mounts.len();
    let join = |key: &str| {
        fields
            .get(key)
            .and_then(Json::as_array)
            .map(|v| {
                v.iter()
                    .filter_map(Json::as_str)
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    };
    let sessions: Vec<Value> = name
        .as_ref()
        .map(|n| {
            gateway
                .admission
                .sessions()
                .into_iter()
                .filter(|s| &s.user == n)
                .map(|s| context! { id => s.id, protocol => s.protocol, peer => s.peer.to_string(), since => s.since })
                .collect()
        })
        .unwrap_or_default();
    let locks: Vec<Value> = match &name {
        Some(n) => gateway
            .lockout
            .list()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|l| &l.user == n)
            .map(|l| context! { addresses => l.addresses.to_string(), failures => l.failures, remaining_s => l.remaining_s })
            .collect(),
        None => Vec::new(),
    };
    let back = match &name {
        Some(n) => format!("/console/partners/{}", enc(n)),
        None => "/console/partners/new".into(),
    };
    let ctx = context! {
        title => name.clone().unwrap_or_else(|| "New partner".into()),
        nav => "partners",
        name => name,
        enabled => fields.get("enabled").and_then(Json::as_bool).unwrap_or(true),
        ftp_tls_required => fields.get("ftp_tls_required").and_then(Json::as_bool),
        authorized_keys => join("authorized_keys"),
        allow_from => join("allow_from"),
        mounts => mounts,
        mount_count => mount_count,
        prefilled => prefilled,
        connections => names(state).await,
        permissions => Permission::ALL.iter().map(|p| p.name()).collect::<Vec<_>>(),
        sessions => sessions,
        locks => locks,
        back => back,
        ..extra.unwrap_or_default()
    };
    page(state, signed, "partner.html", ctx).await
}

/// Lines (or commas) of a text area, trimmed, without empty ones.
fn lines(text: &str, commas: bool) -> Vec<String> {
    text.split(|c| c == '\n' || (commas && c == ','))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// A random password: 20 letters and digits (about 119 bits).
fn generate_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut rng = rand::rng();
    (0..20)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// The record the form describes, over the stored `fields`; and the password it set in clear,
/// when generated.
fn record(form: &Fields, mut fields: Map<String, Json>) -> (Map<String, Json>, Option<String>) {
    fields.insert("enabled".into(), json!(form.on("enabled")));
    match form.get("ftp_tls_required") {
        "yes" => {
            fields.insert("ftp_tls_required".into(), json!(true));
        }
        "no" => {
            fields.insert("ftp_tls_required".into(), json!(false));
        }
        _ => {
            fields.remove("ftp_tls_required");
        }
    }
    fields.insert(
        "authorized_keys".into(),
        json!(lines(form.raw("authorized_keys"), false)),
    );
    fields.insert(
        "allow_from".into(),
        json!(lines(form.raw("allow_from"), true)),
    );
    let mut generated = None;
    let password = if form.on("generate") {
        let password = generate_password();
        generated = Some(password.clone());
        Some(password)
    } else {
        Some(form.raw("password").to_string()).filter(|p| !p.is_empty())
    };
    if let Some(password) = password {
        // The new password replaces the stored hash.
        fields.remove("password_hash");
        fields.insert("password".into(), json!(password));
    }
    let stored: Vec<Json> = fields
        .get("mounts")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let count: usize = form.get("mount_count").parse().unwrap_or(0).min(64);
    let mut mounts = Vec::new();
    for i in 0..count {
        let key = |k: &str| format!("m{i}_{k}");
        if form.on(&key("remove")) {
            continue;
        }
        let connection = form.get(&key("connection"));
        let local = form.get(&key("local"));
        if connection.is_empty() && local.is_empty() {
            continue;
        }
        let mut mount = stored
            .get(i)
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        for k in ["connection", "remote", "local"] {
            mount.remove(k);
        }
        let path = form.get(&key("path"));
        mount.insert(
            "path".into(),
            json!(if path.is_empty() { "/" } else { path }),
        );
        if connection.is_empty() {
            mount.insert("local".into(), json!(local));
        } else {
            mount.insert("connection".into(), json!(connection));
            mount.insert("remote".into(), json!(normalize(form.get(&key("remote")))));
        }
        let permissions: Vec<&str> = form.all(&key("perm"));
        mount.insert("permissions".into(), json!(permissions));
        mounts.push(Json::Object(mount));
    }
    fields.insert("mounts".into(), Json::Array(mounts));
    (fields, generated)
}

/// `POST /console/partners`.
pub async fn create(
    Extract(state): Extract<Arc<State>>,
    Posted { signed, form }: Posted,
) -> Response {
    let name = form.get("name").to_string();
    store(&state, &signed, name, &form, Map::new(), true).await
}

/// `POST /console/partners/{name}`.
pub async fn save(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, form }: Posted,
) -> Response {
    let stored = match stored(&state, Section::Users, &name).await {
        Ok(fields) => fields,
        Err(e) => return message(&state, &signed, "Partners", &e, "/console/partners").await,
    };
    store(&state, &signed, name, &form, stored, false).await
}

async fn store(
    state: &State,
    signed: &Signed,
    name: String,
    form: &Fields,
    stored: Map<String, Json>,
    create: bool,
) -> Response {
    let stored_hash = stored.contains_key("password_hash");
    let (fields, generated) = record(form, stored);
    let mut problem = None;
    for (i, mount) in fields
        .get("mounts")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let (Some(c), Some(remote)) = (
            mount.get("connection").and_then(Json::as_str),
            mount.get("remote").and_then(Json::as_str),
        ) && let Some(why) = missing_folder(state, c, remote).await
        {
            problem = Some((format!("mounts[{i}].remote"), why));
            break;
        }
    }
    let saved = match problem {
        Some((field, why)) => Err((why, Some(field))),
        None => {
            let change = Change {
                section: Section::Users,
                name: name.clone(),
                fields: fields.clone(),
                create,
            };
            save_record(state, change)
                .await
                .map_err(|f| (f.message().to_string(), f.field().map(str::to_string)))
        }
    };
    match saved {
        Ok(_) => {
            tracing::info!(admin = %signed.admin, user = %name, "console: partner saved");
            match generated {
                // Shown once, on this answer: never in a URL or the logs.
                Some(password) => {
                    let record = state
                        .gateway()
                        .store
                        .get(Section::Users, &name)
                        .await
                        .ok()
                        .flatten();
                    let stored = record
                        .and_then(|r| r.record.as_object().cloned())
                        .unwrap_or_default();
                    let extra =
                        context! { generated => password, saved => true, has_password => true };
                    form_again(state, signed, Some(name), stored, extra).await
                }
                None => see(&format!("/console/partners/{}?saved=1", enc(&name))),
            }
        }
        Err((message, field)) => {
            let mut shown = fields;
            shown.remove("password");
            let has_password = stored_hash;
            let extra = context! { error => context! { message => message, field => field }, new_name => name.clone(), has_password => has_password };
            let mut response =
                form_again(state, signed, (!create).then_some(name), shown, extra).await;
            *response.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            response
        }
    }
}

async fn form_again(
    state: &State,
    signed: &Signed,
    name: Option<String>,
    fields: Map<String, Json>,
    extra: Value,
) -> Response {
    form(state, signed, name, fields, Prefill::default(), Some(extra)).await
}

/// `POST /console/partners/{name}/delete`.
pub async fn delete(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    delete_page(&state, &signed, Section::Users, &name, "/console/partners").await
}

/// `POST /console/partners/{name}/test`: what the partner will see after logging in: each
/// mount's folder listed through its connection (or the local folder), with the permissions.
pub async fn test_login(
    Extract(state): Extract<Arc<State>>,
    Path(name): Path<String>,
    Posted { signed, .. }: Posted,
) -> Response {
    let gateway = state.gateway();
    let back = format!("/console/partners/{}", enc(&name));
    let Some(user) = gateway.config.user(&name) else {
        return message(
            &state,
            &signed,
            "Test login",
            &format!("No partner {name} is in force."),
            &back,
        )
        .await;
    };
    let mut lines = vec![format!(
        "{name} {} log in{}.",
        if user.enabled {
            "can"
        } else {
            "cannot (disabled)"
        },
        if user.allow_from.is_empty() {
            String::new()
        } else {
            format!(
                " from {}",
                user.allow_from
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    )];
    for mount in &user.mounts {
        let permissions: Vec<&str> = Permission::ALL
            .iter()
            .filter(|p| mount.permissions.allows(**p))
            .map(|p| p.name())
            .collect();
        let seen = match &mount.target {
            crate::config::MountTarget::SharePoint {
                connection, remote, ..
            } => match gateway.connections.get(connection) {
                Some(c) => {
                    let listed = async {
                        let drive = c.drive().await?;
                        let first = std::pin::pin!(drive.list(remote)).try_next().await?;
                        Ok::<_, crate::graph::Error>(first.unwrap_or_default())
                    };
                    match listed.await {
                        Ok(entries) => {
                            let mut names: Vec<String> = entries
                                .iter()
                                .take(20)
                                .map(|e| {
                                    if e.is_dir {
                                        format!("{}/", e.name)
                                    } else {
                                        e.name.clone()
                                    }
                                })
                                .collect();
                            if entries.len() > 20 {
                                names.push(format!("… {} more", entries.len() - 20));
                            }
                            format!("{} entries: {}", entries.len(), names.join(", "))
                        }
                        Err(e) => format!("cannot be listed: {e}"),
                    }
                }
                None => format!("connection {connection} is not in force"),
            },
            crate::config::MountTarget::Local { dir } => match std::fs::read_dir(dir) {
                Ok(entries) => format!("{} entries (local folder)", entries.count()),
                Err(e) => format!("the local folder cannot be read: {e}"),
            },
        };
        lines.push(format!(
            "{} ({}): {seen}",
            mount.path,
            if permissions.is_empty() {
                "no permissions".to_string()
            } else {
                permissions.join(", ")
            }
        ));
    }
    message(
        &state,
        &signed,
        &format!("What {name} will see"),
        &lines.join("\n"),
        &back,
    )
    .await
}
