//! Shared helpers for the `graph_*` tests: a running simulator (tests/common's [`Ctx`]) with a
//! private state directory, spgate configurations pointing at it, connections opened through
//! spgate's library, and the simulator's own view (statistics, items) to check results against.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use futures_util::TryStreamExt;
use spgate::config::Config;
use spgate::connections::Connection;
use spgate::connections::store::Paths;
use spgate::graph::{Drive, Kind};

use crate::common::{Ctx, seed};

/// The connection name every test uses.
pub const NAME: &str = "partners";

/// A simulator, its Graph view (`ctx`) and a state directory for spgate.
pub struct World {
    pub ctx: Ctx,
    pub state: tempfile::TempDir,
}

impl World {
    /// The default world (tenant contoso, app spgate-demo, site partners).
    pub async fn new() -> World {
        World::with_seed(&seed("", "")).await
    }

    pub async fn with_seed(seed: &str) -> World {
        World {
            ctx: Ctx::with_seed(seed).await,
            state: tempfile::tempdir().expect("state dir"),
        }
    }

    pub fn base(&self) -> &str {
        &self.ctx.sim.base
    }

    pub fn paths(&self) -> Paths {
        Paths::in_dir(self.state.path())
    }

    /// A configuration with one connection `partners` for tenant `tenant`; `credential` and
    /// `extra` are lines of its `[[connections]]` table.
    pub fn toml_for(&self, tenant: &str, credential: &str, extra: &str) -> String {
        format!(
            "[state]\ndir = {state:?}\n\n[[connections]]\nname = \"{NAME}\"\ntenant = \"{tenant}\"\n\
             client_id = \"spgate-demo\"\nsite = \"https://contoso.sharepoint.com/sites/partners\"\n\
             authority = \"{base}\"\ngraph_url = \"{base}\"\n{credential}\n{extra}\n",
            state = self.state.path().to_str().expect("utf-8 temp path"),
            base = self.base(),
        )
    }

    /// The usual client-secret connection plus `extra` lines.
    pub fn toml(&self, extra: &str) -> String {
        self.toml_for("contoso", "client_secret = \"demo-secret\"", extra)
    }

    pub fn config(&self, extra: &str) -> Config {
        parse(&self.toml(extra))
    }

    /// Writes `toml` next to the state directory and answers its path (for the CLI).
    pub fn write_config(&self, file: &str, toml: &str) -> PathBuf {
        let path = self.state.path().join(file);
        std::fs::write(&path, toml).expect("write config");
        path
    }

    pub async fn open(&self, config: &Config) -> Connection {
        Connection::open(&config.connections[0], &self.paths())
            .await
            .expect("open connection")
    }

    /// A client-secret connection (with `extra` settings) and its resolved library.
    pub async fn drive(&self, extra: &str) -> (Connection, Arc<Drive>) {
        let connection = self.open(&self.config(extra)).await;
        let drive = connection.drive().await.expect("resolve the library");
        (connection, drive)
    }

    /// Expires every access token issued so far (`/_sim/tokens/expire`), then gives the test's
    /// own Graph view a new one (one token request).
    pub async fn expire_tokens(&mut self) {
        self.ctx
            .sim
            .control("/tokens/expire", serde_json::json!({}))
            .await;
        self.ctx.token = self.ctx.sim.app_token().await;
    }

    /// The simulator's request counters.
    pub async fn requests(&self) -> u64 {
        self.ctx.sim.stats().await["requests"]
            .as_u64()
            .expect("requests")
    }

    pub async fn count(&self, kind: &str) -> u64 {
        self.ctx.sim.stats().await["by_kind"][kind]
            .as_u64()
            .unwrap_or_else(|| panic!("by_kind.{kind}"))
    }

    /// The simulator's own driveItem at `path` (no leading slash), with spgate not involved.
    pub async fn item(&self, path: &str) -> serde_json::Value {
        self.ctx.item(path.trim_start_matches('/')).await
    }

    /// The HTTP status the simulator answers for `path`.
    pub async fn item_status(&self, path: &str) -> u16 {
        let url = self.ctx.p(path.trim_start_matches('/'), "");
        self.ctx.get(&url).await.status().as_u16()
    }

    /// The child names of folder `path` ("" for the root) as the simulator lists them.
    pub async fn names(&self, path: &str) -> Vec<String> {
        self.ctx.child_names(path).await
    }
}

pub fn parse(toml: &str) -> Config {
    spgate::config::parse_str(toml).unwrap_or_else(|e| panic!("config: {e}\n{toml}"))
}

/// Runs `spgate COMMAND --config FILE REST...` to completion. (`--config` goes right after the
/// command: `connections enable NAME --config FILE` is refused by the argument parser.)
pub fn spgate(args: &[&str], config: &Path) -> Output {
    let (command, rest) = args.split_first().expect("a command");
    Command::new(env!("CARGO_BIN_EXE_spgate"))
        .arg(command)
        .arg("--config")
        .arg(config)
        .args(rest)
        .output()
        .expect("run spgate")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The whole content of `path` downloaded through spgate.
pub async fn fetch(drive: &Drive, path: &str, offset: u64, len: Option<u64>) -> Vec<u8> {
    let download = drive
        .download(path, offset, len)
        .await
        .unwrap_or_else(|e| panic!("download {path} @{offset}+{len:?}: {e}"));
    let chunks: Vec<bytes::Bytes> = download.body.try_collect().await.expect("download body");
    chunks.concat()
}

/// Uploads `bytes` to `path` through spgate (no modification time).
pub async fn put(drive: &Drive, path: &str, bytes: &[u8]) -> spgate::graph::Entry {
    drive
        .upload(path, bytes, bytes.len() as u64, None)
        .await
        .unwrap_or_else(|e| panic!("upload {path}: {e}"))
}

/// Asserts that `result` failed with `kind`.
pub fn assert_kind<T: std::fmt::Debug>(result: spgate::graph::Result<T>, kind: Kind, what: &str) {
    match result {
        Err(e) => assert_eq!(e.kind, kind, "{what}: {e} (code {:?})", e.code),
        Ok(v) => panic!("{what}: expected {kind:?}, got {v:?}"),
    }
}
