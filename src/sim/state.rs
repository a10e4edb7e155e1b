//! The simulator's shared state: the world (tenants, their users, apps, sites, drives), issued
//! tokens, browser sign-ins, upload sessions, copy jobs, statistics and injected faults.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha1::Digest;

use super::Error;
use super::authorize::{self, SignIns};
use super::drive::{Blob, Conflict, Drive};
use super::error::{GraphError, GraphResult};
use super::link::{Bandwidth, Link, Network};
use super::seed::{self, Access, Seed};
use super::stats::Stats;
use super::upload::UploadState;

pub struct Sim {
    pub public_url: String,
    pub blob_dir: PathBuf,
    pub world: Mutex<World>,
    pub tokens: DashMap<String, AccessToken>,
    pub refresh_tokens: DashMap<String, Grant>,
    pub device_codes: DashMap<String, DeviceFlow>,
    /// Browser sign-ins: pending requests, browser sessions, consents, authorization codes.
    pub sign_ins: SignIns,
    pub sessions: DashMap<String, Arc<tokio::sync::Mutex<UploadState>>>,
    pub copies: DashMap<String, CopyJob>,
    pub stats: Stats,
    pub faults: Mutex<Faults>,
    /// The simulated distance; faults override parts of it.
    pub network: Arc<Network>,
    /// Access tokens issued before this generation are expired.
    pub token_generation: AtomicU64,
    /// Upload sessions created before this generation are expired.
    pub upload_generation: AtomicU64,
    /// Download URLs signed in an earlier generation are expired.
    pub download_generation: AtomicU64,
    pub sign_key: [u8; 32],
    pub token_lifetime: u64,
    pub device_interval: u64,
    next_blob: AtomicU64,
}

#[derive(Default)]
pub struct World {
    pub tenants: Vec<Tenant>,
    pub sites: Vec<Site>,
    pub drives: HashMap<String, Drive>,
}

pub struct Tenant {
    pub id: String,
    pub name: String,
    pub apps: Vec<App>,
    pub users: Vec<User>,
}

impl Tenant {
    /// The user whose principal name is `upn`, ignoring case.
    pub fn user(&self, upn: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name.eq_ignore_ascii_case(upn))
    }
}

pub struct App {
    pub client_id: String,
    pub secret: Option<String>,
    pub cert: Option<Cert>,
    pub access: Access,
    pub sites: Option<Vec<String>>,
    pub revoked: bool,
    /// Checked by `authorize::request::redirect_matches`.
    pub redirect_uris: Vec<String>,
}

impl App {
    /// A public client holds no credential of its own (no secret, no certificate).
    pub fn is_public(&self) -> bool {
        self.secret.is_none() && self.cert.is_none()
    }
}

/// A person who signs in in a browser.
pub struct User {
    /// Object id: the id token's `oid`.
    pub id: String,
    /// User principal name.
    pub name: String,
    pub display_name: String,
    pub password: String,
}

/// A registered certificate: its thumbprints and RSA public key.
#[derive(Clone)]
pub struct Cert {
    pub x5t: String,
    pub x5t_s256: String,
    pub rsa_public_der: Vec<u8>,
}

pub struct Site {
    pub id: String,
    pub tenant_id: String,
    pub hostname: String,
    pub name: String,
    pub drives: Vec<String>,
}

/// Who an access token was issued to.
#[derive(Debug, Clone)]
pub struct Caller {
    pub tenant_id: String,
    pub client_id: String,
    pub user: Option<String>,
    pub access: Access,
    pub sites: Option<Vec<String>>,
}

pub struct AccessToken {
    pub caller: Caller,
    pub expires: Instant,
    pub generation: u64,
}

/// What a refresh token stands for.
#[derive(Debug, Clone)]
pub struct Grant {
    pub tenant_id: String,
    pub client_id: String,
    pub user: String,
    /// The scopes granted by a browser sign-in; `None` for a device-code sign-in.
    pub scopes: Option<Vec<String>>,
}

