//! The role x action table (`keygate_shared::authz`) asked by every route: every route with
//! every role (owner, admin, member session) and with SDK keys, on the real server, on both
//! databases; and the step-up window on the calls that need it.

use crate::common::{Client, Resp, TestServer};
use crate::keys_support::reveal;
use serde_json::{json, Value};

/// Closes every session's step-up window (signing in opened it).
async fn close_step_up_windows(server: &TestServer) {
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE sessions SET step_up_until = NULL")
            .execute(pool)
            .await
            .unwrap();
    });
}

/// What a route is, for the table: who may call it and whether it needs step-up.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Who {
    Everyone,
    Admins,
    Owners,
}

struct Route {
    method: &'static str,
    path: String,
    body: Option<Value>,
    who: Who,
    step_up: bool,
}

fn route(
    method: &'static str,
    path: String,
    body: Option<Value>,
    who: Who,
    step_up: bool,
) -> Route {
    Route {
        method,
        path,
        body,
        who,
        step_up,
    }
}

async fn call(client: &Client, r: &Route) -> Resp {
    match &r.body {
        Some(b) => {
            client
                .send(
                    r.method,
                    &r.path,
                    Some(("application/json", serde_json::to_vec(b).unwrap())),
                )
                .await
        }
        None => client.send(r.method, &r.path, None).await,
    }
}

struct Ids {
    ws: String,
    api_key: String,
    token: String,
    sdk_key: String,
    rule: String,
    member: String,
}

