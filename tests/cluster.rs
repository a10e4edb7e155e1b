//! Several instances on one PostgreSQL store behind HAProxy (Debian's haproxy package), in TCP
//! mode with PROXY protocol v2 in front of their SFTP ports: a real PostgreSQL, the simulator,
//! three `spgate serve` and HAProxy, all started here, driven with OpenSSH `sftp` and paramiko.
//! One cluster serves every scenario in turn (starting it is the slow part):
//! - users and connections made through instance 1's API are in force on all three;
//! - 30 logins through HAProxy see one host key;
//! - a sync job of 2,000 files runs on one instance; killed with SIGKILL in the middle, another
//!   takes it over within 10 s and finishes it, every file in SharePoint once;
//! - revoking the app while instance 2 serves a transfer disables the connection on all three
//!   with one alert; re-saving it through instance 3 enables it everywhere;
//! - a rolling restart (SIGTERM one at a time) while 20 clients upload loses no upload reported
//!   as done and shows no partial file.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Ctx, postgres, qxh, spawn_serve};
use serde_json::{Value, json};

const TOKEN: &str = "cluster-admin-token";
const INSTANCES: usize = 3;

/// A port free now (bound, then released): HAProxy's frontend and the instances' listeners
/// must keep their ports across restarts.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// One `spgate serve` of the cluster.
struct Instance {
    dir: PathBuf,
    sftp: u16,
    admin: u16,
    child: Option<Child>,
}

impl Instance {
    fn config(&self) -> PathBuf {
        self.dir.join("spgate.toml")
    }

    fn start(&mut self) {
        let log = self.dir.join("spgate.log");
        // Each start's log is kept: earlier ones as spgate.log.N.
        if log.exists() {
            let n = std::fs::read_dir(&self.dir).unwrap().count();
            std::fs::rename(&log, self.dir.join(format!("spgate.log.{n}"))).unwrap();
        }
        let (child, announced) = spawn_serve(&self.config(), &log, &["sftp", "admin"]);
        assert!(
            announced.iter().all(Option::is_some),
            "instance did not start: {}",
            self.log_tail()
        );
        self.child = Some(child);
    }

