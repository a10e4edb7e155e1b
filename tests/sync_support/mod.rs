//! Harness of the sync suites: a simulator, a temp local folder, a config with one sync job,
//! and `spgate sync run` / `spgate sync status` run as the real binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::Ctx;

/// A TOML string literal.
pub fn quote_toml(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// One sync job against a fresh simulator.
pub struct Env {
    pub ctx: Ctx,
    pub dir: tempfile::TempDir,
    /// The job's local folder.
    pub local: PathBuf,
    /// The job's remote folder (drive-relative, no leading slash).
    pub remote: String,
    pub config: PathBuf,
}

/// What one `spgate sync ...` printed and whether it exited 0.
#[derive(Debug)]
pub struct Ran {
    pub ok: bool,
    pub out: String,
    pub err: String,
}

impl Ran {
    /// The summary counter `label` ("uploaded", "downloaded", ...), from the summary line.
    pub fn count(&self, label: &str) -> u64 {
        let line = self
            .out
            .lines()
            .find(|l| l.starts_with("sync "))
            .unwrap_or_else(|| panic!("no summary in:\n{}\n{}", self.out, self.err));
        line.split([':', ';', ','])
            .map(str::trim)
            .find_map(|part| {
                let (n, rest) = part.split_once(' ')?;
                rest.starts_with(label).then(|| n.parse().ok()).flatten()
            })
            .unwrap_or_else(|| panic!("no '{label}' in summary: {line}"))
    }

    /// Asserts how many files the run uploaded and downloaded.
    #[track_caller]
    pub fn assert_transfers(&self, uploaded: u64, downloaded: u64) {
        assert_eq!(
            (self.count("uploaded"), self.count("downloaded")),
            (uploaded, downloaded),
            "uploaded, downloaded:\n{}",
            self.out
        );
    }
}

impl Env {
    /// A job `job` with `direction` and extra TOML lines for the `[[syncs]]` table.
    pub async fn new(direction: &str, extra: &str) -> Env {
        Env::with_ctx(Ctx::new().await, direction, extra).await
    }

    pub async fn with_ctx(ctx: Ctx, direction: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        let local = dir.path().join("local");
        std::fs::create_dir(&local).expect("local dir");
        let env = Env {
            ctx,
            local,
            remote: "Mirror".to_string(),
            config: dir.path().join("spgate.toml"),
            dir,
        };
        env.write_config(direction, extra);
        env
    }

    /// Rewrites the configuration (the job keeps its name and folders).
    pub fn write_config(&self, direction: &str, extra: &str) {
        let sim = quote_toml(&self.ctx.sim.base);
        let config = format!(
            "[state]\ndir = {state}\n\n\
             [[connections]]\nname = \"sp\"\ntenant = \"contoso\"\nclient_id = \"spgate-demo\"\n\
             client_secret = \"demo-secret\"\nsite = \"https://contoso.sharepoint.com/sites/partners\"\n\
             authority = {sim}\ngraph_url = {sim}\nmax_retries = 3\n\n\
             [[syncs]]\nname = \"job\"\nlocal = {local}\nconnection = \"sp\"\nremote = {remote}\n\
             direction = \"{direction}\"\ninterval = \"1h\"\n{extra}\n",
            state = quote_toml(self.dir.path().join("state").to_str().expect("utf-8")),
            local = quote_toml(self.local.to_str().expect("utf-8")),
            remote = quote_toml(&format!("/{}", self.remote)),
        );
        std::fs::write(&self.config, config).expect("write config");
    }

    /// `spgate sync run job ARGS...` (in a blocking thread).
    pub async fn sync(&self, args: &[&str]) -> Ran {
        let mut all: Vec<String> = ["sync", "run", "job"].map(String::from).to_vec();
        all.extend(args.iter().map(|s| s.to_string()));
        let config = self.config.clone();
        tokio::task::spawn_blocking(move || spgate(&config, &all))
            .await
            .expect("join")
    }

    /// A sync that must succeed.
    pub async fn sync_ok(&self, args: &[&str]) -> Ran {
        let ran = self.sync(args).await;
        assert!(ran.ok, "sync failed:\n{}\n{}", ran.out, ran.err);
        ran
    }

    pub fn status(&self) -> Ran {
        spgate(&self.config, &["sync".into(), "status".into()])
    }

    /// The absolute local path of a job-relative path.
    pub fn lp(&self, rel: &str) -> PathBuf {
        self.local.join(rel)
    }

    /// The drive-relative remote path of a job-relative path.
    pub fn rp(&self, rel: &str) -> String {
        format!("{}/{rel}", self.remote)
    }

    /// Writes a local file (parents created) with an mtime `age` seconds in the past.
    pub fn write(&self, rel: &str, bytes: &[u8], age: u64) {
        let path = self.lp(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, bytes).expect("write");
        set_age(&path, age);
    }

    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.lp(rel)).ok()
    }

    /// Every local file, job-relative, sorted (spgate's temp files included, to catch leftovers;
    /// the job's folder marker at the root, which every run after the first checks, left out).
    pub fn local_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.local, &self.local, &mut out);
        out.retain(|rel| rel != spgate::sync::folder::MARKER);
        out.sort();
        out
    }

    /// Uploads a remote file (parents created) through Graph directly.
    pub async fn put_remote(&self, rel: &str, bytes: &[u8]) -> serde_json::Value {
        let path = self.rp(rel);
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.ctx.mkdirs(parent).await;
        }
        self.ctx.put(&path, bytes).await
    }

    /// Bytes of a remote file, `None` when it does not exist.
    pub async fn remote_bytes(&self, rel: &str) -> Option<Vec<u8>> {
        let item = self.ctx.item_at(&self.rp(rel)).await?;
        Some(self.ctx.download(item["id"].as_str().expect("id")).await)
    }

    /// Every remote file under the job's folder, job-relative, sorted.
    pub async fn remote_files(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            let path = if folder.is_empty() {
                self.remote.clone()
            } else {
                self.rp(&folder)
            };
            if self.ctx.item_at(&path).await.is_none() {
                continue;
            }
            for child in self.ctx.children(&path).await {
                let name = child["name"].as_str().expect("name");
                let rel = if folder.is_empty() {
                    name.to_string()
                } else {
                    format!("{folder}/{name}")
                };
                if child.get("folder").is_some() {
                    folders.push(rel);
                } else {
                    out.push(rel);
                }
            }
        }
        out.sort();
        out
    }

    /// Deletes a remote item through Graph.
    pub async fn delete_remote(&self, rel: &str) {
        let response = self
            .ctx
            .req(reqwest::Method::DELETE, &self.ctx.p(&self.rp(rel), ""))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status().as_u16(), 204, "delete {rel}");
    }
}

