//! Signing in and out with emailed codes, over HTTP against the real server.

use crate::common::{captured_logs, TestServer};
use serde_json::json;

async fn first_sign_in_creates_the_organisation_and_owner(server: TestServer) {
    let owner = server.sign_in("Owner@Example.com").await;
    let me = owner.get("/api/v1/me").await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.body["user"]["email"], "owner@example.com");
    assert_eq!(me.body["user"]["role"], "owner");
    assert_eq!(me.body["organisation"]["name"], "example.com");
    let mail = server.outbox().await;
    assert!(
        mail.starts_with("From "),
        "mbox messages start with a From line"
    );
    assert!(mail.contains("Subject: Your keygate sign-in code"));
    assert!(mail.contains("expires in 10 minutes"));
}
on_both_databases!(
    first_sign_in,
    first_sign_in_creates_the_organisation_and_owner
);

async fn strangers_get_a_202_but_no_code(server: TestServer) {
    server.sign_in("owner@example.com").await;
    let anon = server.anonymous();
    let r = anon
        .post("/api/v1/auth/otp", json!({"email": "stranger@example.com"}))
        .await;
    assert_eq!(r.status, 202);
    assert!(!server.outbox().await.contains("To: stranger@example.com"));
    // Guessing a code for the stranger gets the same answer as a wrong code.
    let r = anon.redeem("stranger@example.com", "123456").await;
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.reason(), "OTP_INVALID");
}
on_both_databases!(strangers, strangers_get_a_202_but_no_code);

async fn codes_are_single_use_and_die_after_five_wrong_tries(server: TestServer) {
    server.sign_in("owner@example.com").await;
    let anon = server.anonymous();
    // Reuse of the code just used.
    let used = server.outbox_code("owner@example.com").await;
    let r = anon.redeem("owner@example.com", &used).await;
    assert_eq!(r.status, 401, "a used code must not sign in again: {r:?}");

    anon.post("/api/v1/auth/otp", json!({"email": "owner@example.com"}))
        .await;
    let code = server.outbox_code("owner@example.com").await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    for i in 0..4 {
        let r = anon.redeem("owner@example.com", wrong).await;
        assert_eq!(r.status, 401, "try {i}: {r:?}");
        assert_eq!(r.reason(), "OTP_INVALID");
    }
    let r = anon.redeem("owner@example.com", wrong).await;
    assert_eq!(r.status, 410, "{r:?}");
    assert_eq!(r.reason(), "OTP_TOO_MANY_ATTEMPTS");
    let r = anon.redeem("owner@example.com", &code).await;
    assert_eq!(
        r.status, 410,
        "the right code is dead after five wrong ones: {r:?}"
    );
}
on_both_databases!(
    single_use,
    codes_are_single_use_and_die_after_five_wrong_tries
);

async fn repeated_requests_for_one_address_mail_one_code(server: TestServer) {
    let anon = server.anonymous();
    for _ in 0..12 {
        let r = anon
            .post("/api/v1/auth/otp", json!({"email": "flood@example.com"}))
            .await;
        assert_eq!(r.status, 202, "{r:?}");
        assert!(r.body["challengeId"].is_string());
    }
    // The first founded nothing yet (an empty instance mails the bootstrap code); the other
    // eleven were absorbed into it: one email, not twelve.
    assert_eq!(server.mail_count("flood@example.com").await, 1);
}
on_both_databases!(otp_flood, repeated_requests_for_one_address_mail_one_code);

async fn sign_out_revokes_the_session_server_side(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let r = owner.delete("/api/v1/auth/session").await;
    assert_eq!(r.status, 204, "{r:?}");
    // The client dropped its cookies, so replay the old cookie by hand: still refused.
    let r = owner.get("/api/v1/me").await;
    assert_eq!(r.status, 401);
}
on_both_databases!(sign_out, sign_out_revokes_the_session_server_side);

#[tokio::test]
async fn state_changing_calls_need_the_csrf_token() {
    let server = TestServer::start().await;
    let mut owner = server.sign_in("owner@example.com").await;
    owner.csrf = None;
    let r = owner.delete("/api/v1/auth/session").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.reason(), "CSRF_TOKEN_INVALID");
    owner.csrf = Some("0".repeat(64));
    assert_eq!(owner.delete("/api/v1/auth/session").await.status, 403);
}

#[tokio::test]
async fn bad_bodies_get_clear_4xx_errors() {
    let server = TestServer::start().await;
    let anon = server.anonymous();
    type Case<'a> = (Option<(&'a str, Vec<u8>)>, u16, &'a str);
    let json = |body: &[u8]| Some(("application/json", body.to_vec()));
    let cases: Vec<Case<'_>> = vec![
        (json(b"{\"email\":"), 400, "MALFORMED_JSON"),
        (json(b"{\"email\": 5}"), 400, "INVALID_BODY"),
        (json(b"{\"email\":\"a@b.co\",\"x\":1}"), 400, "INVALID_BODY"),
        (json(b"{}"), 400, "INVALID_BODY"),
        (
            Some(("text/plain", b"{\"email\":\"a@b.co\"}".to_vec())),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (None, 415, "UNSUPPORTED_MEDIA_TYPE"),
        (json(b"{\"email\":\"not-an-email\"}"), 400, "INVALID_EMAIL"),
        (
            Some((
                "application/json",
                format!("{{\"email\":\"{}\"}}", "a".repeat(100_000)).into_bytes(),
            )),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
    ];
    for (body, status, reason) in cases {
        let r = anon.send("POST", "/api/v1/auth/otp", body).await;
        assert_eq!((r.status, r.reason()), (status, reason), "{r:?}");
        assert_eq!(r.body["error"]["code"], status);
        assert!(r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let r = anon.get("/api/v1/no-such-thing").await;
    assert_eq!((r.status, r.reason()), (404, "ROUTE_NOT_FOUND"));
    let r = anon.send("PUT", "/api/v1/auth/otp", None).await;
    assert_eq!((r.status, r.reason()), (405, "METHOD_NOT_ALLOWED"));
}

#[tokio::test]
async fn no_code_or_session_token_ever_reaches_the_logs() {
    let server = TestServer::start().await;
    let owner = server.sign_in("owner@example.com").await;
    let code = server.outbox_code("owner@example.com").await;
    owner.get("/api/v1/me").await;
    let logs = captured_logs();
    assert!(!logs.is_empty(), "the harness captures logs");
    assert!(
        !logs.contains(&format!("\"{code}\"")) && !logs.contains(&format!("={code}")),
        "an OTP code was logged"
    );
    if let Some(line) = logs.lines().find(|l| l.contains("keygate_session=")) {
        panic!("a session cookie was logged: {line}");
    }
}