pub struct DeviceFlow {
    pub user_code: String,
    pub tenant_id: String,
    pub client_id: String,
    pub expires: Instant,
    pub approved: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CopyJob {
    pub status: &'static str,
    pub percentage_complete: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<serde_json::Value>,
}

/// Injected faults (`POST /_sim/faults`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle_every: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_5xx_every: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_fragment_every: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrich_office: Option<bool>,
    /// Round-trip time in place of the command line's; 0 is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// Decimal MB/s per connection and direction in place of the command line's; 0 is unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_mb_s: Option<f64>,
}

impl Faults {
    pub fn merge(&mut self, other: Faults) {
        macro_rules! take {
            ($($f:ident),*) => { $( if other.$f.is_some() { self.$f = other.$f; } )* };
        }
        take!(
            throttle_every,
            retry_after_s,
            fail_5xx_every,
            drop_fragment_every,
            enrich_office,
            latency_ms,
            jitter_ms,
            bandwidth_mb_s
        );
    }

    /// `base` with the parts these faults set replaced.
    pub fn link(&self, base: Link) -> Result<Link, String> {
        let bandwidth = self.bandwidth_mb_s.map(Bandwidth::from_mb_s).transpose()?;
        Ok(base.with(
            self.latency_ms.map(Duration::from_millis),
            self.jitter_ms.map(Duration::from_millis),
            bandwidth,
        ))
    }
}

impl Sim {
    pub fn build(
        seed: &Seed,
        seed_dir: &Path,
        public_url: String,
        data_dir: &Path,
    ) -> Result<Sim, Error> {
        let blob_dir = data_dir.join("blobs");
        let _ = std::fs::remove_dir_all(&blob_dir);
        std::fs::create_dir_all(&blob_dir).map_err(|source| Error::Io {
            what: format!("creating {}", blob_dir.display()),
            source,
        })?;
        let sim = Sim {
            public_url,
            blob_dir,
            world: Mutex::new(World::default()),
            tokens: DashMap::new(),
            refresh_tokens: DashMap::new(),
            device_codes: DashMap::new(),
            sign_ins: SignIns::default(),
            sessions: DashMap::new(),
            copies: DashMap::new(),
            stats: Stats::default(),
            faults: Mutex::new(Faults::default()),
            network: Arc::new(Network::new(Link::default())),
            token_generation: AtomicU64::new(0),
            upload_generation: AtomicU64::new(0),
            download_generation: AtomicU64::new(0),
            sign_key: rand::random(),
            token_lifetime: seed.token_lifetime_secs,
            device_interval: seed.device_code_interval_secs,
            next_blob: AtomicU64::new(0),
        };
        for tenant in &seed.tenants {
            sim.add_tenant(tenant, seed_dir)?;
        }
        Ok(sim)
    }

    /// This simulator at the distance `link` (none by default).
    pub fn with_link(mut self, link: Link) -> Sim {
        self.network = Arc::new(Network::new(link));
        self
    }

