//! Issue 10's findings, each against the real server: sign-in codes that a stranger cannot turn
//! into a lock-out or a mail bomb (finding 2), attempt counting that parallel guesses cannot
//! beat (finding 3), and the other check-then-act paths (last owner, first organisation) run
//! in parallel on SQLite and PostgreSQL; then the smaller points: mail off the request path,
//! sweeps, `__Host-` cookies, audit paging within one millisecond, 413 after the body.
//!
//! Requests come through a "proxy" (`KEYGATE_TRUSTED_PROXIES=127.0.0.1`) so each can name its
//! client IP in `X-Forwarded-For`, as many attackers on many networks would.

use crate::common::{Client, TestServer};
use keygate_control::config::SettingsArgs;
use serde_json::json;

async fn server(url: Option<String>) -> TestServer {
    TestServer::start_with(
        url,
        SettingsArgs {
            trusted_proxies: Some("127.0.0.1".into()),
            ..Default::default()
        },
    )
    .await
}

macro_rules! on_both_behind_a_proxy {
    ($name:ident, $scenario:ident) => {
        on_both_databases!($name, $scenario, |url| super::server(url).await);
    };
}

const OWNER: &str = "owner@example.com";

fn wrong_code(code: &str) -> &'static str {
    if code == "000000" {
        "000001"
    } else {
        "000000"
    }
}

async fn request_code(client: &Client, email: &str) -> String {
    let r = client
        .post("/api/v1/auth/otp", json!({ "email": email }))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    r.body["challengeId"].as_str().unwrap().to_owned()
}

/// Moves every challenge `ms` into the past (as if that much time went by).
async fn age_challenges(server: &TestServer, ms: i64) {
    crate::keys_support::execute(
        server,
        "UPDATE otp_challenges SET created_at = created_at - $1",
        ms,
    )
    .await;
}

/// Finding 2: ten anonymous requests used to lock the owner out for an hour, each replacing
/// the pending code. Now: sixty requests from twenty networks (with wrong guesses on their
/// own challenges) mail one code, and the owner signs in with it; one network is limited
/// alone; the mailbox never holds more than three live codes.
async fn strangers_cannot_lock_the_owner_out_or_flood_the_mailbox(server: TestServer) {
    server.sign_in(OWNER).await;
    let anon = server.anonymous();
    let before = server.mail_count(OWNER).await;
    for i in 0..20 {
        let attacker = anon.via_ip(&format!("198.51.100.{i}"));
        let mut challenge = String::new();
        for _ in 0..3 {
            challenge = request_code(&attacker, OWNER).await;
        }
        let code = server.outbox_code(OWNER).await;
        for _ in 0..5 {
            let body = json!({"email": OWNER, "code": wrong_code(&code), "challengeId": challenge});
            let r = attacker.post("/api/v1/auth/session", body).await;
            assert!(r.status == 401 || r.status == 410, "{r:?}");
        }
        // Without a challenge id, only challenges this network asked for are judged.
        let r = attacker.redeem(OWNER, wrong_code(&code)).await;
        assert_eq!(r.status, 410, "{r:?}");
    }
    assert_eq!(
        server.mail_count(OWNER).await,
        before + 1,
        "sixty requests mailed one code"
    );
    // The owner, on their own network, asks too: the pending code in the mailbox works.
    let owner = anon.via_ip("203.0.113.5");
    let challenge = request_code(&owner, OWNER).await;
    let code = server.outbox_code(OWNER).await;
    let r = owner
        .post(
            "/api/v1/auth/session",
            json!({"email": OWNER, "code": code, "challengeId": challenge}),
        )
        .await;
    assert_eq!(r.status, 201, "the owner signs in despite the flood: {r:?}");

    // One network is limited (20 requests per 10 minutes), and only that network.
    let noisy = anon.via_ip("192.0.2.77");
    for i in 0..20 {
        let r = noisy
            .post(
                "/api/v1/auth/otp",
                json!({"email": format!("x{i}@example.com")}),
            )
            .await;
        assert_eq!(r.status, 202, "{r:?}");
    }
    let r = noisy
        .post("/api/v1/auth/otp", json!({"email": OWNER}))
        .await;
    assert_eq!((r.status, r.reason()), (429, "OTP_RATE_LIMITED"), "{r:?}");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(
        anon.via_ip("203.0.113.5")
            .post("/api/v1/auth/otp", json!({"email": OWNER}))
            .await
            .status,
        202
    );

    // However long the flood lasts, at most three codes are live in the mailbox.
    let before = server.mail_count(OWNER).await;
    for i in 0..6 {
        age_challenges(&server, 31_000).await;
        request_code(&anon.via_ip(&format!("198.51.102.{i}")), OWNER).await;
    }
    assert_eq!(
        server.mail_count(OWNER).await,
        before + 2,
        "three live codes at most"
    );
}
on_both_behind_a_proxy!(
    finding_2_no_lock_out,
    strangers_cannot_lock_the_owner_out_or_flood_the_mailbox
);

