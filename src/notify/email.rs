//! `type = "email"`: each notification as a plain-text message over SMTP (lettre), STARTTLS
//! required by default, plain for a local relay; a login when `username` and `password` are
//! set. The message id is made from the notification's id, the same on every try. An SMTP 5xx
//! is final; a 4xx, or a server that cannot be reached, is tried again.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message as Mail};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::error::{Error, Kind, Result};
use super::message::{Channel, Message};
use crate::config::Smtp;

/// TLS for `host` trusting the certificates in PEM file `ca` besides the public roots.
fn trusting(host: &str, ca: &std::path::Path) -> Result<TlsParameters> {
    let setting_up = |e: &dyn std::fmt::Display| {
        Error::new(
            Kind::Permanent,
            format!("setting up STARTTLS with the CA file {}: {e}", ca.display()),
        )
    };
    let pem = std::fs::read(ca).map_err(|e| setting_up(&e))?;
    let certificates = Certificate::from_pem(&pem).map_err(|e| setting_up(&e))?;
    TlsParameters::builder(host.to_string())
        .add_root_certificate(certificates)
        .build_rustls()
        .map_err(|e| setting_up(&e))
}

/// No `Debug`: the transport holds the password.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub fn new(config: &Smtp, timeout: Duration) -> Result<Email> {
        let builder = if config.starttls {
            let builder = AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&config.host)
                .map_err(|e| Error::caused(Kind::Permanent, "setting up STARTTLS", e))?;
            match &config.ca {
                Some(ca) => builder.tls(Tls::Required(trusting(&config.host, ca)?)),
                None => builder,
            }
        } else {
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&config.host)
        };
        let mut builder = builder.port(config.port).timeout(Some(timeout));
        if let Some((user, password)) = &config.login {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        Ok(Email {
            transport: builder.build(),
            from: config.from.clone(),
            to: config.to.clone(),
        })
    }

    /// `message` as an e-mail.
    fn mail(&self, message: &Message) -> Result<Mail> {
        let mut mail = Mail::builder()
            .from(self.from.clone())
            .message_id(Some(format!("<{}@spgate>", message.id)))
            .subject(message.subject_line())
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            mail = mail.to(to.clone());
        }
        mail.body(message.text.clone())
            .map_err(|e| Error::caused(Kind::Permanent, "building the e-mail", e))
    }
}

#[async_trait::async_trait]
impl Channel for Email {
    async fn send(&self, message: &Message, _attempt: u32) -> Result<()> {
        let mail = self.mail(message)?;
        match self.transport.send(mail).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let kind = if e.is_permanent() {
                    Kind::Permanent
                } else {
                    Kind::Transient
                };
                Err(Error::caused(
                    kind,
                    "the SMTP server did not take the e-mail",
                    e,
                ))
            }
        }
    }
}
