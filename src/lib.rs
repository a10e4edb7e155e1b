//! spgate: an SFTP and FTP/FTPS gateway in front of Microsoft SharePoint.
//!
//! # Layout
//!
//! - [`config`]: the gateway's configuration, loaded in two stages (raw serde structs, then
//!   validated typed values) from a TOML file plus `SPGATE_...` environment overrides.
//! - [`wire`]: plain Microsoft Graph data types and the quickXorHash; the only code that the
//!   Graph client and the simulator share, so that each checks the other.
//! - [`sim`]: `spgate sim`, an offline Microsoft Graph / Microsoft identity platform simulator
//!   serving the subset of Graph that spgate speaks (see `shared/GRAPH.md`).
//! - [`logging`]: the one `tracing` stack.
//!
//! Dependencies point inwards: front-ends depend on the user/mount layer, which depends on the
//! storage backends; `sim` depends only on `wire`.

pub mod config;
pub mod logging;
pub mod sim;
pub mod wire;
