//! Stage one: the configuration exactly as written, deserialised by the `config` crate.
//!
//! Every struct denies unknown fields, so a misspelt key fails loudly. Nearly every field is an
//! `Option` (or an empty list): required keys and defaults are handled in stage two
//! ([`super::validate`]) so that all "missing" errors read the same and defaults live in one
//! place. These types hold unresolved secrets and therefore implement no `Debug`.
//!
//! The record types ([`User`], [`Connection`], [`SyncJob`]) are also what the admin API's
//! OpenAPI document shows of the records it takes: their schemas come from these structs.

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};

/// The whole file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Config {
    pub state: Option<State>,
    pub sftp: Option<Sftp>,
    pub ftp: Option<Ftp>,
    pub admin: Option<Admin>,
    pub audit: Option<Audit>,
    pub limits: Option<Limits>,
    #[serde(default)]
    pub connections: Vec<Connection>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub syncs: Vec<SyncJob>,
    #[serde(default)]
    pub notify: Vec<Notify>,
}

/// A `[[notify]]` target: the keys of every type (stage two refuses those of another type).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Notify {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub events: Option<Vec<String>>,
    pub digest: Option<String>,
    pub attempts: Option<u32>,
    pub timeout: Option<String>,
    // webhook
    pub url: Option<String>,
    pub secret: Option<String>,
    // email
    pub host: Option<String>,
    pub port: Option<u16>,
    pub starttls: Option<bool>,
    pub ca: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: Option<String>,
    pub to: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct Limits {
    pub max_connections: Option<u64>,
    pub max_per_address: Option<u64>,
    pub max_unauthenticated: Option<u64>,
    pub max_sessions_per_user: Option<u64>,
    pub max_channels_per_connection: Option<u64>,
    pub max_handles_per_login: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct State {
    pub dir: Option<String>,
    pub database: Option<String>,
    pub database_password: Option<String>,
    pub secret_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Sftp {
    pub listen: Option<String>,
    pub enabled: Option<bool>,
    pub proxy_protocol: Option<bool>,
    pub login_grace_time: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Ftp {
    pub listen: Option<String>,
    pub enabled: Option<bool>,
    pub passive_ports: Option<PortRange>,
    pub passive_host: Option<String>,
    pub idle_timeout: Option<String>,
    pub login_grace_time: Option<String>,
    pub greeting: Option<String>,
    pub tls: Option<CertKey>,
    pub tls_required: Option<String>,
    pub proxy_protocol: Option<bool>,
    pub proxy_control_port: Option<u16>,
}

/// A PEM certificate and its private key. For a connection's `certificate`, each may be a
/// file's path or the PEM text itself; a key given as text is write-only (sealed in the store,
/// `has_private_key` in answers). For `tls`, file paths.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CertKey {
    /// The PEM certificate (chain): a path, or `-----BEGIN CERTIFICATE-----...`.
    pub cert: Option<String>,
    /// The PEM private key: a path, or `-----BEGIN PRIVATE KEY-----...` (write-only).
    pub key: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Admin {
    pub listen: Option<String>,
    pub token: Option<String>,
    pub readiness: Option<String>,
    pub tls: Option<CertKey>,
    pub public_url: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Audit {
    pub target: Option<String>,
    pub max_size_mib: Option<u64>,
    pub keep: Option<u32>,
    pub retention: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub client_id: Option<String>,
    pub site: Option<String>,
    pub drive: Option<String>,
    pub authority: Option<String>,
    pub graph_url: Option<String>,
    pub client_secret: Option<String>,
    pub certificate: Option<CertKey>,
    pub auth: Option<String>,
    pub max_concurrent_requests: Option<usize>,
    pub requests_per_second: Option<f64>,
    pub upload_chunk_mib: Option<u64>,
    pub download_streams: Option<usize>,
    pub upload_workers: Option<usize>,
    pub download_block_mib: Option<u64>,
    pub max_retries: Option<u32>,
    pub request_timeout: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: Option<String>,
    pub password_hash: Option<String>,
    #[serde(default)]
    pub authorized_keys: Vec<String>,
    #[serde(default)]
    pub allow_from: Vec<String>,
    pub enabled: Option<bool>,
    pub ftp_tls_required: Option<bool>,
    #[serde(default)]
    pub mounts: Vec<Mount>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Mount {
    pub path: Option<String>,
    pub connection: Option<String>,
    pub remote: Option<String>,
    pub local: Option<String>,
    pub permissions: Option<Permissions>,
    pub names: Option<String>,
    pub upload_commit: Option<String>,
}

/// `permissions = "*"` or `permissions = ["list", ...]`.
pub enum Permissions {
    Text(String),
    List(Vec<String>),
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SyncJob {
    pub name: Option<String>,
    pub local: Option<String>,
    pub connection: Option<String>,
    pub remote: Option<String>,
    pub names: Option<String>,
    pub direction: Option<String>,
    pub after_copy: Option<String>,
    pub interval: Option<String>,
    pub conflict: Option<String>,
    pub max_delete: Option<MaxDelete>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub enabled: Option<bool>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MaxDelete {
    pub percent: Option<u8>,
    pub count: Option<u64>,
}

/// `passive_ports = "50000-50100"` or `passive_ports = [50000, 50100]`, not yet checked.
pub(super) enum PortRange {
    Text(String),
    Pair(Vec<u16>),
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PortRange;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"a port range like "50000-50100" or [50000, 50100]"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<PortRange, E> {
                Ok(PortRange::Text(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<PortRange, A::Error> {
                Ok(PortRange::Pair(seq_of(seq)?))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for Permissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Permissions;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#""*" or a list of permission names"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Permissions, E> {
                Ok(Permissions::Text(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Permissions, A::Error> {
                Ok(Permissions::List(seq_of(seq)?))
            }
        }
        deserializer.deserialize_any(V)
    }
}

fn seq_of<'de, T: Deserialize<'de>, A: SeqAccess<'de>>(mut seq: A) -> Result<Vec<T>, A::Error> {
    let mut items = Vec::new();
    while let Some(item) = seq.next_element()? {
        items.push(item);
    }
    Ok(items)
}

impl utoipa::PartialSchema for Permissions {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type};
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("\"*\": every permission"));
        let list = ArrayBuilder::new()
            .items(ObjectBuilder::new().schema_type(Type::String))
            .description(Some(
                super::Permission::ALL
                    .map(super::Permission::name)
                    .join(", "),
            ));
        OneOfBuilder::new().item(text).item(list).into()
    }
}

impl utoipa::ToSchema for Permissions {}