/// Runs the real binary with `--config config ARGS`.
pub fn spgate(config: &Path, args: &[String]) -> Ran {
    let output: Output = std::process::Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .expect("run spgate");
    Ran {
        ok: output.status.success(),
        out: String::from_utf8_lossy(&output.stdout).into_owned(),
        err: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Sets a file's mtime to `age` seconds ago.
pub fn set_age(path: &Path, age: u64) {
    let at = std::time::SystemTime::now() - std::time::Duration::from_secs(age);
    std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open")
        .set_modified(at)
        .expect("set mtime");
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).expect("read_dir") {
        let entry = entry.expect("entry");
        let path = entry.path();
        if entry.file_type().expect("type").is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            out.push(rel.to_string_lossy().into_owned());
        }
    }
}

/// Operator commands, simulator control and whole-tree views used by the safety suites.
impl Env {
    /// `spgate alerts`.
    pub fn alerts(&self) -> Ran {
        spgate(&self.config, &["alerts".into()])
    }

    /// Starts `spgate sync run job ARGS...` without waiting for it: stdout piped (one line per
    /// action, as printed when it is not a terminal), stderr appended to `sync-stderr.log` in
    /// the temp dir (never a terminal, so no progress bar).
    pub fn spawn_sync(&self, args: &[&str]) -> tokio::process::Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("sync-stderr.log"))
            .expect("stderr log");
        tokio::process::Command::new(env!("CARGO_BIN_EXE_spgate"))
            .args(["sync", "run", "job"])
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn spgate sync run")
    }

    /// Merges simulator faults (`/_sim/faults`).
    pub async fn faults(&self, body: serde_json::Value) {
        self.ctx.sim.faults(body).await;
    }

    /// Clears every simulator fault.
    pub async fn clear_faults(&self) {
        let response = self
            .ctx
            .sim
            .http
            .delete(self.ctx.sim.ctl("/faults"))
            .send()
            .await
            .expect("DELETE /_sim/faults");
        assert!(response.status().is_success(), "clear faults");
    }

    pub async fn reset_stats(&self) {
        self.ctx
            .sim
            .control("/stats/reset", serde_json::json!({}))
            .await;
    }

    /// Requests of one kind since the last reset (`simple_upload`, `download`, ...).
    pub async fn stat(&self, kind: &str) -> u64 {
        self.ctx.sim.stats().await["by_kind"][kind]
            .as_u64()
            .unwrap_or_else(|| panic!("no stat {kind}"))
    }

    /// Uploads started since the last reset: simple uploads plus upload sessions.
    pub async fn uploads_started(&self) -> u64 {
        self.stat("simple_upload").await + self.stat("create_session").await
    }

    /// Deletes the job's remote folder itself through Graph.
    pub async fn delete_remote_root(&self) {
        let response = self
            .ctx
            .req(reqwest::Method::DELETE, &self.ctx.p(&self.remote, ""))
            .send()
            .await
            .expect("DELETE");
        assert_eq!(response.status().as_u16(), 204, "delete the remote root");
    }

    /// Every local file with its bytes (spgate's temp files included).
    pub fn local_tree(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        self.local_files()
            .into_iter()
            .map(|rel| {
                let bytes = std::fs::read(self.lp(&rel)).expect("read local file");
                (rel, bytes)
            })
            .collect()
    }

    /// Every remote file with its bytes.
    pub async fn remote_tree(&self) -> std::collections::BTreeMap<String, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        for rel in self.remote_files().await {
            let bytes = self.remote_bytes(&rel).await.expect("remote file");
            out.insert(rel, bytes);
        }
        out
    }
}