/// Every route, in an order where the allowed calls of one role do not stop the next call
/// from being judged (deletions last).
fn routes(ids: &Ids) -> Vec<Route> {
    let (ws, api_key, token) = (&ids.ws, &ids.api_key, &ids.token);
    let (sdk_key, rule, member) = (&ids.sdk_key, &ids.rule, &ids.member);
    use Who::*;
    let ak = format!("/api/v1/workspace/{ws}/api-key/{api_key}");
    let api_key_body = json!({
        "name": "k", "workspaceId": ws, "customerId": "cus_1", "enabled": true,
        "scopes": [{"representation": "orders", "create": true, "read": true, "update": false, "del": false}],
    });
    vec![
        route("GET", "/api/v1/me".into(), None, Everyone, false),
        route("GET", "/api/v1/workspace".into(), None, Everyone, false),
        route(
            "GET",
            format!("/api/v1/workspace/{ws}"),
            None,
            Everyone,
            false,
        ),
        route(
            "GET",
            format!("/api/v1/workspace/{ws}/modules"),
            None,
            Everyone,
            false,
        ),
        route(
            "GET",
            format!("/api/v1/workspace/{ws}/scopes"),
            None,
            Everyone,
            false,
        ),
        route(
            "GET",
            format!("/api/v1/workspace/{ws}/api-key"),
            None,
            Everyone,
            false,
        ),
        route("GET", ak.clone(), None, Everyone, false),
        route(
            "GET",
            format!("/api/v1/workspace/{ws}/publishable-key"),
            None,
            Everyone,
            false,
        ),
        route(
            "GET",
            format!("/api/v1/workspace/{ws}/sdk-access-key"),
            None,
            Everyone,
            false,
        ),
        route(
            "GET",
            format!("/api/v1/workspace/{ws}/tokens"),
            None,
            Everyone,
            false,
        ),
        route("GET", "/api/v1/sdk-keys".into(), None, Everyone, false),
        route("GET", "/api/v1/members".into(), None, Everyone, false),
        route("GET", "/api/v1/audit-events".into(), None, Everyone, false),
        route(
            "POST",
            "/api/v1/workspace".into(),
            Some(json!({"name": "Another"})),
            Admins,
            false,
        ),
        route(
            "PATCH",
            format!("/api/v1/workspace/{ws}"),
            Some(json!({"name": "Shop"})),
            Admins,
            false,
        ),
        route(
            "PUT",
            format!("/api/v1/workspace/{ws}/modules"),
            Some(
                json!({"modules": [{"name": "billing", "functionalities": ["charge", "refund"]}]}),
            ),
            Admins,
            false,
        ),
        route(
            "POST",
            format!("/api/v1/workspace/{ws}/scope"),
            Some(json!({"name": "n", "representation": "n"})),
            Admins,
            false,
        ),
        route(
            "POST",
            "/api/v1/api-key".into(),
            Some(api_key_body),
            Admins,
            false,
        ),
        route(
            "PATCH",
            ak.clone(),
            Some(json!({"name": "renamed"})),
            Admins,
            false,
        ),
        route(
            "POST",
            format!("{ak}/rotate"),
            Some(json!({})),
            Admins,
            false,
        ),
        route(
            "POST",
            format!("{ak}/refill"),
            Some(json!({"amount": 1})),
            Admins,
            false,
        ),
        route(
            "PATCH",
            format!("/api/v1/workspace/{ws}/publishable-key"),
            Some(json!({"allowedOrigins": ["https://shop.example.com"]})),
            Admins,
            true,
        ),
        route(
            "POST",
            format!("/api/v1/workspace/{ws}/publishable-key/blacklist"),
            Some(json!({"module": "billing", "functionality": "refund"})),
            Admins,
            false,
        ),
        route(
            "POST",
            format!("/api/v1/workspace/{ws}/publishable-key/revoke"),
            None,
            Admins,
            false,
        ),
        route(
            "POST",
            format!("/api/v1/workspace/{ws}/sdk-access-key/reveal"),
            None,
            Admins,
            false,
        ),
        route(
            "POST",
            format!("/api/v1/workspace/{ws}/sdk-access-key/rotate"),
            None,
            Admins,
            true,
        ),
        route(
            "POST",
            format!("/api/v1/workspace/{ws}/tokens"),
            Some(json!({"name": "ci"})),
            Admins,
            false,
        ),
        route(
            "POST",
            "/api/v1/sdk-keys".into(),
            Some(json!({"name": "b", "scopes": {"api_keys": ["read"]}})),
            Admins,
            true,
        ),
        route(
            "POST",
            format!("/api/v1/sdk-keys/{sdk_key}/reveal"),
            None,
            Admins,
            false,
        ),
        route(
            "POST",
            "/api/v1/members".into(),
            Some(json!({"email": format!("m2-{}@example.com", ids.ws), "role": "member"})),
            Admins,
            false,
        ),
        route(
            "POST",
            "/api/v1/members".into(),
            Some(json!({"email": format!("a2-{}@example.com", ids.ws), "role": "admin"})),
            Admins,
            true,
        ),
        route(
            "POST",
            "/api/v1/members".into(),
            Some(json!({"email": format!("o2-{}@example.com", ids.ws), "role": "owner"})),
            Owners,
            true,
        ),
        route(
            "PATCH",
            format!("/api/v1/members/{member}"),
            Some(json!({"role": "member"})),
            Admins,
            false,
        ),
        route(
            "DELETE",
            format!("/api/v1/workspace/{ws}/publishable-key/blacklist/{rule}"),
            None,
            Admins,
            true,
        ),
        route(
            "DELETE",
            format!("/api/v1/workspace/{ws}/tokens/{token}"),
            None,
            Admins,
            false,
        ),
        route(
            "DELETE",
            format!("/api/v1/sdk-keys/{sdk_key}"),
            None,
            Admins,
            false,
        ),
        route("DELETE", ak, None, Admins, false),
        route(
            "DELETE",
            format!("/api/v1/members/{member}"),
            None,
            Admins,
            false,
        ),
    ]
}

/// `POST /api/v1/auth/step-up/verify` with a challenge and its code.
async fn step_up_verify(client: &Client, challenge: &str, code: &str) -> Resp {
    client
        .post(
            "/api/v1/auth/step-up/verify",
            json!({"challengeId": challenge, "code": code}),
        )
        .await
}

/// Sends a setup request with a JSON body; asserts it succeeded.
async fn made(owner: &Client, method: &str, path: &str, body: Value) -> Resp {
    let body = serde_json::to_vec(&body).unwrap();
    let r = owner
        .send(method, path, Some(("application/json", body)))
        .await;
    assert!(r.status < 300, "{method} {path}: {r:?}");
    r
}