    fn add_tenant(&self, seed: &seed::TenantSeed, seed_dir: &Path) -> Result<(), Error> {
        let tenant_id = seed
            .id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut apps = Vec::new();
        for app in &seed.apps {
            let cert = match app.certificate_pem(seed_dir)? {
                Some(pem) => Some(parse_cert(&pem).map_err(|e| {
                    Error::Seed(format!("certificate of app {}: {e}", app.client_id))
                })?),
                None => None,
            };
            for uri in &app.redirect_uris {
                authorize::check_redirect_uri(uri).map_err(|why| {
                    Error::Seed(format!(
                        "redirect URI {uri:?} of app {}: {why}",
                        app.client_id
                    ))
                })?;
            }
            apps.push(App {
                client_id: app.client_id.clone(),
                secret: app.secret.clone(),
                cert,
                access: app.access,
                sites: app.sites.clone(),
                revoked: false,
                redirect_uris: app.redirect_uris.clone(),
            });
        }
        let users = seed_users(&seed.users, &tenant_id, &seed.name)?;
        let mut world = self.world.lock();
        world.tenants.push(Tenant {
            id: tenant_id.clone(),
            name: seed.name.clone(),
            apps,
            users,
        });
        for site in &seed.sites {
            let site_id = format!(
                "{},{},{}",
                site.hostname,
                uuid::Uuid::new_v4(),
                uuid::Uuid::new_v4()
            );
            let mut drive_ids = Vec::new();
            for d in &site.drives {
                let url_name = d.url_name.clone().unwrap_or_else(|| {
                    if d.name == "Documents" {
                        "Shared Documents".into()
                    } else {
                        d.name.clone()
                    }
                });
                let mut drive =
                    Drive::new(&d.name, &url_name, &site_id, &site.name, &site.hostname);
                if let Some(quota) = d.quota_bytes {
                    drive.quota_total = quota;
                }
                self.seed_content(&mut drive, d)?;
                drive_ids.push(drive.id.clone());
                world.drives.insert(drive.id.clone(), drive);
            }
            world.sites.push(Site {
                id: site_id,
                tenant_id: tenant_id.clone(),
                hostname: site.hostname.clone(),
                name: site.name.clone(),
                drives: drive_ids,
            });
        }
        Ok(())
    }

    fn seed_content(&self, drive: &mut Drive, seed: &seed::DriveSeed) -> Result<(), Error> {
        let bad = |what: &str, e: GraphError| {
            Error::Seed(format!("drive {}: {what}: {}", seed.name, e.message))
        };
        let ensure_folder = |drive: &mut Drive, parts: &[&str]| -> Result<String, Error> {
            let mut folder = drive.root_id.clone();
            for part in parts {
                folder = match drive.child(&folder, part) {
                    Some(existing) => existing.id.clone(),
                    None => drive
                        .create_folder(&folder, part, Conflict::Fail)
                        .map_err(|e| bad(part, e))?,
                };
            }
            Ok(folder)
        };
        for path in &seed.folders {
            let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
            ensure_folder(drive, &parts)?;
        }
        for file in &seed.files {
            let parts: Vec<&str> = file.path.split('/').filter(|p| !p.is_empty()).collect();
            let Some((name, parents)) = parts.split_last() else {
                return Err(Error::Seed(format!(
                    "file with empty path in drive {}",
                    seed.name
                )));
            };
            let folder = ensure_folder(drive, parents)?;
            let bytes = match (&file.content, file.size) {
                (Some(text), _) => text.clone().into_bytes(),
                (None, Some(size)) => seed::pattern(size),
                (None, None) => Vec::new(),
            };
            let blob = self.write_blob(&bytes)?;
            drive
                .put_file(&folder, name, blob, Conflict::Fail, None)
                .map_err(|e| bad(&file.path, e))?;
        }
        Ok(())
    }