/// Remote modification times and local removals for the decision-table and mode suites.
impl Env {
    /// Sets a remote item's `fileSystemInfo.lastModifiedDateTime` to `age` seconds ago (a PATCH,
    /// which changes the eTag but not the content or the cTag).
    pub async fn set_remote_age(&self, rel: &str, age: i64) {
        let at = chrono::Utc::now() - chrono::Duration::seconds(age);
        let body = serde_json::json!({
            "fileSystemInfo": {"lastModifiedDateTime": at.format("%Y-%m-%dT%H:%M:%SZ").to_string()}
        });
        let response = self
            .ctx
            .req(reqwest::Method::PATCH, &self.ctx.p(&self.rp(rel), ""))
            .json(&body)
            .send()
            .await
            .expect("PATCH");
        assert_eq!(response.status().as_u16(), 200, "set the time of {rel}");
    }

    /// Removes a local file.
    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.lp(rel)).expect("remove");
    }
}

/// The conflict copies of `name` among job-relative `files`, each checked to have the form
/// `stem (conflict YYYY-MM-DD HHMM host).ext` and no character SharePoint refuses.
pub fn conflict_copies(files: &[String], name: &str) -> Vec<String> {
    let (stem, ext) = match name.rsplit_once('.') {
        Some((stem, ext)) => (stem, format!(".{ext}")),
        None => (name, String::new()),
    };
    let prefix = format!("{stem} (conflict ");
    let suffix = format!("){ext}");
    let copies: Vec<String> = files
        .iter()
        .filter(|f| f.starts_with(&prefix))
        .cloned()
        .collect();
    for copy in &copies {
        let middle = copy
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(&suffix))
            .unwrap_or_else(|| panic!("{copy}: not {prefix}...{suffix}"));
        let mut parts = middle.splitn(3, ' ');
        let (date, time, host) = (parts.next(), parts.next(), parts.next());
        let well_formed = date
            .is_some_and(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok())
            && time.is_some_and(|t| chrono::NaiveTime::parse_from_str(t, "%H%M").is_ok())
            && host.is_some_and(|h| {
                !h.is_empty() && h.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        assert!(well_formed, "{copy}: not 'YYYY-MM-DD HHMM host'");
        assert!(
            !copy.contains(['"', '*', ':', '<', '>', '?', '\\', '|']),
            "{copy}: a character SharePoint refuses"
        );
    }
    copies
}
