//! Receivers for the notification suite: a webhook receiver (axum on port 0) that records every
//! request and answers from a script, and the SMTP sink `tests/smtp_sink.py` (aiosmtpd on port
//! 0) whose messages the test reads from a directory; plus waiting for a count with a deadline.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Hook {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// Whether `X-Spgate-Signature` is the HMAC-SHA256 of the body keyed with `secret`
    /// (computed here, independently of spgate).
    pub fn signed_with(&self, secret: &str) -> bool {
        use hmac::Mac;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(&self.body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        self.header("x-spgate-signature") == format!("sha256={hex}")
    }
}

#[derive(Default)]
struct Book {
    got: Mutex<Vec<Hook>>,
    /// Statuses to answer first, in order; then 200.
    script: Mutex<VecDeque<u16>>,
}

/// A webhook receiver on 127.0.0.1:0, stopped when dropped.
pub struct Receiver {
    pub url: String,
    book: Arc<Book>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Answers `script`'s statuses to the first requests, then 200.
    pub async fn start(script: &[u16]) -> Receiver {
        let book = Arc::new(Book::default());
        book.script.lock().unwrap().extend(script);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state(book.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver { url, book, server }
    }

    pub fn got(&self) -> Vec<Hook> {
        self.book.got.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn record(State(book): State<Arc<Book>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    book.got.lock().unwrap().push(Hook { headers, body });
    let status = book.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// `tests/smtp_sink.py` running: its address, the certificate it offers with STARTTLS, and
/// the messages it received.
pub struct Sink {
    pub port: u16,
    /// The sink's self-signed certificate for 127.0.0.1 (PEM file), to trust as its CA.
    pub ca: PathBuf,
    dir: tempfile::TempDir,
    child: Child,
}

impl Sink {
    /// Starts the sink, requiring STARTTLS with a certificate of its own and then accepting
    /// only `login` (`user:password`). Fails the test, saying how to install it, when Python's
    /// aiosmtpd is missing.
    pub fn start(login: &str) -> Sink {
        let dir = tempfile::tempdir().unwrap();
        let issued = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let (ca, key) = (dir.path().join("sink.crt"), dir.path().join("sink.key"));
        std::fs::write(&ca, issued.cert.pem()).unwrap();
        std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(dir.path())
            .arg(login)
            .arg(&ca)
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs tests/smtp_sink.py");
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let Some((_, address)) = line.trim().split_once(" listening on ") else {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err);
            panic!(
                "the SMTP sink did not start (is aiosmtpd installed? python3 -m pip install aiosmtpd): {err}"
            );
        };
        let port = address.rsplit(':').next().unwrap().parse().unwrap();
        Sink {
            port,
            ca,
            dir,
            child,
        }
    }

    /// The messages received so far, oldest first, as text.
    pub fn mails(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of header `name` in `mail` (its first line).
pub fn mail_header<'a>(mail: &'a str, name: &str) -> &'a str {
    let prefix = format!("{}:", name.to_ascii_lowercase());
    mail.lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
        .map(|l| l[prefix.len()..].trim())
        .unwrap_or_default()
}

/// Polls `count` until it reaches `want` (panicking with `what` after 30 s).
pub async fn wait_for<F: Future<Output = usize>>(what: &str, want: usize, count: impl Fn() -> F) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = count().await;
        if now >= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {now} after 30 s, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
