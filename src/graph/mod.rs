//! spgate's Microsoft Graph client for SharePoint document libraries.
//!
//! - [`access`]: what the client needs from its connection (tokens, standing);
//! - [`client`]: requests with limits, throttling pauses, token refresh and retries;
//! - [`drive`]: one library's operations by path; [`download`]: streaming and parallel ranged
//!   downloads; [`upload`]: simple and session uploads;
//! - [`sites`]: the sites and libraries the credential can see (search, a site's libraries),
//!   for choosing a connection's library;
//! - [`names`]: SharePoint's naming rules and path encoding; [`lookalike`]: the encoding of
//!   names SharePoint refuses into look-alikes it accepts; [`error`]: the error kinds.
//!
//! It shares only the plain types of [`crate::wire`] with the simulator.

pub mod access;
pub mod client;
pub mod download;
pub mod drive;
pub mod error;
pub mod lookalike;
pub mod names;
pub mod sites;
pub mod upload;

pub use client::Client;
pub use download::Ranges;
pub use drive::{Drive, Entry};
pub use error::{Error, Kind, Result};
pub use upload::{OnConflict, Upload};
