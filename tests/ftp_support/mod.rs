//! The FTP clients of the `ftp_*` tests, run against tests/common's [`Gateway`] (`spgate serve`
//! in front of a simulator, checked through the SIMULATOR's own Graph API): Python's `ftplib`
//! (plain and `FTP_TLS`), `lftp` (`-c` scripts) and `curl`, and readers of their output.
#![allow(dead_code, unused_imports)]

pub use crate::common::{Gateway, Run, User, assert_same, random};

/// The Python prelude of every [`Gateway::python`] script (argv: port user password [tls]):
/// `ftp` is a logged-in `ftplib.FTP` in passive mode (`FTP_TLS` with a protected data channel
/// when the fourth argument is `tls`); `attempt(f, *args)` answers `f`'s result, or
/// `ERR <reply>` if it failed; `fetch(name, rest)` answers a file's content (from `rest`).
const PRELUDE: &str = r#"
import ftplib, io, ssl, sys
if sys.argv[4:] == ['tls']:
    ftp = ftplib.FTP_TLS(context=ssl._create_unverified_context())
else:
    ftp = ftplib.FTP()
ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=60)
ftp.login(sys.argv[2], sys.argv[3])
if sys.argv[4:] == ['tls']:
    ftp.prot_p()
def attempt(f, *args, **kw):
    try:
        return f(*args, **kw)
    except ftplib.all_errors as e:
        return 'ERR ' + str(e)
def fetch(name, rest=None):
    out = io.BytesIO()
    ftp.retrbinary('RETR ' + name, out.write, rest=rest)
    return out.getvalue()
"#;

/// The settings every [`Gateway::lftp`] script starts with: fail on the first failed command,
/// give up instead of retrying for minutes, passive mode.
const LFTP_SETTINGS: &str = "set cmd:fail-exit yes\nset net:max-retries 1\n\
    set net:timeout 30\nset net:reconnect-interval-base 1\nset ftp:passive-mode yes\n\
    set xfer:clobber yes\n";

/// How an `lftp` script talks to the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain FTP (`set ftp:ssl-allow no`).
    Plain,
    /// Explicit FTPS for the control and data connections, the certificate not verified.
    Tls,
}

/// The value printed after `label ` on its own line of `output`.
pub fn value<'a>(output: &'a str, label: &str) -> &'a str {
    let prefix = format!("{label} ");
    output
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{output}"))
}

/// `python3` running `script` after [`PRELUDE`], logged in to 127.0.0.1:`port` as
/// `user`/`password`.
pub fn ftplib(
    port: u16,
    security: Security,
    user: &str,
    password: &str,
    script: &str,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("python3");
    cmd.arg("-c")
        .arg(format!("{PRELUDE}\n{script}"))
        .arg(port.to_string())
        .arg(user)
        .arg(password);
    if security == Security::Tls {
        cmd.arg("tls");
    }
    cmd
}

impl Gateway {
    /// Runs `script` (after [`PRELUDE`]) with `python3` as `user`/`password` over plain FTP.
    pub async fn python(&self, user: &str, password: &str, script: &str) -> Run {
        self.python_as(Security::Plain, user, password, script)
            .await
    }

    /// Runs `script` (after [`PRELUDE`]) with `python3` as `user`/`password`.
    pub async fn python_as(
        &self,
        security: Security,
        user: &str,
        password: &str,
        script: &str,
    ) -> Run {
        let cmd = ftplib(self.ftp_port, security, user, password, script);
        let mut run = self.run(cmd, "python").await;
        run.asked = script.to_string();
        run
    }

    /// Runs a plain-FTP script that must succeed; answers its output.
    pub async fn python_ok(&self, user: &str, password: &str, script: &str) -> String {
        let run = self.python(user, password, script).await;
        assert!(run.success, "ftplib script failed: {run}");
        run.output
    }

    /// Runs `lftp -c` with [`LFTP_SETTINGS`], logged in as `user`/`password` (no commas), then
    /// `script`. lftp's settings and state go to the gateway's temp folder (`HOME`).
    pub async fn lftp_as(
        &self,
        security: Security,
        user: &str,
        password: &str,
        script: &str,
    ) -> Run {
        let tls = match security {
            Security::Plain => "set ftp:ssl-allow no\n",
            Security::Tls => {
                "set ftp:ssl-force yes\nset ftp:ssl-protect-data yes\n\
                 set ssl:verify-certificate no\n"
            }
        };
        // lftp's protocol trace, shown when the run fails.
        let trace = tempfile::NamedTempFile::new_in(self.dir.path()).unwrap();
        let full = format!(
            "debug -t -o {trace} 9\n{LFTP_SETTINGS}{tls}open -u {user},{password} -p {port} \
             ftp://127.0.0.1\n{script}",
            trace = trace.path().display(),
            port = self.ftp_port
        );
        let mut cmd = tokio::process::Command::new("lftp");
        cmd.arg("-c").arg(&full).env("HOME", self.dir.path());
        let mut run = self.run(cmd, "lftp").await;
        run.asked = script.to_string();
        if !run.success {
            let trace = std::fs::read(trace.path()).unwrap_or_default();
            let tail = String::from_utf8_lossy(&trace[trace.len().saturating_sub(12_000)..]);
            run.output = format!("{}\n---- lftp trace (tail) ----\n{tail}", run.output);
        }
        run
    }

    /// Runs a plain-FTP lftp script that must succeed; answers its output.
    pub async fn lftp_ok(&self, user: &str, password: &str, script: &str) -> String {
        let run = self.lftp_as(Security::Plain, user, password, script).await;
        assert!(run.success, "lftp failed: {run}");
        run.output
    }

    /// `ftp://user:password@127.0.0.1:PORT/path` (`path` already URL-encoded).
    pub fn ftp_url(&self, user: &str, password: &str, path: &str) -> String {
        format!(
            "ftp://{user}:{password}@127.0.0.1:{}/{}",
            self.ftp_port,
            path.trim_start_matches('/')
        )
    }

    /// Runs `curl -sS ARGS` (add `--ssl-reqd -k` for FTPS).
    pub async fn curl(&self, args: &[&str]) -> Run {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.arg("-sS").args(args);
        let mut run = self.run(cmd, "curl").await;
        run.asked = format!("curl {}", args.join(" "));
        run
    }
}