/// Finding 3: 32 parallel wrong codes for one challenge were judged up to 8 times on
/// PostgreSQL. Now exactly five judgements (four `OTP_INVALID`, the fifth kills it); and of
/// 8 parallel right codes exactly one signs in.
async fn parallel_guesses_get_exactly_five_judgements(server: TestServer) {
    server.sign_in(OWNER).await;
    let anon = server.anonymous();
    let challenge = request_code(&anon.via_ip("198.51.100.1"), OWNER).await;
    let code = server.outbox_code(OWNER).await;
    let wrong = wrong_code(&code);
    let guesses = (0..32).map(|i| {
        let c = anon.via_ip(&format!("198.51.101.{i}"));
        let body = json!({"email": OWNER, "code": wrong, "challengeId": challenge});
        async move { c.post("/api/v1/auth/session", body).await }
    });
    let answers = futures_join_all(guesses).await;
    let invalid = answers
        .iter()
        .filter(|r| r.reason() == "OTP_INVALID")
        .count();
    let dead = answers
        .iter()
        .filter(|r| r.reason() == "OTP_TOO_MANY_ATTEMPTS")
        .count();
    assert_eq!((invalid, dead), (4, 28), "{answers:?}");
    let attempts: i64 = keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar("SELECT attempts FROM otp_challenges WHERE id = $1")
            .bind(&challenge)
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(attempts, 5);
    let r = anon
        .via_ip("198.51.100.1")
        .post(
            "/api/v1/auth/session",
            json!({"email": OWNER, "code": code, "challengeId": challenge}),
        )
        .await;
    assert_eq!(
        r.status, 410,
        "the right code is refused on a dead challenge: {r:?}"
    );

    // The code itself lives on for the owner's own challenge; it works exactly once.
    let mine = request_code(&anon.via_ip("203.0.113.5"), OWNER).await;
    assert_eq!(
        server.outbox_code(OWNER).await,
        code,
        "no new code replaced it"
    );
    let tries = (0..8).map(|_| {
        let c = anon.via_ip("203.0.113.5");
        let body = json!({"email": OWNER, "code": code, "challengeId": mine});
        async move { c.post("/api/v1/auth/session", body).await }
    });
    let answers = futures_join_all(tries).await;
    assert_eq!(
        answers.iter().filter(|r| r.status == 201).count(),
        1,
        "{answers:?}"
    );
    assert!(answers.iter().all(|r| r.status == 201 || r.status == 410));
}
on_both_behind_a_proxy!(
    finding_3_parallel_guesses,
    parallel_guesses_get_exactly_five_judgements
);

