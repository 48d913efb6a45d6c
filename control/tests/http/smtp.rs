//! Mail over real SMTP: with `KEYGATE_SMTP_URL` set, sign-in codes leave through lettre's
//! SMTP client to a server on loopback (a minimal RFC 5321 receiver in this test), not to the
//! outbox file.

use std::sync::{Arc, Mutex};

use crate::common::TestServer;
use keygate_control::config::SettingsArgs;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Accepts SMTP sessions and stores each message's DATA.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let inbox = Arc::new(Mutex::new(Vec::new()));
    let store = inbox.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let store = store.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 test.local ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                let mut data = String::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            store.lock().unwrap().push(std::mem::take(&mut data));
                            write.write_all(b"250 2.0.0 queued\r\n").await.unwrap();
                        } else {
                            data.push_str(line.strip_prefix('.').unwrap_or(&line));
                            data.push('\n');
                        }
                        continue;
                    }
                    let verb = line
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "EHLO" => b"250-test.local\r\n250 8BITMIME\r\n",
                        "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => b"502 not implemented\r\n",
                    };
                    write.write_all(reply).await.unwrap();
                }
            });
        }
    });
    (port, inbox)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_codes_go_out_over_smtp() {
    let (port, inbox) = smtp_receiver().await;
    let server = TestServer::start_with(
        None,
        SettingsArgs {
            smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
            mail_from: Some("keygate <no-reply@keygate.test>".into()),
            ..Default::default()
        },
    )
    .await;
    let anon = server.anonymous();
    let r = anon
        .post("/api/v1/auth/otp", json!({"email": "owner@example.com"}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    server.state.mail.flushed().await;
    let message = inbox
        .lock()
        .unwrap()
        .last()
        .cloned()
        .expect("a message reached the SMTP server");
    assert!(message.contains("To: owner@example.com"), "{message}");
    assert!(
        message.contains("From: keygate <no-reply@keygate.test>"),
        "{message}"
    );
    assert!(
        message.contains("Subject: Your keygate sign-in code"),
        "{message}"
    );
    assert!(
        server.outbox().await.is_empty(),
        "with SMTP set, nothing goes to the outbox file"
    );
    let code = message
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 6 && l.bytes().all(|b| b.is_ascii_digit()))
        .expect("the code is in the body")
        .to_owned();
    let r = anon.redeem("owner@example.com", &code).await;
    assert_eq!(r.status, 201, "{r:?}");
}

/// Mail leaves off the request path (so known and unknown addresses answer alike): an
/// unreachable SMTP server does not change the answer, and its failure is logged without the
/// server's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_smtp_server_is_logged_without_its_password() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let server = TestServer::start_with(
        None,
        SettingsArgs {
            smtp_url: Some(format!("smtp://user:hunter2pass@127.0.0.1:{port}")),
            ..Default::default()
        },
    )
    .await;
    let r = server
        .anonymous()
        .post("/api/v1/auth/otp", json!({"email": "owner@example.com"}))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    assert!(!r.text.contains("hunter2pass"));
    server.state.mail.flushed().await;
    assert!(crate::common::captured_logs().contains("sending an email failed"));
    assert!(
        !crate::common::captured_logs().contains("hunter2pass"),
        "the SMTP password was logged"
    );
}