    fn signal(&mut self, signal: i32) -> Child {
        let child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, signal) };
        child
    }

    fn log_tail(&self) -> String {
        common::file_tail(&self.dir.join("spgate.log"), 8000)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.admin)
    }

    async fn api(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = reqwest::Client::new()
            .request(method, self.url(path))
            .bearer_auth(TOKEN)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn ready(&self) -> (u16, String) {
        match reqwest::get(self.url("/readyz")).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// `spgate ARGS --config` this instance's file: its output.
    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_spgate"))
            .args(args)
            .arg("--config")
            .arg(self.config())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Cluster {
    ctx: Ctx,
    dir: tempfile::TempDir,
    instances: Vec<Instance>,
    haproxy: Child,
    /// HAProxy's SFTP frontend.
    port: u16,
    /// The folder every instance sees (the shared storage of sync jobs).
    shared: PathBuf,
    key: PathBuf,
    public_key: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.haproxy.kill();
        let _ = self.haproxy.wait();
        if std::thread::panicking() {
            for (i, instance) in self.instances.iter().enumerate() {
                eprintln!(
                    "---- instance {} log tail ----\n{}",
                    i + 1,
                    instance.log_tail()
                );
            }
        }
    }
}

/// Polls `check` until it answers `Some`, for at most `limit`: what it answered.
async fn until<T, F: std::future::Future<Output = Option<T>>>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Cluster {
    async fn start() -> Cluster {
        // Device-code sign-ins polled each second.
        let seed = format!("device_code_interval_secs = 1\n{}", common::seed("", ""));
        let ctx = Ctx::with_seed(&seed).await;
        let dir = tempfile::tempdir().unwrap();
        let database = postgres::server().url(&postgres::database());
        let secret = spgate::state::seal::Sealer::generate();
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).unwrap();
        let key = dir.path().join("id");
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "cluster-test", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(out.status.success());
        let public_key = std::fs::read_to_string(key.with_extension("pub"))
            .unwrap()
            .trim()
            .to_string();
        let mut instances: Vec<Instance> = (1..=INSTANCES)
            .map(|n| {
                let dir = dir.path().join(format!("instance{n}"));
                std::fs::create_dir(&dir).unwrap();
                let instance = Instance {
                    sftp: free_port(),
                    admin: free_port(),
                    child: None,
                    dir,
                };
                let config = format!(
                    "[state]\ndir = {state}\ndatabase = {database}\nsecret_key = {secret}\n\n\
                     [sftp]\nlisten = \"127.0.0.1:{sftp}\"\nproxy_protocol = true\n\n\
                     [admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken = \"{TOKEN}\"\n",
                    state = quote(instance.dir.join("state").to_str().unwrap()),
                    database = quote(&database),
                    secret = quote(secret.expose()),
                    sftp = instance.sftp,
                    admin = instance.admin,
                );
                std::fs::write(instance.config(), config).unwrap();
                instance
            })
            .collect();
        // All three at once: one makes the host keys, the schema and the cluster id.
        std::thread::scope(|s| {
            for instance in &mut instances {
                s.spawn(|| instance.start());
            }
        });
        let port = free_port();
        let mut servers = String::new();
        for (i, instance) in instances.iter().enumerate() {
            servers += &format!(
                "    server s{} 127.0.0.1:{} send-proxy-v2 check check-send-proxy inter 300ms fall 1 rise 2\n",
                i + 1,
                instance.sftp
            );
        }
        let config = format!(
            "global\n    maxconn 500\n\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 120s\n    timeout server 120s\n\
             \x20   retries 3\n    option redispatch\n\n\
             frontend sftp\n    bind 127.0.0.1:{port}\n    default_backend spgate\n\n\
             backend spgate\n    balance roundrobin\n{servers}"
        );
        let haproxy_cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&haproxy_cfg, config).unwrap();
        let haproxy = Command::new(haproxy_bin())
            .arg("-db")
            .arg("-f")
            .arg(&haproxy_cfg)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("haproxy.log")).unwrap())
            .spawn()
            .expect("start haproxy");
        let cluster = Cluster {
            ctx,
            dir,
            instances,
            haproxy,
            port,
            shared,
            key,
            public_key,
        };
        until(Duration::from_secs(30), "HAProxy accepts", || async {
            std::net::TcpStream::connect(("127.0.0.1", cluster.port))
                .ok()
                .map(drop)
        })
        .await;
        cluster
    }

    fn instance(&self, n: usize) -> &Instance {
        &self.instances[n - 1]
    }

    /// `sftp -b BATCH` through HAProxy as `user`, checking the host key against `known_hosts`
    /// (`learn`: the first login, which writes it).
    fn sftp(&self, user: &str, known_hosts: &Path, learn: bool, batch: &str) -> (bool, String) {
        let batch_file = self.dir.path().join("batch");
        std::fs::write(&batch_file, batch).unwrap();
        let strict = if learn { "accept-new" } else { "yes" };
        let out = Command::new("sftp")
            .args(["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"])
            .args([
                "-o",
                "PreferredAuthentications=publickey",
                "-o",
                "LogLevel=ERROR",
            ])
            .args(["-o", "ConnectTimeout=30"])
            .arg("-o")
            .arg(format!("StrictHostKeyChecking={strict}"))
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .arg("-i")
            .arg(&self.key)
            .arg("-P")
            .arg(self.port.to_string())
            .arg("-b")
            .arg(&batch_file)
            .arg(format!("{user}@127.0.0.1"))
            .stdin(Stdio::null())
            .output()
            .expect("run sftp");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }

    /// The run lock holder of `job`, by instance number, from instance `via`'s API.
    async fn holder(&self, via: usize, job: &str) -> Option<usize> {
        let (status, body) = self.instance(via).api("GET", "/api/v1/cluster", None).await;
        if status != 200 {
            return None;
        }
        let instances = body["instances"].as_array()?;
        let held = instances.iter().find(|i| {
            i["jobs"]
                .as_array()
                .is_some_and(|jobs| jobs.iter().any(|j| j == job))
        })?;
        let id = held["id"].as_str()?;
        (1..=INSTANCES).find(|&n| {
            std::fs::read_to_string(self.instance(n).dir.join("state/state.id"))
                .is_ok_and(|own| own.trim() == id)
        })
    }

    /// Every file under `folder` in SharePoint (through the simulator): path -> quickXorHash.
    async fn remote_hashes(&self, folder: &str) -> BTreeMap<String, String> {
        let mut found = BTreeMap::new();
        let mut pending = vec![folder.trim_start_matches('/').to_string()];
        while let Some(path) = pending.pop() {
            for item in self.ctx.list_all(&self.ctx.p(&path, "/children")).await {
                let name = item["name"].as_str().unwrap();
                let child = format!("{path}/{name}");
                if item.get("folder").is_some() {
                    pending.push(child);
                } else {
                    let hash = item["file"]["hashes"]["quickXorHash"]
                        .as_str()
                        .unwrap_or_default();
                    found.insert(child, hash.to_string());
                }
            }
        }
        found
    }
}