async fn futures_join_all<F: std::future::Future<Output = crate::common::Resp> + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<crate::common::Resp> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// The last-owner guard holds under races: two owners demoting each other (or themselves)
/// at once leave exactly one owner.
async fn racing_demotions_keep_an_owner(server: TestServer) {
    let a = server.sign_in(OWNER).await;
    let r = a.invite("b@example.com", "owner").await;
    assert_eq!(r.status, 201, "{r:?}");
    let b_id = r.body["member"]["id"].as_str().unwrap().to_owned();
    let a_id = a.get("/api/v1/me").await.body["user"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let b = server.sign_in("b@example.com").await;
    for round in 0..6 {
        // Even rounds: each demotes the other; odd rounds: each demotes themselves.
        let (a_target, b_target) = if round % 2 == 0 {
            (&b_id, &a_id)
        } else {
            (&a_id, &b_id)
        };
        let (pa, pb) = (
            format!("/api/v1/members/{a_target}"),
            format!("/api/v1/members/{b_target}"),
        );
        let (ra, rb) = tokio::join!(
            a.patch(&pa, json!({"role": "admin"})),
            b.patch(&pb, json!({"role": "admin"})),
        );
        let done = [&ra, &rb].iter().filter(|r| r.status == 200).count();
        assert_eq!(done, 1, "round {round}: {ra:?} {rb:?}");
        let owners: i64 = keygate_control::with_db!(&server.state.db, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE role = 'owner'")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        assert_eq!(owners, 1, "round {round}");
        // Restore two owners for the next round (the remaining owner promotes the other).
        let remaining: String = keygate_control::with_db!(&server.state.db, |pool| {
            sqlx::query_scalar("SELECT id FROM users WHERE role = 'owner'")
                .fetch_one(pool)
                .await
                .unwrap()
        });
        let (owner, other) = if remaining == a_id {
            (&a, &b_id)
        } else {
            (&b, &a_id)
        };
        let r = owner
            .patch(
                &format!("/api/v1/members/{other}"),
                json!({"role": "owner"}),
            )
            .await;
        assert_eq!(r.status, 200, "round {round}: {r:?}");
    }
}
on_both_behind_a_proxy!(last_owner_race, racing_demotions_keep_an_owner);

/// First sign-ins racing on an empty instance found exactly one organisation.
async fn racing_first_sign_ins_found_one_organisation(server: TestServer) {
    let anon = server.anonymous();
    let mut attempts = Vec::new();
    for i in 0..6 {
        let email = format!("founder{i}@example{i}.com");
        let client = anon.via_ip(&format!("198.51.100.{i}"));
        let challenge = request_code(&client, &email).await;
        let code = server.outbox_code(&email).await;
        attempts.push((
            client,
            json!({"email": email, "code": code, "challengeId": challenge}),
        ));
    }
    let answers = futures_join_all(
        attempts
            .into_iter()
            .map(|(c, body)| async move { c.post("/api/v1/auth/session", body).await }),
    )
    .await;
    assert_eq!(
        answers.iter().filter(|r| r.status == 201).count(),
        1,
        "{answers:?}"
    );
    assert!(answers
        .iter()
        .all(|r| r.status == 201 || r.reason() == "SIGN_IN_CLOSED"));
    let orgs: i64 = keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query_scalar("SELECT COUNT(*) FROM organisations")
            .fetch_one(pool)
            .await
            .unwrap()
    });
    assert_eq!(orgs, 1);
}
on_both_behind_a_proxy!(
    first_organisation_race,
    racing_first_sign_ins_found_one_organisation
);

/// Rate windows that ended and decoy challenges are swept; nothing live is.
async fn sweeps_remove_rate_windows_and_decoys(server: TestServer) {
    server.sign_in(OWNER).await;
    let anon = server.anonymous();
    request_code(&anon, "stranger@example.com").await;
    request_code(&anon, OWNER).await;
    let count = |sql: &'static str| {
        let db = server.state.db.clone();
        async move {
            keygate_control::with_db!(&db, |pool| {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(pool)
                    .await
                    .unwrap()
            })
        }
    };
    assert!(count("SELECT COUNT(*) FROM rate_windows").await > 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM otp_challenges WHERE decoy").await,
        1
    );
    let now = keygate_control::ids::now_ms();
    keygate_control::store::otp::sweep(&server.state.db, now)
        .await
        .unwrap();
    assert!(
        count("SELECT COUNT(*) FROM rate_windows").await > 0,
        "live windows stay"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM otp_challenges WHERE decoy").await,
        1
    );
    // Eleven minutes on: windows ended and the decoy expired; the real challenge is kept a day.
    let swept = keygate_control::store::otp::sweep(&server.state.db, now + 11 * 60 * 1000)
        .await
        .unwrap();
    assert!(swept > 0);
    assert_eq!(count("SELECT COUNT(*) FROM rate_windows").await, 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM otp_challenges WHERE decoy").await,
        0
    );
    assert!(count("SELECT COUNT(*) FROM otp_challenges").await > 0);
    keygate_control::store::otp::sweep(&server.state.db, now + 2 * 24 * 60 * 60 * 1000)
        .await
        .unwrap();
    assert_eq!(count("SELECT COUNT(*) FROM otp_challenges").await, 0);
}
on_both_behind_a_proxy!(sweeps, sweeps_remove_rate_windows_and_decoys);

