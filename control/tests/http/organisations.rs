//! One email address in several organisations: an invitation answers the same whether or not
//! the address has an account elsewhere; each membership has its own role; the switcher moves
//! a browser between them and each sees only its own organisation.

use crate::common::TestServer;
use serde_json::json;

async fn one_address_belongs_to_several_organisations(server: TestServer) {
    let alpha = server.sign_in("ada@alpha.com").await;
    let r = alpha
        .post("/api/v1/workspace", json!({"name": "Alpha shop"}))
        .await;
    assert!(r.status < 300, "{r:?}");
    let beta = server
        .sign_in_to_new_organisation("Beta", "boss@beta.com")
        .await;

    // Inviting an address that has an account elsewhere answers exactly like a new one.
    let known = beta.invite("ada@alpha.com", "member").await;
    let fresh = beta.invite("new@beta.com", "member").await;
    assert_eq!((known.status, fresh.status), (201, 201), "{known:?}");
    let shape = |v: &serde_json::Value| {
        let mut keys: Vec<String> = v["member"].as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    };
    assert_eq!(shape(&known.body), shape(&fresh.body));
    let again = beta.invite("ada@alpha.com", "admin").await;
    assert_eq!((again.status, again.reason()), (409, "MEMBER_EXISTS"));

    // Ada's next sign-in lands in the organisation she used last; both are listed with roles.
    let ada = server.sign_in("ada@alpha.com").await;
    let me = ada.get("/api/v1/me").await;
    assert_eq!(me.body["organisation"]["name"], "alpha.com");
    let orgs = me.body["organisations"].as_array().unwrap();
    let roles: Vec<(String, String)> = orgs
        .iter()
        .map(|o| {
            (
                o["name"].as_str().unwrap().into(),
                o["role"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        roles,
        vec![
            ("Beta".into(), "member".into()),
            ("alpha.com".into(), "owner".into())
        ]
    );
    let beta_id = orgs[0]["id"].as_str().unwrap().to_owned();

    // Switching: a new session in Beta, as a member there; Alpha's workspace is not visible.
    let mut ada_beta = ada.clone();
    let r = ada_beta
        .post("/api/v1/auth/switch", json!({"organisationId": beta_id}))
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    ada_beta.csrf = r.body["csrfToken"].as_str().map(str::to_owned);
    let me = ada_beta.get("/api/v1/me").await;
    assert_eq!(me.body["organisation"]["name"], "Beta");
    assert_eq!(me.body["user"]["role"], "member");
    let list = ada_beta.get("/api/v1/workspace").await;
    assert!(!list.text.contains("Alpha shop"), "{list:?}");
    let r = ada_beta
        .post("/api/v1/workspace", json!({"name": "x"}))
        .await;
    assert_eq!((r.status, r.reason()), (403, "ROLE_REQUIRED"));
    // An organisation the address does not belong to is a 404.
    let alpha_id = orgs[1]["id"].as_str().unwrap();
    let r = beta
        .post("/api/v1/auth/switch", json!({"organisationId": alpha_id}))
        .await;
    assert_eq!((r.status, r.reason()), (404, "NOT_FOUND"), "{r:?}");
}
on_both_databases!(
    several_organisations,
    one_address_belongs_to_several_organisations
);
