//! Members (invite, roles, removal) and the audit log, over HTTP.

use crate::common::TestServer;
use serde_json::json;

async fn owners_invite_and_members_cannot_manage(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let r = owner.invite("Admin@Example.com", "admin").await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.body["member"]["email"], "admin@example.com");
    let r = owner
        .post("/api/v1/members", json!({"email": "member@example.com"}))
        .await;
    assert_eq!(r.body["member"]["role"], "member");
    let r = owner
        .post("/api/v1/members", json!({"email": "member@example.com"}))
        .await;
    assert_eq!((r.status, r.reason()), (409, "MEMBER_EXISTS"));
    let r = owner.invite("x@example.com", "god").await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_ROLE"));

    // Invited people can now sign in; members cannot manage members.
    let member = server.sign_in("member@example.com").await;
    assert_eq!(
        member.get("/api/v1/me").await.body["user"]["role"],
        "member"
    );
    let r = member
        .post("/api/v1/members", json!({"email": "y@example.com"}))
        .await;
    assert_eq!((r.status, r.reason()), (403, "ROLE_REQUIRED"));

    // Admins cannot touch owners; the last owner stays.
    let admin = server.sign_in("admin@example.com").await;
    let list = admin.get("/api/v1/members").await;
    assert_eq!(list.body["members"].as_array().unwrap().len(), 3);
    let owner_id = list.body["members"][0]["id"].as_str().unwrap().to_owned();
    let r = admin.delete(&format!("/api/v1/members/{owner_id}")).await;
    assert_eq!((r.status, r.reason()), (403, "ROLE_REQUIRED"));
    let r = owner
        .patch(
            &format!("/api/v1/members/{owner_id}"),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!((r.status, r.reason()), (409, "LAST_OWNER"));

    // Removing a member ends their session at once.
    let member_id = list.body["members"][2]["id"].as_str().unwrap().to_owned();
    let member_path = format!("/api/v1/members/{member_id}");
    assert_eq!(admin.delete(&member_path).await.status, 204);
    assert_eq!(member.get("/api/v1/me").await.status, 401);
    assert_eq!(admin.delete(&member_path).await.status, 404);
    assert_eq!(admin.delete("/api/v1/members/not-an-id").await.status, 404);
}
on_both_databases!(members, owners_invite_and_members_cannot_manage);

async fn audit_log_lists_sign_ins_and_changes_newest_first(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    owner
        .post("/api/v1/members", json!({"email": "a@example.com"}))
        .await;
    let r = server
        .anonymous()
        .post(
            "/api/v1/auth/session",
            json!({"email": "owner@example.com", "code": "000000"}),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = owner.get("/api/v1/audit-events").await;
    assert_eq!(r.status, 200, "{r:?}");
    let events = r.body["events"].as_array().unwrap();
    let actions: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("session.create", "failure"),
            ("member.invite", "success"),
            ("session.create", "success")
        ]
    );
    assert_eq!(events[1]["actor"], "owner@example.com");
    assert_eq!(events[1]["target"], "a@example.com");
    assert!(events[1]["ip"]
        .as_str()
        .is_some_and(|ip| ip.starts_with("127.")));
    let r = owner.get("/api/v1/audit-events?action=member.invite").await;
    assert_eq!(r.body["events"].as_array().unwrap().len(), 1);
    let r = owner.get("/api/v1/audit-events?limit=0").await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_QUERY"));
    let r = owner.get("/api/v1/audit-events?bogus=1").await;
    assert_eq!((r.status, r.reason()), (400, "INVALID_QUERY"));
    let r = server.anonymous().get("/api/v1/audit-events").await;
    assert_eq!(r.status, 401);
}
on_both_databases!(audit, audit_log_lists_sign_ins_and_changes_newest_first);