/// Audit paging used a time-only cursor, skipping events that shared a millisecond.
async fn audit_paging_never_skips_events_in_one_millisecond(server: TestServer) {
    let owner = server.sign_in(OWNER).await;
    let org = owner.get("/api/v1/me").await.body["organisation"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = keygate_control::ids::now_ms() - 1000;
    keygate_control::with_db!(&server.state.db, |pool| {
        for _ in 0..7 {
            sqlx::query(
                "INSERT INTO audit_events (id, org_id, actor, action, created_at) VALUES ($1, $2, 'x', 'test.same_ms', $3)",
            )
            .bind(keygate_control::ids::new_id())
            .bind(&org)
            .bind(t)
            .execute(pool)
            .await
            .unwrap();
        }
    });
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let path = match &before {
            Some(c) => format!("/api/v1/audit-events?action=test.same_ms&limit=2&before={c}"),
            None => "/api/v1/audit-events?action=test.same_ms&limit=2".to_owned(),
        };
        let r = owner.get(&path).await;
        assert_eq!(r.status, 200, "{r:?}");
        for e in r.body["events"].as_array().unwrap() {
            seen.push(e["id"].as_str().unwrap().to_owned());
        }
        match r.body["nextBefore"].as_str() {
            Some(c) => before = Some(c.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len()), (7, 7), "{seen:?}");
    let r = owner.get("/api/v1/audit-events?before=nonsense").await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_QUERY"));
}
on_both_behind_a_proxy!(
    audit_paging,
    audit_paging_never_skips_events_in_one_millisecond
);

/// Known and unknown addresses get the same answer, equally fast, even with a mail server
/// that never answers: the mail leaves off the request path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_address_answers_like_an_unknown_one_even_when_mail_hangs() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s); // accepted, never greeted
        }
    });
    let server = TestServer::start().await;
    server.sign_in(OWNER).await;
    let hanging = TestServer::start_with(
        Some(format!(
            "sqlite://{}/keygate.db",
            server.data_dir.path().display()
        )),
        SettingsArgs {
            smtp_url: Some(format!("smtp://127.0.0.1:{port}")),
            master_key: None,
            ..Default::default()
        },
    )
    .await;
    let anon = hanging.anonymous();
    let mut bodies = Vec::new();
    for email in [OWNER, "nobody@example.com"] {
        let started = std::time::Instant::now();
        let r = anon
            .post("/api/v1/auth/otp", json!({ "email": email }))
            .await;
        let took = started.elapsed();
        assert_eq!(r.status, 202, "{r:?}");
        assert!(
            took < std::time::Duration::from_secs(2),
            "{email} took {took:?}: mail must not be sent inline"
        );
        let mut body = r.body.clone();
        body["challengeId"] = json!("");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1], "same answer for known and unknown");
    assert_eq!(
        hanging.state.mail.pending(),
        1,
        "the owner's code waits in the queue"
    );
}

/// With `KEYGATE_SECURE_COOKIES`, cookies are `Secure` and `__Host-` prefixed, and only the
/// prefixed name signs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_cookies_carry_the_host_prefix() {
    let server = TestServer::configured(|a| a.secure_cookies = Some(true)).await;
    let http = reqwest::Client::new();
    let r = http
        .post(server.url("/api/v1/auth/otp"))
        .json(&json!({ "email": OWNER }))
        .send()
        .await
        .unwrap();
    let challenge: serde_json::Value = r.json().await.unwrap();
    let code = server.outbox_code(OWNER).await;
    let r = http
        .post(server.url("/api/v1/auth/session"))
        .json(&json!({"email": OWNER, "code": code, "challengeId": challenge["challengeId"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(cookies.len(), 2);
    for c in &cookies {
        assert!(c.starts_with("__Host-keygate_"), "{c}");
        assert!(
            c.contains("; Secure") && c.contains("Path=/") && !c.contains("Domain"),
            "{c}"
        );
    }
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-keygate_session="))
        .unwrap();
    let value = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    let me = |cookie: String| {
        let http = http.clone();
        let url = server.url("/api/v1/me");
        async move {
            http.get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(me(format!("__Host-keygate_session={value}")).await, 200);
    assert_eq!(me(format!("keygate_session={value}")).await, 401);
}

/// A body over the limit, sent whole before the client reads: the client gets the 413
/// (JSON) rather than a reset connection, with a declared length or chunked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_sent_first_still_gets_its_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start().await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    let body = vec![b'a'; 1024 * 1024];
    for chunked in [false, true] {
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = if chunked {
            "POST /api/v1/auth/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
        } else {
            format!(
                "POST /api/v1/auth/otp HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
        };
        s.write_all(head.as_bytes()).await.unwrap();
        if chunked {
            for part in body.chunks(64 * 1024) {
                s.write_all(format!("{:x}\r\n", part.len()).as_bytes())
                    .await
                    .unwrap();
                s.write_all(part).await.unwrap();
                s.write_all(b"\r\n").await.unwrap();
            }
            s.write_all(b"0\r\n\r\n").await.unwrap();
        } else {
            s.write_all(&body).await.unwrap();
        }
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("an answer")
                .expect("no reset");
            answer.extend_from_slice(&buf[..n]);
            if n == 0 || String::from_utf8_lossy(&answer).contains("PAYLOAD_TOO_LARGE") {
                break;
            }
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with("HTTP/1.1 413"),
            "chunked: {chunked}: {text}"
        );
        assert!(text.contains("\"reason\":\"PAYLOAD_TOO_LARGE\""), "{text}");
    }
}