    /// A fresh path for content in the blob directory.
    pub fn blob_path(&self) -> PathBuf {
        let n = self.next_blob.fetch_add(1, Ordering::Relaxed);
        self.blob_dir
            .join(format!("{n:010}-{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn write_blob(&self, bytes: &[u8]) -> Result<Arc<Blob>, Error> {
        let path = self.blob_path();
        std::fs::write(&path, bytes).map_err(|source| Error::Io {
            what: format!("writing {}", path.display()),
            source,
        })?;
        Ok(Arc::new(Blob {
            path,
            len: bytes.len() as u64,
            hash: crate::wire::quick_xor_hash(bytes),
        }))
    }

    /// Checks that `caller` may see `drive_id` (same tenant, Sites.Selected) and, when
    /// `write`, change it.
    pub fn authorize(
        &self,
        world: &World,
        caller: &Caller,
        drive_id: &str,
        write: bool,
    ) -> GraphResult<()> {
        let drive = world
            .drives
            .get(drive_id)
            .ok_or_else(GraphError::not_found)?;
        let site = world
            .sites
            .iter()
            .find(|s| s.id == drive.site_id)
            .ok_or_else(GraphError::not_found)?;
        self.authorize_site(caller, site)?;
        if write && caller.access == Access::Read {
            return Err(GraphError::access_denied());
        }
        Ok(())
    }

    pub fn authorize_site(&self, caller: &Caller, site: &Site) -> GraphResult<()> {
        if site.tenant_id != caller.tenant_id {
            return Err(GraphError::not_found());
        }
        if let Some(allowed) = &caller.sites
            && !allowed.iter().any(|s| s.eq_ignore_ascii_case(&site.name))
        {
            return Err(GraphError::access_denied());
        }
        Ok(())
    }

    pub fn is_token_live(&self, token: &AccessToken) -> bool {
        token.expires > Instant::now()
            && token.generation >= self.token_generation.load(Ordering::Relaxed)
    }

    /// Signs a download URL for an item: `exp.sig` (the signature covers the download
    /// generation, so `/_sim/downloads/expire` expires every URL handed out before).
    pub fn tempauth(&self, drive_id: &str, item_id: &str, expires: i64) -> String {
        use hmac::Mac;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.sign_key).expect("any key length");
        let generation = self.download_generation.load(Ordering::Relaxed);
        mac.update(format!("{drive_id}|{item_id}|{expires}|{generation}").as_bytes());
        let sig = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            mac.finalize().into_bytes(),
        );
        format!("{expires}.{sig}")
    }

    pub fn throttle_error(&self, seconds: u64) -> GraphError {
        GraphError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "activityLimitReached",
            "The request has been throttled",
        )
        .inner("throttledRequest")
        .retry_after(seconds)
    }
}

/// The users of a tenant's seed, checked: a principal name has an `@` and appears once.
fn seed_users(seeds: &[seed::UserSeed], tenant_id: &str, tenant: &str) -> Result<Vec<User>, Error> {
    let mut users: Vec<User> = Vec::new();
    for seed in seeds {
        let Some((local, _)) = seed
            .name
            .split_once('@')
            .filter(|(l, d)| !l.is_empty() && !d.is_empty())
        else {
            return Err(Error::Seed(format!(
                "user {:?} of tenant {tenant}: a user principal name looks like name@domain",
                seed.name
            )));
        };
        if users
            .iter()
            .any(|u| u.name.eq_ignore_ascii_case(&seed.name))
        {
            return Err(Error::Seed(format!(
                "user {} appears twice in tenant {tenant}",
                seed.name
            )));
        }
        users.push(User {
            id: seed
                .id
                .clone()
                .unwrap_or_else(|| user_object_id(tenant_id, &seed.name)),
            name: seed.name.clone(),
            display_name: seed
                .display_name
                .clone()
                .unwrap_or_else(|| local.to_string()),
            password: seed.password.clone(),
        });
    }
    Ok(users)
}

/// A stable object id for a user without one: a GUID made of the SHA-256 of tenant and name.
pub fn user_object_id(tenant_id: &str, upn: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{tenant_id}|{}", upn.to_ascii_lowercase()));
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

pub fn parse_cert(pem_text: &str) -> Result<Cert, String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem_text.as_bytes()).map_err(|e| e.to_string())?;
    let cert = pem.parse_x509().map_err(|e| e.to_string())?;
    let rsa_public_der = cert
        .tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .to_vec();
    let b64 = |bytes: &[u8]| {
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
    };
    Ok(Cert {
        x5t: b64(&sha1::Sha1::digest(&pem.contents)),
        x5t_s256: b64(&sha2::Sha256::digest(&pem.contents)),
        rsa_public_der,
    })
}
