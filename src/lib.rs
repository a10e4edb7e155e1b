//! spgate: an SFTP and FTP/FTPS gateway in front of Microsoft SharePoint.
//!
//! # Layout
//!
//! - [`config`]: the gateway's configuration, loaded in two stages (raw serde structs, then
//!   validated typed values) from a TOML file plus `SPGATE_...` environment overrides.
//! - [`connections`]: SharePoint connections: tokens (secret, certificate, device code),
//!   health with durable alerts, and each connection's Graph client and library.
//! - [`graph`]: spgate's Microsoft Graph client: limits, throttling, retries, paths, uploads.
//! - [`wire`]: plain Microsoft Graph data types and the quickXorHash; the only code that the
//!   Graph client and the simulator share, so that each checks the other.
//! - [`sim`]: `spgate sim`, an offline Microsoft Graph / Microsoft identity platform simulator
//!   serving the subset of Graph that spgate speaks (see `shared/GRAPH.md`).
//! - [`operate`]: the operator's commands about connections (`check`, `connect`, `alerts`...).
//! - [`logging`]: the one `tracing` stack.
//!
//! Dependencies point inwards: front-ends depend on the user/mount layer, which depends on the
//! storage backends; `sim` depends only on `wire`.

pub mod config;
pub mod connections;
pub mod graph;
pub mod logging;
pub mod operate;
pub mod sim;
pub mod wire;
