//! The mail queue's sender: sends each queued message through the mailer, one at a time,
//! off the request path (see [`crate::mail::MailQueue`]).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::mail::{Mailer, Message};

/// Sends every message `queue` yields through `mailer` until the queue closes, counting each
/// one off `pending` once it was handed over (sent or failed).
pub async fn send_queued(
    mailer: Arc<Mailer>,
    mut queue: tokio::sync::mpsc::Receiver<Message>,
    pending: Arc<AtomicUsize>,
) {
    while let Some(msg) = queue.recv().await {
        if let Err(e) = mailer.send(&msg).await {
            // The error names the server, never the message (the code is in the body).
            tracing::error!(error = %e, "sending an email failed; the recipient can ask again");
        }
        pending.fetch_sub(1, Ordering::SeqCst);
    }
}
