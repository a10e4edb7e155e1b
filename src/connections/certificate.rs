//! App-only certificates: a new key pair with its self-signed certificate, to upload to the app
//! registration; and what a certificate says about itself (subject, thumbprint, validity), as
//! Entra ID shows it next to an uploaded certificate.

use sha1::Digest;

use crate::config::Secret;

/// How long a generated certificate is valid (Entra ID accepts up to several years; two is the
/// usual rotation).
const VALID_DAYS: i64 = 730;

/// A new RSA 2048 key pair (Entra ID signs client assertions with RS256 or PS256 only) and its
/// self-signed certificate for `common_name`: the certificate's PEM, and the private key's
/// PEM (PKCS #8). Takes tens of milliseconds: call it off the async threads.
pub fn generate(common_name: &str) -> Result<(String, Secret), String> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let day = |offset: i64| {
        let date = (chrono::Utc::now() + chrono::Duration::days(offset)).date_naive();
        use chrono::Datelike;
        rcgen::date_time_ymd(date.year(), date.month() as u8, date.day() as u8)
    };
    params.not_before = day(-1);
    params.not_after = day(VALID_DAYS);
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), Secret::new(key.serialize_pem())))
}

/// What a PEM certificate says about itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Facts {
    pub subject: String,
    /// SHA-1 of the DER, upper-case hex: the "Thumbprint" Entra ID lists.
    pub thumbprint: String,
    /// RFC 3339.
    pub not_before: String,
    pub not_after: String,
    /// Whether it is valid now.
    pub current: bool,
}

/// The facts of the first certificate in `pem`.
pub fn facts(pem: &[u8]) -> Result<Facts, String> {
    let (_, block) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| e.to_string())?;
    let cert = block.parse_x509().map_err(|e| e.to_string())?;
    let time = |t: x509_parser::time::ASN1Time| {
        chrono::DateTime::from_timestamp(t.timestamp(), 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default()
    };
    let validity = cert.validity();
    Ok(Facts {
        subject: cert.subject().to_string(),
        thumbprint: sha1::Sha1::digest(&block.contents)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect(),
        not_before: time(validity.not_before),
        not_after: time(validity.not_after),
        current: validity.is_valid(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_rsa_valid_two_years_and_signs_assertions() {
        let (cert, key) = generate("spgate-test").unwrap();
        let facts = facts(cert.as_bytes()).unwrap();
        assert_eq!(facts.subject, "CN=spgate-test");
        assert_eq!(facts.thumbprint.len(), 40);
        assert!(facts.current);
        assert!(facts.not_after > chrono::Utc::now().to_rfc3339());
        assert!(key.expose().starts_with("-----BEGIN PRIVATE KEY-----"));
        // The key is one jsonwebtoken can sign RS256 with, as the client assertion does.
        jsonwebtoken::EncodingKey::from_rsa_pem(key.expose().as_bytes()).unwrap();
        assert_eq!(format!("{key:?}"), "Secret(***)");
    }

    #[test]
    fn facts_refuse_what_is_not_a_certificate() {
        assert!(facts(b"not pem").is_err());
        assert!(facts(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").is_err());
    }
}

#[cfg(test)]
mod config_tests {
    use serde_json::json;

    use super::generate;
    use crate::config::{self, Credential, Pem};

    /// A configuration with one certificate connection whose `certificate` is `value`.
    fn with_certificate(value: &toml::Value) -> Result<config::Config, config::Error> {
        config::parse_str(&format!(
            "[state]\ndir = \"/var/lib/spgate\"\n[[connections]]\nname = \"sp\"\ntenant = \"contoso\"\n\
             client_id = \"app\"\nsite = \"https://contoso.sharepoint.com/sites/p\"\ncertificate = {value}\n"
        ))
    }

    #[test]
    fn a_certificate_and_key_given_as_text_are_kept_as_text_and_checked() {
        let (cert, key) = generate("t").unwrap();
        let mut value = toml::Table::new();
        value.insert("cert".into(), cert.clone().into());
        value.insert("key".into(), key.expose().into());
        let parsed = with_certificate(&value.clone().into()).unwrap();
        let Credential::Certificate {
            cert: Pem::Text(c),
            key: Pem::Text(k),
        } = &parsed.connections[0].credential
        else {
            panic!("{:?}", parsed.connections[0].credential);
        };
        assert_eq!((c.expose(), k.expose()), (cert.as_str(), key.expose()));

        // The key where the certificate goes (and back): refused, without quoting either.
        value.insert("cert".into(), key.expose().into());
        let err = with_certificate(&value.clone().into())
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("connections[0].certificate.cert: not a PEM certificate"),
            "{err}"
        );
        assert!(!err.contains("BEGIN"), "{err}");
        value.insert("cert".into(), cert.clone().into());
        value.insert("key".into(), cert.clone().into());
        let err = with_certificate(&value.into()).unwrap_err().to_string();
        assert!(
            err.starts_with("connections[0].certificate.key: not a PEM private key"),
            "{err}"
        );
    }

    #[test]
    fn an_ec_key_given_as_text_is_refused_with_why() {
        let (cert, _) = generate("t").unwrap();
        let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut value = toml::Table::new();
        value.insert("cert".into(), cert.into());
        value.insert("key".into(), ec.serialize_pem().into());
        let err = with_certificate(&value.into()).unwrap_err().to_string();
        assert!(
            err.starts_with("connections[0].certificate.key: an EC key: Microsoft Entra ID"),
            "{err}"
        );
        assert!(err.contains("RSA keys only (RS256/PS256)"), "{err}");
        assert!(!err.contains("BEGIN"), "{err}");
    }

    #[test]
    fn the_store_seals_a_key_given_as_text_and_keeps_a_key_file_in_the_record() {
        let mut fields = json!({"certificate": {"cert": "-----BEGIN CERTIFICATE-----x", "key": "-----BEGIN PRIVATE KEY-----y"}});
        let fields = fields.as_object_mut().unwrap();
        let secret = config::take_secret(fields).unwrap();
        assert_eq!(secret, "-----BEGIN PRIVATE KEY-----y");
        assert_eq!(
            fields["certificate"],
            json!({"cert": "-----BEGIN CERTIFICATE-----x"})
        );
        config::put_secret(fields, secret.as_str().unwrap());
        assert_eq!(fields["certificate"]["key"], "-----BEGIN PRIVATE KEY-----y");

        let mut files = json!({"certificate": {"cert": "/etc/a.crt", "key": "/etc/a.key"}});
        let files = files.as_object_mut().unwrap();
        assert_eq!(config::take_secret(files), None);
        assert_eq!(files["certificate"]["key"], "/etc/a.key");

        let mut secret = json!({"client_secret": "s"});
        let secret = secret.as_object_mut().unwrap();
        assert_eq!(config::take_secret(secret), Some(json!("s")));
        config::put_secret(secret, "s");
        assert_eq!(secret["client_secret"], "s");
    }
}