fn haproxy_bin() -> PathBuf {
    ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("HAProxy is not installed (Debian's haproxy package; .ci/run installs it)")
}

/// Python: paramiko through a PROXY v1 header straight to one instance's SFTP port (argv[1]):
/// logs in as argv[2]/argv[3] and downloads argv[4]; prints `ok` or the error.
const DOWNLOAD_DIRECT: &str = r#"
import socket, sys, paramiko
port = int(sys.argv[1])
sock = socket.create_connection(("127.0.0.1", port), timeout=30)
sock.sendall(f"PROXY TCP4 127.0.0.1 127.0.0.1 40000 {port}\r\n".encode())
t = paramiko.Transport(sock)
t.connect(username=sys.argv[2], password=sys.argv[3])
sftp = paramiko.SFTPClient.from_transport(t)
try:
    with sftp.open(sys.argv[4], "rb") as f:
        f.read()
    print("ok", flush=True)
except Exception as e:
    print("failed:", e, flush=True)
t.close()
"#;

/// Python: argv[3] clients upload through HAProxy (port argv[1], user argv[2], password argv[4])
/// in a loop into /roll (one file each 0.2 s) until the file argv[5] exists; each records every upload it started
/// (name and the quickXorHash of its content are not needed: the content is derived from the
/// name) and whether the server reported it done. Prints a JSON report at the end.
const ROLLING_CLIENTS: &str = r#"
import json, os, sys, threading, time, hashlib, paramiko
port, user, clients, password, stop = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
report = {"done": [], "failed": 0, "connects": 0}
lock = threading.Lock()
def content(name):
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (1 + (seed[0] * 400) // 32))[: 2000 + seed[1] * 300]
def client(i):
    n = 0
    while not os.path.exists(stop):
        try:
            t = paramiko.Transport(("127.0.0.1", port))
            t.banner_timeout = 30
            t.connect(username=user, password=password)
            sftp = paramiko.SFTPClient.from_transport(t)
            with lock:
                report["connects"] += 1
            while not os.path.exists(stop):
                name = f"c{i:02d}-{n:05d}.bin"
                n += 1
                with sftp.open("/roll/" + name, "wb") as f:
                    f.write(content(name))
                with lock:
                    report["done"].append(name)
                time.sleep(0.2)
            t.close()
        except Exception:
            with lock:
                report["failed"] += 1
            time.sleep(0.2)
threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(report), flush=True)
"#;

/// The content the rolling clients upload under `name` (as ROLLING_CLIENTS computes it).
fn rolling_content(name: &str) -> Vec<u8> {
    use sha2::Digest;
    let seed: Vec<u8> = sha2::Sha256::digest(name.as_bytes()).to_vec();
    let repeat = 1 + (seed[0] as usize * 400) / 32;
    let len = 2000 + seed[1] as usize * 300;
    seed.repeat(repeat).into_iter().take(len).collect()
}

