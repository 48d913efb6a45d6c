//! Outgoing mail: real SMTP (lettre) when `KEYGATE_SMTP_URL` is set, otherwise messages are
//! appended to an mbox file (`<data dir>/outbox.mbox`) that a developer can read. Both paths
//! build the same RFC 5322 message with lettre.

use std::path::PathBuf;

use lettre::message::{header::ContentType, Mailbox};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::config::{redact_url, Settings};

/// Where mail goes.
pub enum Mailer {
    /// Append messages, each after an mbox `From ` line, to this file.
    Outbox {
        /// The mbox file.
        path: PathBuf,
        /// The sender.
        from: Mailbox,
        /// Serialises appends within this process.
        lock: Mutex<()>,
    },
    /// Send through an SMTP server.
    Smtp {
        /// The transport (pooled connections).
        transport: AsyncSmtpTransport<Tokio1Executor>,
        /// The sender.
        from: Mailbox,
        /// The server, password redacted, for logs.
        server: String,
    },
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Outbox { path, .. } => write!(f, "Mailer::Outbox({})", path.display()),
            Mailer::Smtp { server, .. } => write!(f, "Mailer::Smtp({server})"),
        }
    }
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

/// Why a message could not be sent. Its text names no secret (the code is in the body only).
#[derive(Debug)]
pub struct MailError(pub String);

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Mailer {
    /// The mailer the settings ask for.
    pub fn from_settings(settings: &Settings) -> Result<Mailer, String> {
        let from: Mailbox = settings
            .mail_from
            .parse()
            .map_err(|e| format!("KEYGATE_MAIL_FROM is not an address: {e}"))?;
        match &settings.smtp_url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("KEYGATE_SMTP_URL {}: {e}", redact_url(url)))?
                    .build();
                Ok(Mailer::Smtp {
                    transport,
                    from,
                    server: redact_url(url),
                })
            }
            None => Ok(Mailer::Outbox {
                path: settings.mail_outbox.clone(),
                from,
                lock: Mutex::new(()),
            }),
        }
    }

    fn build(from: &Mailbox, msg: &Message) -> Result<lettre::Message, MailError> {
        let to: Mailbox = msg
            .to
            .parse()
            .map_err(|_| MailError("the recipient address is not valid".into()))?;
        lettre::Message::builder()
            .from(from.clone())
            .to(to)
            .subject(&msg.subject)
            .header(ContentType::TEXT_PLAIN)
            .body(msg.text.clone())
            .map_err(|e| MailError(format!("cannot build the message: {e}")))
    }

    /// Sends (or files) one message.
    pub async fn send(&self, msg: &Message) -> Result<(), MailError> {
        match self {
            Mailer::Smtp {
                transport,
                from,
                server,
            } => {
                let email = Self::build(from, msg)?;
                transport
                    .send(email)
                    .await
                    .map(|_| ())
                    .map_err(|e| MailError(format!("SMTP delivery through {server} failed: {e}")))
            }
            Mailer::Outbox { path, from, lock } => {
                let email = Self::build(from, msg)?;
                let formatted = String::from_utf8_lossy(&email.formatted()).replace("\r\n", "\n");
                let mut entry = format!(
                    "From {} {}\n",
                    from.email,
                    chrono::Utc::now().format("%a %b %e %H:%M:%S %Y")
                );
                for line in formatted.lines() {
                    // mboxrd quoting: a body line starting with "From " would start a message.
                    if line.trim_start_matches('>').starts_with("From ") {
                        entry.push('>');
                    }
                    entry.push_str(line);
                    entry.push('\n');
                }
                entry.push('\n');
                let _guard = lock.lock().await;
                if let Some(dir) = path.parent() {
                    tokio::fs::create_dir_all(dir)
                        .await
                        .map_err(|e| MailError(format!("cannot create {}: {e}", dir.display())))?;
                }
                let mut f = tokio::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .await
                    .map_err(|e| MailError(format!("cannot open {}: {e}", path.display())))?;
                // tokio's File writes in the background: flush so the message is on disk
                // before anyone is told it was sent.
                async {
                    f.write_all(entry.as_bytes()).await?;
                    f.flush().await
                }
                .await
                .map_err(|e| MailError(format!("cannot write {}: {e}", path.display())))
            }
        }
    }
}

/// Mail waiting to be sent, drained by a background task ([`MailQueue::start`]), so that a
/// request that mails a code answers as fast as one that does not (known and unknown
/// sign-in addresses look alike) and a slow SMTP server never holds a request.
///
/// The queue lives in this replica's memory: a message still queued when the process dies
/// is lost, and its recipient asks for a new code (the request path never promises delivery).
pub struct MailQueue {
    tx: tokio::sync::mpsc::Sender<Message>,
    pending: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Messages a queue holds before new ones are dropped (and logged).
pub const MAIL_QUEUE_CAPACITY: usize = 1024;

impl MailQueue {
    /// A queue whose messages `mailer` sends, one at a time, from a spawned task
    /// ([`crate::jobs::mail::send_queued`]).
    pub fn start(mailer: std::sync::Arc<Mailer>) -> MailQueue {
        let (tx, rx) = tokio::sync::mpsc::channel::<Message>(MAIL_QUEUE_CAPACITY);
        let pending = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        tokio::spawn(crate::jobs::mail::send_queued(mailer, rx, pending.clone()));
        MailQueue { tx, pending }
    }

    /// Queues a message; never waits. A full queue drops it, with an error in the log.
    pub fn enqueue(&self, msg: Message) {
        self.pending
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.tx.try_send(msg).is_err() {
            self.pending
                .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            tracing::error!("the mail queue is full; a message was dropped");
        }
    }

    /// Messages queued or being sent.
    pub fn pending(&self) -> usize {
        self.pending.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits until every queued message was handed to the mailer (tests; shutdown).
    pub async fn flushed(&self) {
        while self.pending() > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