async fn setup(server: &TestServer, owner: &Client) -> Ids {
    let r = made(owner, "POST", "/api/v1/workspace", json!({"name": "Shop"})).await;
    let ws = r.body["workspace"]["id"].as_str().unwrap().to_owned();
    let scope = json!({"name": "orders", "representation": "orders"});
    made(
        owner,
        "POST",
        &format!("/api/v1/workspace/{ws}/scope"),
        scope,
    )
    .await;
    let api_key = json!({"name": "k", "workspaceId": ws, "customerId": "cus_1", "enabled": true,
        "scopes": [{"representation": "orders", "create": true, "read": true, "update": false, "del": false}]});
    let r = made(owner, "POST", "/api/v1/api-key", api_key).await;
    let api_key = r.body["apiKey"]["id"].as_str().unwrap().to_owned();
    let tokens = format!("/api/v1/workspace/{ws}/tokens");
    let r = made(owner, "POST", &tokens, json!({"name": "t"})).await;
    let token = r.body["token"]["id"].as_str().unwrap().to_owned();
    let sdk_key = json!({"name": "b", "scopes": {"workspace": ["read"]}});
    let r = made(owner, "POST", "/api/v1/sdk-keys", sdk_key).await;
    assert_eq!(r.status, 201, "{r:?}");
    let sdk_key = r.body["sdkKey"]["id"].as_str().unwrap().to_owned();
    let catalogue =
        json!({"modules": [{"name": "billing", "functionalities": ["charge", "refund"]}]});
    made(
        owner,
        "PUT",
        &format!("/api/v1/workspace/{ws}/modules"),
        catalogue,
    )
    .await;
    let rule = json!({"module": "billing", "functionality": "charge"});
    let blacklist = format!("/api/v1/workspace/{ws}/publishable-key/blacklist");
    let r = made(owner, "POST", &blacklist, rule).await;
    let rule = r.body["rule"]["id"]
        .as_str()
        .or_else(|| r.body["id"].as_str())
        .unwrap_or_else(|| panic!("rule id in {r:?}"))
        .to_owned();
    let r = owner
        .invite(&format!("target-{ws}@example.com"), "admin")
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let member = r.body["member"]["id"].as_str().unwrap().to_owned();
    let _ = server;
    Ids {
        ws,
        api_key,
        token,
        sdk_key,
        rule,
        member,
    }
}

fn allowed(who: Who, role: &str) -> bool {
    match who {
        Who::Everyone => true,
        Who::Admins => role != "member",
        Who::Owners => role == "owner",
    }
}

