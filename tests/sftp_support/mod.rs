//! The SFTP client of the `sftp_*` tests: OpenSSH `sftp` in batch mode with the harness's key,
//! run against tests/common's [`Gateway`] (`spgate serve` in front of a simulator, checked
//! through the SIMULATOR's own Graph API), and readers of its output.
#![allow(dead_code, unused_imports)]

use std::process::{Command, Stdio};

pub use crate::common::{Gateway, Run, User, assert_same, random};

/// The lines a client printed other than the echo of batch commands (`sftp> ...`).
pub fn replies(output: &str) -> Vec<&str> {
    output
        .lines()
        .filter(|l| !l.starts_with("sftp> "))
        .collect()
}

/// Whether a short listing (`ls`) in `output` shows `name` (a name without spaces).
pub fn listed(output: &str, name: &str) -> bool {
    replies(output)
        .iter()
        .any(|l| l.split_whitespace().any(|w| w == name))
}

/// The `ls -l` line of `name` in `output`, if any.
pub fn find_long_line<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    let suffix = format!(" {name}");
    output
        .lines()
        .find(|l| l.starts_with(['-', 'd', 'l']) && l.ends_with(&suffix))
}

/// The `ls -l` line of `name` in `output`; panics if there is none.
pub fn long_line<'a>(output: &'a str, name: &str) -> &'a str {
    find_long_line(output, name)
        .unwrap_or_else(|| panic!("no ls -l line for {name:?} in:\n{output}"))
}

impl Gateway {
    /// The OpenSSH options every `sftp` run uses: key login only, no host-key bookkeeping.
    fn ssh_options(&self) -> Vec<String> {
        let mut args: Vec<String> = [
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "PreferredAuthentications=publickey",
            "-o",
            "ConnectTimeout=30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("-i".into());
        args.push(self.key().to_str().unwrap().to_string());
        args.push("-P".into());
        args.push(self.sftp_port.to_string());
        args
    }

    /// Runs `sftp -b BATCH` as `user` (plus `extra` arguments before the destination).
    pub async fn sftp_with(&self, user: &str, extra: &[&str], batch: &str) -> Run {
        let n = self.next_run();
        let batch_path = self.dir.path().join(format!("batch-{n}.txt"));
        std::fs::write(&batch_path, batch).expect("write batch");
        let mut cmd = tokio::process::Command::new("sftp");
        cmd.args(self.ssh_options())
            .args(extra)
            .arg("-b")
            .arg(&batch_path)
            .arg(format!("{user}@127.0.0.1"));
        let mut run = self.run(cmd, &format!("sftp-{n}")).await;
        run.asked = batch.to_string();
        run
    }

    /// Runs `sftp -b BATCH` as `user`.
    pub async fn sftp(&self, user: &str, batch: &str) -> Run {
        self.sftp_with(user, &[], batch).await
    }

    /// Runs a batch that must succeed; answers its output.
    pub async fn sftp_ok(&self, user: &str, batch: &str) -> String {
        let run = self.sftp(user, batch).await;
        assert!(run.success, "sftp failed: {run}");
        run.output
    }

    /// Runs a batch that must fail (sftp exits non-zero); answers its output.
    pub async fn sftp_fails(&self, user: &str, batch: &str) -> String {
        let run = self.sftp(user, batch).await;
        assert!(!run.success, "sftp should have failed: {run}");
        run.output
    }
}

/// Whether `python3` can import paramiko.
pub fn has_paramiko() -> bool {
    Command::new("python3")
        .args(["-c", "import paramiko"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
