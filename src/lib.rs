//! spgate: an SFTP and FTP/FTPS gateway in front of Microsoft SharePoint.
//!
//! # Layout
//!
//! - [`admin`]: the admin HTTP endpoint: probes, Prometheus metrics, JSON API, status page.
//! - [`audit`]: the transfer audit log (JSON lines, rotated by size).
//! - [`cluster`]: the instances serving from one state store: heartbeats, `spgate cluster
//!   status`.
//! - [`config`]: the gateway's configuration, loaded in two stages (raw serde structs, then
//!   validated typed values) from a TOML file plus `SPGATE_...` environment overrides.
//! - [`connections`]: SharePoint connections: tokens (secret, certificate, device code),
//!   health with durable alerts, and each connection's Graph client and library.
//! - [`events`]: what parts of the gateway announce for others: a file stored (for the sync
//!   scheduler), notices for administrators (for the notifier).
//! - [`notify`]: alert notifications: the `[[notify]]` targets (webhook, e-mail) and the
//!   notifier delivering the event bus's notices to them, with retries.
//! - [`graph`]: spgate's Microsoft Graph client: limits, throttling, retries, paths, uploads,
//!   SharePoint's naming rules and the look-alike encoding of names it refuses.
//! - [`state`]: the state store (embedded SQLite or PostgreSQL): records, sealed secrets,
//!   host keys, under a versioned schema.
//! - [`storage`]: object-safe storage backends (`local`, `sharepoint`) behind mounts.
//! - [`sync`]: the sync worker for mirrored folders (push, pull, two-way) and its SQLite state.
//! - [`users`]: accounts, password and public-key authentication.
//! - [`vfs`]: a user's virtual tree of mounts, with permissions and path containment.
//! - [`wire`]: plain Microsoft Graph data types and the quickXorHash; the only code that the
//!   Graph client and the simulator share, so that each checks the other.
//! - [`serve`], [`demo`]: `spgate serve` and `spgate demo`.
//! - [`session`]: the protocol-neutral layer `serve` runs: the gateway in force (users,
//!   connections, mounts, limits), logins for every front-end (lock, credentials, audit,
//!   metrics), the session a login makes and its accounting of transfers.
//! - [`sftp`]: the SFTP front-end (russh + russh-sftp).
//! - [`ftp`]: the FTP/FTPS front-end (libunftp).
//! - [`sim`]: `spgate sim`, an offline Microsoft Graph / Microsoft identity platform simulator
//!   serving the subset of Graph that spgate speaks (see `shared/GRAPH.md`).
//! - [`check`]: `spgate check`, each connection and its mounts' and jobs' folders, step by
//!   step, with what to do about each failure, changing no state.
//! - [`operate`]: the operator's commands about connections (`connect`, `alerts`...).
//! - [`manage`]: `spgate users ...`, the users in the state store, server running or not.
//! - [`logging`]: the one `tracing` stack.
//!
//! Dependencies point inwards: front-ends depend on the user/mount layer, which depends on the
//! storage backends; `sim` depends only on `wire`.

pub mod admin;
pub mod audit;
pub mod check;
pub mod cluster;
pub mod config;
pub mod connections;
pub mod demo;
pub mod events;
pub mod fsio;
pub mod ftp;
pub mod graph;
pub mod logging;
pub mod manage;
pub mod notify;
pub mod operate;
pub mod serve;
pub mod session;
pub mod sftp;
pub mod sim;
pub mod state;
pub mod storage;
pub mod sync;
pub mod users;
pub mod vfs;
pub mod wire;