async fn every_route_answers_every_role_as_the_table_says(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    for (email, role) in [
        ("admin@example.com", "admin"),
        ("member@example.com", "member"),
    ] {
        let r = owner.invite(email, role).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let admin = server.sign_in("admin@example.com").await;
    let member = server.sign_in("member@example.com").await;

    // Outside a step-up window: the table's verdicts, and STEP_UP_REQUIRED for the allowed
    // step-up calls. Judged first, with nothing changing (every allowed call that needs no
    // step-up is judged in the second pass).
    let ids = setup(&server, &owner).await;
    close_step_up_windows(&server).await;
    for (client, role) in [(&member, "member"), (&admin, "admin"), (&owner, "owner")] {
        for r in routes(&ids)
            .iter()
            .filter(|r| r.step_up || !allowed(r.who, role))
        {
            let resp = call(client, r).await;
            let expected = if !allowed(r.who, role) {
                "ROLE_REQUIRED"
            } else {
                "STEP_UP_REQUIRED"
            };
            assert_eq!(
                (resp.status, resp.reason()),
                (403, expected),
                "{role} {} {}: {resp:?}",
                r.method,
                r.path
            );
            assert_eq!(resp.headers["cache-control"], "no-store");
        }
    }

    // Inside the window (a verified step-up code), every allowed call is let through.
    step_up(&server, &owner).await;
    step_up(&server, &admin).await;
    for (client, role) in [(&admin, "admin"), (&owner, "owner")] {
        let ids = setup(&server, &owner).await;
        for r in routes(&ids).iter().filter(|r| allowed(r.who, role)) {
            let resp = call(client, r).await;
            // Judged allowed: whatever the call's own answer (a refill of a key without a
            // usage limit is a 400, a second reveal within 30 s a 429), never a 401/403/5xx.
            assert!(
                resp.status < 500 && resp.status != 401 && resp.status != 403,
                "{role} {} {} should be allowed: {resp:?}",
                r.method,
                r.path
            );
        }
    }
    for r in routes(&setup(&server, &owner).await)
        .iter()
        .filter(|r| allowed(r.who, "member"))
    {
        let resp = call(&member, r).await;
        assert_eq!(resp.status, 200, "member {} {}: {resp:?}", r.method, r.path);
    }
}
on_both_databases!(
    every_route_every_role,
    every_route_answers_every_role_as_the_table_says
);

/// Opens `client`'s step-up window through the emailed code.
async fn step_up(server: &TestServer, client: &Client) {
    let me = client.get("/api/v1/me").await;
    let email = me.body["user"]["email"].as_str().unwrap().to_owned();
    let r = client.post("/api/v1/auth/step-up", json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    let challenge = r.body["challengeId"].as_str().unwrap().to_owned();
    let code = server.outbox_code(&email).await;
    let r = step_up_verify(client, &challenge, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["stepUpUntil"].is_string());
}

/// Finding 1: a member managed customer API keys and workspace scopes (the backend API let
/// every session through). Each call is now 403 ROLE_REQUIRED and changes nothing.
async fn members_cannot_manage_api_keys_or_scopes(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let r = owner
        .post("/api/v1/members", json!({"email": "member@example.com"}))
        .await;
    assert_eq!(r.status, 201);
    let member = server.sign_in("member@example.com").await;
    let ids = setup(&server, &owner).await;
    let ws = &ids.ws;
    let ak = format!("/api/v1/workspace/{ws}/api-key/{}", ids.api_key);
    let body = json!({"name": "k", "workspaceId": ws, "customerId": "cus_2",
        "scopes": [{"representation": "orders", "create": true, "read": true, "update": false, "del": false}]});
    for resp in [
        member.post("/api/v1/api-key", body).await,
        member.post(&format!("{ak}/rotate"), json!({})).await,
        member.delete(&ak).await,
        member
            .post(
                &format!("/api/v1/workspace/{ws}/scope"),
                json!({"name": "x", "representation": "x"}),
            )
            .await,
    ] {
        resp.assert_error(403, "ROLE_REQUIRED");
        assert!(
            resp.body.get("apiKey").is_none(),
            "no key value leaks: {resp:?}"
        );
    }
    // Nothing changed: one key, still there; the scope list unchanged.
    let list = member.get(&format!("/api/v1/workspace/{ws}/api-key")).await;
    assert_eq!(list.status, 200, "{list:?}");
    assert_eq!(member.get(&ak).await.status, 200);
    let scopes = member.get(&format!("/api/v1/workspace/{ws}/scopes")).await;
    assert!(!scopes.text.contains("\"x\""), "{scopes:?}");
}
on_both_databases!(
    finding_1_member_api_keys,
    members_cannot_manage_api_keys_or_scopes
);

/// SDK keys: the backend routes ask the same table (by scope); dashboard routes never accept one.
async fn sdk_keys_are_gated_by_scope_and_never_reach_the_dashboard(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let ids = setup(&server, &owner).await;
    let r = owner
        .post(
            "/api/v1/sdk-keys",
            json!({"name": "reader", "scopes": {"workspace": ["read"]}}),
        )
        .await;
    let reader = owner.with_bearer(r.body["key"].as_str().unwrap());
    let ws = &ids.ws;
    assert_eq!(reader.get("/api/v1/workspace").await.status, 200);
    let r = reader
        .post(
            &format!("/api/v1/workspace/{ws}/scope"),
            json!({"name": "y", "representation": "y"}),
        )
        .await;
    assert_eq!((r.status, r.reason()), (403, "MISSING_SCOPE"), "{r:?}");
    let r = reader.get(&format!("/api/v1/workspace/{ws}/api-key")).await;
    assert_eq!((r.status, r.reason()), (403, "MISSING_SCOPE"), "{r:?}");
    for r in routes(&ids).iter().filter(|r| {
        r.path.contains("sdk-")
            || r.path.contains("members")
            || r.path.contains("tokens")
            || r.path.contains("publishable")
    }) {
        let resp = call(&reader, r).await;
        assert_eq!(
            resp.status, 401,
            "an SDK key on {} {}: {resp:?}",
            r.method, r.path
        );
    }
}
on_both_databases!(
    sdk_key_gating,
    sdk_keys_are_gated_by_scope_and_never_reach_the_dashboard
);

/// Finding 4: secrets came back without step-up. Rotating the SDK access key and creating an
/// SDK key need the window; a reveal's code or a step-up code opens it for this session only;
/// every answer carries `Cache-Control: no-store`.
async fn secrets_need_a_step_up_window(server: TestServer) {
    let owner = server.sign_in("owner@example.com").await;
    let other_session = server.sign_in("owner@example.com").await;
    let r = owner
        .post("/api/v1/workspace", json!({"name": "Shop"}))
        .await;
    let ws = r.body["workspace"]["id"].as_str().unwrap().to_owned();
    close_step_up_windows(&server).await;
    let rotate = format!("/api/v1/workspace/{ws}/sdk-access-key/rotate");
    let create = json!({"name": "b", "scopes": {"api_keys": ["read"]}});
    let r = owner.post(&rotate, json!({})).await;
    assert_eq!((r.status, r.reason()), (403, "STEP_UP_REQUIRED"), "{r:?}");
    assert!(r.body.get("key").is_none());
    let r = owner.post("/api/v1/sdk-keys", create.clone()).await;
    assert_eq!((r.status, r.reason()), (403, "STEP_UP_REQUIRED"), "{r:?}");
    assert_eq!(
        owner.get("/api/v1/me").await.body["stepUpUntil"],
        Value::Null
    );

    // A wrong code opens nothing.
    let r = owner.post("/api/v1/auth/step-up", json!({})).await;
    let challenge = r.body["challengeId"].as_str().unwrap().to_owned();
    let code = server.outbox_code("owner@example.com").await;
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let r = owner
        .post(
            "/api/v1/auth/step-up/verify",
            json!({"challengeId": challenge, "code": wrong}),
        )
        .await;
    assert_eq!((r.status, r.reason()), (401, "OTP_INVALID"), "{r:?}");
    assert_eq!(
        owner.post(&rotate, json!({})).await.reason(),
        "STEP_UP_REQUIRED"
    );
    // The other session cannot redeem this session's challenge.
    let r = step_up_verify(&other_session, &challenge, &code).await;
    assert_eq!((r.status, r.reason()), (404, "OTP_NOT_FOUND"), "{r:?}");
    let r = step_up_verify(&owner, &challenge, &code).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(owner.get("/api/v1/me").await.body["stepUpUntil"].is_string());
    let r = owner.post(&rotate, json!({})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body["key"].as_str().unwrap().starts_with("sk_"));
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = owner.post("/api/v1/sdk-keys", create.clone()).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(r.headers["cache-control"], "no-store");
    // The window is this session's: the other one still has none.
    let r = other_session.post("/api/v1/sdk-keys", create.clone()).await;
    assert_eq!((r.status, r.reason()), (403, "STEP_UP_REQUIRED"), "{r:?}");

    // A verified reveal opens the window too.
    let key_id = r_id(&owner.get("/api/v1/sdk-keys").await);
    let r = reveal(
        &server,
        &other_session,
        &format!("/api/v1/sdk-keys/{key_id}"),
    )
    .await;
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = other_session.post("/api/v1/sdk-keys", create).await;
    assert_eq!(r.status, 201, "{r:?}");

    // The window closes after ten minutes.
    keygate_control::with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE sessions SET step_up_until = $1")
            .bind(keygate_control::ids::now_ms() - 1)
            .execute(pool)
            .await
            .unwrap();
    });
    assert_eq!(
        owner.post(&rotate, json!({})).await.reason(),
        "STEP_UP_REQUIRED"
    );
}
on_both_databases!(finding_4_step_up, secrets_need_a_step_up_window);

fn r_id(list: &Resp) -> String {
    list.body["sdkKeys"][0]["id"].as_str().unwrap().to_owned()
}