fn python(script: &str, args: &[String]) -> std::process::Child {
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_behind_haproxy_share_one_postgresql_store() {
    let mut cluster = Cluster::start().await;
    let sim = cluster.ctx.sim.base.clone();

    // The connection and a user, made through instance 1's API.
    let connection = json!({
        "name": "sp", "tenant": "contoso", "client_id": "spgate-demo", "client_secret": "demo-secret",
        "authority": sim, "graph_url": sim, "site": "https://contoso.sharepoint.com/sites/partners",
    });
    let (status, body) = cluster
        .instance(1)
        .api("POST", "/api/v1/connections", Some(connection.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    let user = json!({
        "name": "alice", "password": "alice-pw", "authorized_keys": [cluster.public_key],
        "mounts": [{"path": "/", "connection": "sp", "remote": "/", "permissions": "*"}],
    });
    let made = Instant::now();
    let (status, body) = cluster
        .instance(1)
        .api("POST", "/api/v1/users", Some(user))
        .await;
    assert_eq!(status, 201, "{body}");
    // In force on every instance within 2 s.
    for n in 2..=INSTANCES {
        until(
            Duration::from_secs(2),
            "the user in force everywhere",
            || async {
                let (_, body) = cluster
                    .instance(n)
                    .api("GET", "/api/v1/users/alice", None)
                    .await;
                (body["in_force"] == true).then_some(())
            },
        )
        .await;
    }
    eprintln!(
        "propagation: a user made on instance 1 was in force on all instances after {} ms",
        made.elapsed().as_millis()
    );

    // 30 logins through HAProxy, round robin over the three: one host key.
    let known_hosts = cluster.dir.path().join("known_hosts");
    for login in 0..30 {
        let (ok, output) = cluster.sftp("alice", &known_hosts, login == 0, "ls /\n");
        assert!(ok, "login {login}: {output}");
    }
    assert_eq!(
        std::fs::read_to_string(&known_hosts)
            .unwrap()
            .lines()
            .count(),
        1,
        "one host key learned"
    );
    for n in 1..=INSTANCES {
        let log = std::fs::read_to_string(cluster.instance(n).dir.join("spgate.log")).unwrap();
        assert!(
            log.contains("login accepted"),
            "instance {n} served none of the logins"
        );
    }
    let status = cluster.instance(2).cli(&["cluster", "status"]);
    assert_eq!(status.matches("\tup\t").count(), INSTANCES, "{status}");
    // The same in the API and on the status page of another instance.
    let (_, body) = cluster
        .instance(3)
        .api("GET", "/api/v1/cluster", None)
        .await;
    let instances = body["instances"].as_array().cloned().unwrap_or_default();
    assert_eq!(instances.len(), INSTANCES, "{body}");
    assert!(instances.iter().all(|i| i["status"] == "up"), "{body}");
    let page = reqwest::Client::new()
        .get(cluster.instance(3).url("/"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<h2>Instances</h2>"), "{page}");
    assert_eq!(
        page.matches("<td class=\"ok\">up</td>").count(),
        INSTANCES,
        "{page}"
    );

    sync_job_is_taken_over(&mut cluster).await;
    revoked_app_disables_everywhere(&cluster, &connection).await;
    rolling_restart_loses_no_upload(&mut cluster).await;
    device_code_refreshes_once_for_the_cluster(&cluster).await;
}

/// A push job of 2,000 files: runs on one instance; killed in the middle, taken over.
async fn sync_job_is_taken_over(cluster: &mut Cluster) {
    let outbox = cluster.shared.join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    let mut expected = BTreeMap::new();
    for i in 0..2000 {
        let name = format!("d{:02}/f{i:04}.txt", i % 20);
        let content = format!("file {i} of the bulk job\n").repeat(1 + i % 7);
        let path = outbox.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &content).unwrap();
        expected.insert(format!("Bulk/{name}"), qxh(content.as_bytes()));
    }
    // SharePoint far enough away that the job takes a while.
    cluster.ctx.sim.faults(json!({"latency_ms": 15})).await;
    let uploads_before = cluster.ctx.sim.stats().await["by_kind"]["simple_upload"]
        .as_u64()
        .unwrap();
    let job = json!({
        "name": "bulk", "local": outbox.to_str().unwrap(), "connection": "sp",
        "remote": "/Bulk", "direction": "push", "interval": "1h",
    });
    let (status, body) = cluster
        .instance(1)
        .api("POST", "/api/v1/syncs", Some(job))
        .await;
    assert_eq!(status, 201, "{body}");
    let holder = until(Duration::from_secs(20), "a holder of the job", || {
        cluster.holder(1, "bulk")
    })
    .await;
    until(Duration::from_secs(120), "some files uploaded", || async {
        let uploads = cluster.ctx.sim.stats().await["by_kind"]["simple_upload"]
            .as_u64()
            .unwrap_or(0);
        (uploads >= 300).then_some(())
    })
    .await;
    // Exactly one instance runs it: the others found it locked and started no run.
    let (_, body) = cluster
        .instance(1)
        .api("GET", "/api/v1/syncs/bulk/runs", None)
        .await;
    let runs = body["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 1, "{body}");
    let survivor = if holder == 1 { 2 } else { 1 };
    // SIGKILL: no hand-over, the lock's heartbeat just stops.
    let mut killed = cluster.instances[holder - 1].signal(libc::SIGKILL);
    killed.wait().unwrap();
    let killed_at = Instant::now();
    let taker = until(
        Duration::from_secs(15),
        "another instance takes the job",
        || async {
            cluster
                .holder(survivor, "bulk")
                .await
                .filter(|&n| n != holder)
        },
    )
    .await;
    let takeover = killed_at.elapsed();
    eprintln!(
        "takeover: instance {taker} took the job over {} ms after instance {holder} was killed",
        takeover.as_millis()
    );
    assert!(takeover <= Duration::from_secs(10), "{takeover:?}");
    cluster.ctx.sim.faults(json!({"latency_ms": 0})).await;
    // The run ends, successfully, on the taker.
    until(
        Duration::from_secs(180),
        "the job's run succeeds",
        || async {
            let (_, body) = cluster
                .instance(taker)
                .api("GET", "/api/v1/syncs/bulk/runs", None)
                .await;
            body["runs"]
                .as_array()
                .and_then(|runs| runs.iter().any(|r| r["outcome"] == "success").then_some(()))
        },
    )
    .await;
    let found = cluster.remote_hashes("/Bulk").await;
    let missing: Vec<_> = expected
        .keys()
        .filter(|k| !found.contains_key(*k))
        .collect();
    let extra: Vec<_> = found
        .keys()
        .filter(|k| !expected.contains_key(*k))
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra (duplicates, conflict copies) {extra:?}"
    );
    assert_eq!(found, expected, "every file's content");
    // No file sent twice: the taker went on from the stored state (a file whose upload ended
    // just as its instance died is found in SharePoint with the same hash, not sent again;
    // only uploads cut off in flight, at most one per transfer slot, are sent again).
    let sent = cluster.ctx.sim.stats().await["by_kind"]["simple_upload"]
        .as_u64()
        .unwrap()
        - uploads_before;
    eprintln!("takeover: {sent} uploads for 2000 files");
    assert!(
        sent <= 2000 + spgate::sync::run::PARALLEL as u64,
        "{sent} uploads for 2000 files"
    );
    // The killed instance comes back for the next scenarios; it runs the job at its start
    // (nothing to do).
    cluster.instances[holder - 1].start();
    until(
        Duration::from_secs(30),
        "the restarted instance's run",
        || async {
            let (_, body) = cluster
                .instance(taker)
                .api("GET", "/api/v1/syncs/bulk/runs", None)
                .await;
            let runs = body["runs"].as_array()?;
            (runs.len() == 3 && runs.iter().filter(|r| r["outcome"] == "success").count() == 2)
                .then_some(())
        },
    )
    .await;

    // SIGTERM in the middle of a run: the instance hands the job over as it stops, and another
    // goes on with it at once.
    for i in 0..800 {
        let name = format!("more/g{i:04}.txt");
        let content = format!("second batch, file {i}\n");
        let path = outbox.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &content).unwrap();
        expected.insert(format!("Bulk/{name}"), qxh(content.as_bytes()));
    }
    cluster.ctx.sim.faults(json!({"latency_ms": 30})).await;
    let before = cluster.ctx.sim.stats().await["by_kind"]["simple_upload"]
        .as_u64()
        .unwrap();
    let (status, body) = cluster
        .instance(taker)
        .api("POST", "/api/v1/syncs/bulk/run", None)
        .await;
    assert_eq!(status, 202, "{body}");
    until(
        Duration::from_secs(60),
        "the second batch under way",
        || async {
            let uploads = cluster.ctx.sim.stats().await["by_kind"]["simple_upload"]
                .as_u64()
                .unwrap_or(0);
            (uploads >= before + 100).then_some(())
        },
    )
    .await;
    let running = cluster
        .holder(taker, "bulk")
        .await
        .expect("a holder of the second run");
    let other = (1..=INSTANCES).find(|&n| n != running).unwrap();
    let stopping = Instant::now();
    let mut stopped = cluster.instances[running - 1].signal(libc::SIGTERM);
    let next = until(Duration::from_secs(15), "the job handed over", || async {
        cluster
            .holder(other, "bulk")
            .await
            .filter(|&n| n != running)
    })
    .await;
    let handed = stopping.elapsed();
    assert!(stopped.wait().unwrap().success());
    eprintln!(
        "hand-over: instance {next} held the job {} ms after instance {running} got SIGTERM",
        handed.as_millis()
    );
    assert!(handed < Duration::from_secs(5), "{handed:?}");
    cluster.ctx.sim.faults(json!({"latency_ms": 0})).await;
    until(
        Duration::from_secs(120),
        "the handed-over run succeeds",
        || async {
            let (_, body) = cluster
                .instance(next)
                .api("GET", "/api/v1/syncs/bulk/runs", None)
                .await;
            let runs = body["runs"].as_array()?;
            (runs.first()?["outcome"] == "success").then_some(())
        },
    )
    .await;
    assert_eq!(cluster.remote_hashes("/Bulk").await, expected);
    cluster.instances[running - 1].start();
}

/// Revoking the app while instance 2 serves a transfer: disabled on all three, one alert;
/// re-saved through instance 3: enabled everywhere.
async fn revoked_app_disables_everywhere(cluster: &Cluster, connection: &Value) {
    cluster.ctx.put("report.csv", b"id,total\n1,99\n").await;
    cluster
        .ctx
        .sim
        .control("/apps/spgate-demo/revoke", json!({}))
        .await;
    cluster.ctx.sim.control("/tokens/expire", json!({})).await;
    let out = python(
        DOWNLOAD_DIRECT,
        &[
            cluster.instance(2).sftp.to_string(),
            "alice".into(),
            "alice-pw".into(),
            "/report.csv".into(),
        ],
    )
    .wait_with_output()
    .unwrap();
    let said =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("failed"), "the transfer failed: {said}");
    for n in 1..=INSTANCES {
        let instance = cluster.instance(n);
        until(
            Duration::from_secs(5),
            "the connection disabled everywhere",
            || async {
                let (status, text) = instance.ready().await;
                (status == 503 && text.contains("sp")).then_some(())
            },
        )
        .await;
        let (_, body) = instance.api("GET", "/api/v1/alerts", None).await;
        let alerts = body["alerts"].as_array().cloned().unwrap_or_default();
        assert_eq!(alerts.len(), 1, "instance {n}: {body}");
        assert_eq!(alerts[0]["connection"], "sp", "{body}");
        let listed = instance.cli(&["connections"]);
        assert!(listed.contains("disabled"), "instance {n}: {listed}");
    }
    cluster
        .ctx
        .sim
        .control("/apps/spgate-demo/restore", json!({}))
        .await;
    // Saved again, unchanged, through instance 3.
    let (status, body) = cluster
        .instance(3)
        .api("PUT", "/api/v1/connections/sp", Some(connection.clone()))
        .await;
    assert_eq!(status, 200, "{body}");
    for n in 1..=INSTANCES {
        let instance = cluster.instance(n);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (status, text) = instance.ready().await;
            if status == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "instance {n} not ready 5 s after the connection was saved: {status} {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (_, body) = instance.api("GET", "/api/v1/alerts", None).await;
        assert_eq!(body["alerts"], json!([]), "instance {n}");
    }
}

/// 20 clients upload through HAProxy in a loop while each instance in turn gets SIGTERM and
/// starts again: every upload reported as done is in SharePoint with its content, and every
/// file there is whole.
async fn rolling_restart_loses_no_upload(cluster: &mut Cluster) {
    let stop = cluster.dir.path().join("stop-clients");
    // The test's own token was expired with the others.
    cluster.ctx.token = cluster.ctx.sim.app_token().await;
    cluster.ctx.mkdirs("roll").await;
    let clients = python(
        ROLLING_CLIENTS,
        &[
            cluster.port.to_string(),
            "alice".into(),
            "20".into(),
            "alice-pw".into(),
            stop.to_str().unwrap().into(),
        ],
    );
    let uploads = || async {
        cluster.ctx.sim.stats().await["by_kind"]["simple_upload"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = uploads().await;
    until(Duration::from_secs(60), "the clients upload", || async {
        (uploads().await >= before + 40).then_some(())
    })
    .await;
    for n in 1..=INSTANCES {
        let mut child = cluster.instances[n - 1].signal(libc::SIGTERM);
        let stopping = Instant::now();
        let status = child.wait().unwrap();
        let stopped = stopping.elapsed();
        assert!(status.success(), "instance {n} stopped with {status}");
        eprintln!(
            "rolling restart: instance {n} stopped {} ms after SIGTERM",
            stopped.as_millis()
        );
        // Connections uploading file after file are let go after the file under way (new
        // transfers are refused), not at the end of the 30 s grace time.
        assert!(stopped < Duration::from_secs(20), "{stopped:?}");
        cluster.instances[n - 1].start();
        let instance = cluster.instance(n);
        until(
            Duration::from_secs(30),
            "the instance ready again",
            || async { (instance.ready().await.0 == 200).then_some(()) },
        )
        .await;
        let at = uploads().await;
        until(Duration::from_secs(60), "uploads go on", || async {
            (uploads().await >= at + 20).then_some(())
        })
        .await;
    }
    std::fs::write(&stop, b"").unwrap();
    let out = clients.wait_with_output().unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "the clients' report: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let done: Vec<String> = report["done"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    eprintln!(
        "rolling restart: {} uploads reported done, {} client errors, {} connections",
        done.len(),
        report["failed"],
        report["connects"]
    );
    assert!(done.len() >= 50, "{report}");
    // Queued uploads reach SharePoint from each instance's queue.
    let expected: HashMap<String, String> = done
        .iter()
        .map(|name| (format!("roll/{name}"), qxh(&rolling_content(name))))
        .collect();
    let found = until(
        Duration::from_secs(120),
        "every upload reported done is stored",
        || async {
            let found = cluster.remote_hashes("/roll").await;
            expected
                .keys()
                .all(|k| found.contains_key(k))
                .then_some(found)
        },
    )
    .await;
    for (path, hash) in &found {
        let name = path.trim_start_matches("roll/");
        assert!(
            name.starts_with('c') && name.ends_with(".bin"),
            "an unexpected file: {path}"
        );
        assert_eq!(
            hash,
            &qxh(&rolling_content(name)),
            "{path} is not whole (a partial upload is visible)"
        );
    }
}

/// Python: argv[4] sessions through HAProxy (port argv[1]) as argv[2]/argv[3], logged in
/// first (prints `ready`), then, at a line on stdin, argv[5] stats each of names that do not
/// exist, all sessions at once: prints a JSON report ({"ok": N, "other": [...]}).
const STAT_BURST: &str = r#"
import json, sys, threading, paramiko
port, user, password, sessions, per = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
clients = []
for i in range(sessions):
    t = paramiko.Transport(("127.0.0.1", port))
    t.connect(username=user, password=password)
    clients.append((t, paramiko.SFTPClient.from_transport(t)))
print("ready", flush=True)
sys.stdin.readline()
results, lock = [], threading.Lock()
def work(i, sftp):
    for k in range(per):
        try:
            sftp.stat(f"/absent-{i}-{k}")
            r = "exists"
        except FileNotFoundError:
            r = "ok"
        except Exception as e:
            r = f"error: {e}"
        with lock:
            results.append(r)
threads = [threading.Thread(target=work, args=(i, s)) for i, (t, s) in enumerate(clients)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps({"ok": results.count("ok"), "other": [r for r in results if r != "ok"]}), flush=True)
"#;

/// A device-code connection signed in once (`spgate connect` on instance 1) serves all three;
/// after Graph refuses the access token (expired), 100 requests at once across the instances
/// make one token request, and the refresh token saved then is the live one.
async fn device_code_refreshes_once_for_the_cluster(cluster: &Cluster) {
    use std::io::{BufRead, BufReader, Write};
    let sim = cluster.ctx.sim.base.clone();
    let connection = json!({
        "name": "dc", "tenant": "contoso", "client_id": "spgate-demo", "auth": "device_code",
        "authority": sim, "graph_url": sim, "site": "https://contoso.sharepoint.com/sites/partners",
    });
    let (status, body) = cluster
        .instance(1)
        .api("POST", "/api/v1/connections", Some(connection))
        .await;
    assert_eq!(status, 201, "{body}");
    let mut connect = Command::new(env!("CARGO_BIN_EXE_spgate"))
        .args(["connect", "dc", "--config"])
        .arg(cluster.instance(1).config())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(connect.stdout.take().unwrap()).lines();
    let code = loop {
        let line = lines
            .next()
            .expect("spgate connect printed no code")
            .unwrap();
        if let Some((_, code)) = line.split_once("enter the code ") {
            break code.trim().to_string();
        }
    };
    cluster
        .ctx
        .sim
        .control("/devicecode/approve", json!({ "user_code": code }))
        .await;
    let signed_in = connect.wait_with_output().unwrap();
    assert!(signed_in.status.success(), "{signed_in:?}");
    let user = json!({
        "name": "dave", "password": "dave-pw",
        "mounts": [{"path": "/", "connection": "dc", "remote": "/", "permissions": "*"}],
    });
    let (status, body) = cluster
        .instance(2)
        .api("POST", "/api/v1/users", Some(user))
        .await;
    assert_eq!(status, 201, "{body}");
    for n in 1..=INSTANCES {
        until(
            Duration::from_secs(5),
            "dave in force everywhere",
            || async {
                let (_, body) = cluster
                    .instance(n)
                    .api("GET", "/api/v1/users/dave", None)
                    .await;
                (body["in_force"] == true).then_some(())
            },
        )
        .await;
    }
    // 25 sessions through HAProxy: 8 or 9 on each instance.
    let mut burst = Command::new("python3")
        .arg("-c")
        .arg(STAT_BURST)
        .args([&cluster.port.to_string(), "dave", "dave-pw", "25", "4"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(burst.stdout.take().unwrap()).lines();
    let ready = out.next().expect("the sessions log in").unwrap();
    assert_eq!(ready, "ready");
    // Every token issued so far is refused from now on: the instances hold a token Graph
    // refuses, and the one saved with the sign-in too.
    cluster.ctx.sim.control("/tokens/expire", json!({})).await;
    let tokens = || async {
        cluster.ctx.sim.stats().await["by_kind"]["token"]
            .as_u64()
            .unwrap()
    };
    let before = tokens().await;
    writeln!(burst.stdin.as_mut().unwrap(), "go").unwrap();
    let report: Value = serde_json::from_str(&out.next().expect("a report").unwrap()).unwrap();
    let _ = burst.wait();
    assert_eq!(report["ok"], 100, "{report}");
    assert_eq!(
        tokens().await,
        before + 1,
        "one token request for 100 requests on three instances"
    );
    // No refresh token lost: the one saved last refreshes again.
    cluster.ctx.sim.control("/tokens/expire", json!({})).await;
    let out = python(
        DOWNLOAD_DIRECT,
        &[
            cluster.instance(3).sftp.to_string(),
            "dave".into(),
            "dave-pw".into(),
            "/report.csv".into(),
        ],
    )
    .wait_with_output()
    .unwrap();
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        said.trim(),
        "ok",
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
