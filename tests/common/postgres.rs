//! A real PostgreSQL server for the suites (Debian's `postgresql` package): one per test
//! process, started on first use with `initdb` and `postgres` in a temp dir, reached over a
//! Unix socket only (no TCP port at all), and stopped when the test process ends (the server
//! is started with a parent-death signal, from a thread that lives as long as the process).
//! Each test gets a database of its own ([`database`]). As root (CI), the server runs as the
//! `postgres` user, since PostgreSQL refuses to run as root.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct Server {
    /// The folder holding the data directory and the socket.
    pub dir: PathBuf,
    pub bin: PathBuf,
}

/// The folder of Debian's PostgreSQL programs (the newest version installed).
fn bin_dir() -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is not installed (Debian's postgresql package; .ci/run installs it)")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name()?.to_str()?.parse::<u32>().ok())
    });
    found
        .pop()
        .expect("no initdb under /usr/lib/postgresql/*/bin")
}

/// Runs as the `postgres` user when the tests run as root.
fn as_owner(cmd: &mut Command) -> &mut Command {
    if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = postgres_user();
        cmd.uid(uid).gid(gid);
    }
    cmd
}

fn postgres_user() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .expect("no postgres user (Debian's postgresql package makes it)");
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// The server, started on first call.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        // The server dies with this thread's process: the thread never ends.
        std::thread::spawn(move || {
            let server = start();
            tx.send(server).unwrap();
            loop {
                std::thread::park();
            }
        });
        rx.recv().expect("PostgreSQL did not start")
    })
}

fn start() -> Server {
    let bin = bin_dir();
    // Servers of test processes that have ended died with them; their folders go now.
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("spgate-pg-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
    let dir = std::env::temp_dir().join(format!("spgate-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = postgres_user();
        for p in [dir.clone(), dir.join("data")] {
            std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
        }
    }
    let initdb = as_owner(
        Command::new(bin.join("initdb"))
            .args([
                "-D",
                "data",
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .current_dir(&dir),
    )
    .output()
    .expect("initdb");
    assert!(
        initdb.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    let mut postgres = Command::new(bin.join("postgres"));
    postgres
        .args(["-D", "data", "-c", "listen_addresses=", "-c"])
        .arg(format!("unix_socket_directories={}", dir.display()))
        .args(["-c", "fsync=off", "-c", "max_connections=200"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    as_owner(&mut postgres);
    unsafe {
        postgres.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = postgres.spawn().expect("postgres");
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(line)) => {
                let ready = line.contains("ready to accept connections");
                seen.push(line);
                if ready {
                    break;
                }
            }
            _ => panic!("postgres exited before it was ready:\n{}", seen.join("\n")),
        }
    }
    // Keep draining the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    std::mem::forget(child);
    Server { dir, bin }
}

impl Server {
    /// The URL of `database` (over the Unix socket).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://postgres@localhost/{database}?host={}",
            self.dir.display()
        )
    }

    /// Runs `psql` on `database` with `sql`; answers its output.
    pub fn psql(&self, database: &str, sql: &str) -> String {
        self.client(
            "psql",
            &[
                "-X",
                "-q",
                "-t",
                "-A",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ],
        )
    }

    /// `pg_dump` of `database`, as SQL text.
    pub fn dump(&self, database: &str) -> String {
        self.client("pg_dump", &[database])
    }

    /// Runs the client `program` as `postgres` over the socket with `args`: its output.
    fn client(&self, program: &str, args: &[&str]) -> String {
        let out = Command::new(self.bin.join(program))
            .arg("-h")
            .arg(&self.dir)
            .args(["-U", "postgres"])
            .args(args)
            .output()
            .expect(program);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// A new, empty database on the shared server: its name.
pub fn database() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::SeqCst));
    server().psql("postgres", &format!("CREATE DATABASE {name}"));
    name
}
