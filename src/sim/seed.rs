//! The simulator's seed: tenants, their users, app registrations, sites, drives and initial
//! content, read from TOML (`--seed FILE`) or the built-in default world.
//!
//! Users and redirect URIs serve the browser sign-in (`/oauth2/v2.0/authorize`, see
//! `super::authorize`); every key they add is optional, so older seeds stay valid.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default = "default_token_lifetime")]
    pub token_lifetime_secs: u64,
    #[serde(default = "default_device_interval")]
    pub device_code_interval_secs: u64,
    #[serde(default)]
    pub tenants: Vec<TenantSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSeed {
    pub name: String,
    pub id: Option<String>,
    #[serde(default)]
    pub apps: Vec<AppSeed>,
    #[serde(default)]
    pub sites: Vec<SiteSeed>,
    /// The people who can sign in in a browser (`[[tenants.users]]`).
    #[serde(default)]
    pub users: Vec<UserSeed>,
}

/// A user of the tenant, for the browser sign-in.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSeed {
    /// The user principal name, e.g. `adele@contoso.onmicrosoft.com` (matched ignoring case).
    pub name: String,
    /// Shown on the account picker and as the id token's `name`; default: `name` up to the `@`.
    pub display_name: Option<String>,
    /// The password the sign-in form checks; default `password`.
    #[serde(default = "default_password")]
    pub password: String,
    /// The object id (the id token's `oid`); default: derived from the tenant id and `name`,
    /// the same on every run.
    pub id: Option<String>,
}

impl std::fmt::Debug for UserSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserSeed")
            .field("name", &self.name)
            .field("display_name", &self.display_name)
            .field("password", &"***")
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSeed {
    pub client_id: String,
    pub secret: Option<String>,
    /// A PEM certificate: a path, or the PEM text itself.
    pub certificate: Option<String>,
    #[serde(default)]
    pub access: Access,
    /// Sites.Selected: the only site names this app may see.
    pub sites: Option<Vec<String>>,
    /// Where the browser sign-in may send its answer. `https://...`, or `http://` to a loopback
    /// host (`localhost`, `127.0.0.1`, `[::1]`) whose port is ignored when matching, as Entra
    /// does; other schemes (`myapp://auth`) are taken as given. An app without a secret or a
    /// certificate is a public client: its sign-ins must carry a PKCE `code_challenge`.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

impl std::fmt::Debug for AppSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSeed")
            .field("client_id", &self.client_id)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("access", &self.access)
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Read,
    #[default]
    Write,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSeed {
    pub hostname: String,
    pub name: String,
    #[serde(default)]
    pub drives: Vec<DriveSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSeed {
    pub name: String,
    pub url_name: Option<String>,
    pub quota_bytes: Option<u64>,
    #[serde(default)]
    pub folders: Vec<String>,
    #[serde(default)]
    pub files: Vec<FileSeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSeed {
    pub path: String,
    pub content: Option<String>,
    pub size: Option<u64>,
}

fn default_token_lifetime() -> u64 {
    3599
}

fn default_device_interval() -> u64 {
    5
}

fn default_password() -> String {
    "password".into()
}

impl Seed {
    pub fn load(path: &Path) -> Result<Seed, super::Error> {
        let text = std::fs::read_to_string(path).map_err(|source| super::Error::Io {
            what: format!("reading seed {}", path.display()),
            source,
        })?;
        toml::from_str(&text).map_err(|e| super::Error::Seed(format!("{}: {e}", path.display())))
    }

    /// Tenant `contoso`, app `spgate-demo` / `demo-secret` (redirect URIs
    /// `http://localhost/console/oauth/callback` and `http://127.0.0.1/console/oauth/callback`),
    /// users `partner.admin@contoso.onmicrosoft.com` and `svc.spgate@contoso.onmicrosoft.com`
    /// (password `demo-password`), site `contoso.sharepoint.com:/sites/partners` with drive
    /// `Documents`.
    pub fn demo() -> Seed {
        let user = |name: &str, display_name: &str| UserSeed {
            name: name.into(),
            display_name: Some(display_name.into()),
            password: "demo-password".into(),
            id: None,
        };
        Seed {
            token_lifetime_secs: default_token_lifetime(),
            device_code_interval_secs: default_device_interval(),
            tenants: vec![TenantSeed {
                name: "contoso".into(),
                id: None,
                apps: vec![AppSeed {
                    client_id: "spgate-demo".into(),
                    secret: Some("demo-secret".into()),
                    certificate: None,
                    access: Access::Write,
                    sites: None,
                    redirect_uris: vec![
                        "http://localhost/console/oauth/callback".into(),
                        "http://127.0.0.1/console/oauth/callback".into(),
                    ],
                }],
                users: vec![
                    user("partner.admin@contoso.onmicrosoft.com", "Partner Admin"),
                    user("svc.spgate@contoso.onmicrosoft.com", "spgate service"),
                ],
                sites: vec![SiteSeed {
                    hostname: "contoso.sharepoint.com".into(),
                    name: "partners".into(),
                    drives: vec![DriveSeed {
                        name: "Documents".into(),
                        url_name: None,
                        quota_bytes: None,
                        folders: Vec::new(),
                        files: Vec::new(),
                    }],
                }],
            }],
        }
    }
}

impl AppSeed {
    /// The certificate PEM text, read from its path when it is not inline.
    pub fn certificate_pem(&self, seed_dir: &Path) -> Result<Option<String>, super::Error> {
        let Some(cert) = &self.certificate else {
            return Ok(None);
        };
        if cert.contains("-----BEGIN") {
            return Ok(Some(cert.clone()));
        }
        let path: PathBuf = seed_dir.join(cert);
        std::fs::read_to_string(&path)
            .map(Some)
            .map_err(|source| super::Error::Io {
                what: format!("reading certificate {}", path.display()),
                source,
            })
    }
}

/// Deterministic content for seeded files given by size.
pub fn pattern(size: u64) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}
