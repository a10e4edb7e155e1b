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

/// The OpenSSH options of every `sftp` run: no host-key bookkeeping, errors only.
const HOST_OPTIONS: [&str; 8] = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=30",
];

/// Runs `sftp -b BATCH` as `user` logging in with `password` to 127.0.0.1:`port`, from `dir`
/// (where the batch, the output and an `SSH_ASKPASS` program answering the password go).
pub async fn sftp_with_password(
    dir: &std::path::Path,
    port: u16,
    user: &str,
    password: &str,
    batch: &str,
) -> Run {
    let askpass = dir.join("askpass.sh");
    if !askpass.exists() {
        std::fs::write(
            &askpass,
            "#!/bin/sh\nprintf '%s\\n' \"$ASKPASS_PASSWORD\"\n",
        )
        .unwrap();
        let mut permissions = std::fs::metadata(&askpass).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o700);
        std::fs::set_permissions(&askpass, permissions).unwrap();
    }
    let n = rand::random::<u32>();
    let batch_path = dir.join(format!("batch-{n}.txt"));
    std::fs::write(&batch_path, batch).expect("write batch");
    let mut cmd = tokio::process::Command::new("sftp");
    // `-b` adds BatchMode=yes, which forbids passwords; OpenSSH keeps an option's first value,
    // so BatchMode=no must come before it.
    cmd.args(HOST_OPTIONS)
        .args(["-o", "BatchMode=no", "-o", "PubkeyAuthentication=no"])
        .args([
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ])
        .args(["-o", "NumberOfPasswordPrompts=1", "-P", &port.to_string()])
        .arg("-b")
        .arg(&batch_path)
        .arg(format!("{user}@127.0.0.1"))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("ASKPASS_PASSWORD", password);
    let mut run =
        crate::common::run_client(cmd, dir, &dir.join(format!("sftp-{n}.out")), "sftp").await;
    run.asked = batch.to_string();
    run
}

impl Gateway {
    /// The OpenSSH options every `sftp` run uses: key login only, no host-key bookkeeping.
    fn ssh_options(&self) -> Vec<String> {
        let mut args: Vec<String> = HOST_OPTIONS
            .iter()
            .chain(&[
                "-o",
                "BatchMode=yes",
                "-o",
                "IdentitiesOnly=yes",
                "-o",
                "PreferredAuthentications=publickey",
            ])
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
