//! Retention sweeps delete what has done its job and nothing else.

use crate::common::TestServer;
use crate::keys_support::{owner_with_workspace, revoke_publishable_key};
use keygate_control::store::retention::{sweep, OUTBOX_KEEP_MS};
use keygate_control::with_db;

async fn count(server: &TestServer, sql: &'static str) -> i64 {
    with_db!(&server.state.db, |pool| sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap())
}

async fn old_rows_go_and_live_rows_stay(server: TestServer) {
    let (owner, ws) = owner_with_workspace(&server, "Shop").await;
    for _ in 0..3 {
        revoke_publishable_key(&owner, &ws).await;
    }
    let signed_out = server.sign_in("owner@example.com").await;
    assert_eq!(signed_out.delete("/api/v1/auth/session").await.status, 204);
    // Every outbox row delivered just now.
    let now = keygate_control::ids::now_ms();
    with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE edge_outbox SET delivered_at = $1")
            .bind(now)
            .execute(pool)
            .await
            .unwrap();
    });
    let outbox_before = count(&server, "SELECT COUNT(*) FROM edge_outbox").await;
    let keys = count(
        &server,
        "SELECT COUNT(DISTINCT key_digest) FROM edge_outbox",
    )
    .await;
    assert!(outbox_before > keys, "several rows per key to sweep");

    // A sweep now deletes nothing: everything is recent.
    let s = sweep(&server.state.db, now).await.unwrap();
    assert_eq!((s.outbox, s.challenges, s.sessions), (0, 0, 0), "{s:?}");
    // Two days later: expired challenges and the ended session go; the live session stays.
    let later = now + 2 * 24 * 60 * 60 * 1000 + OUTBOX_KEEP_MS;
    with_db!(&server.state.db, |pool| {
        sqlx::query("UPDATE sessions SET expires_at = $1 WHERE revoked_at IS NULL")
            .bind(later + 1)
            .execute(pool)
            .await
            .unwrap();
    });
    let s = sweep(&server.state.db, later).await.unwrap();
    assert!(s.challenges >= 2, "{s:?}");
    assert_eq!(s.sessions, 1, "only the signed-out session: {s:?}");
    assert_eq!(
        owner.get("/api/v1/me").await.status,
        200,
        "the live session survives"
    );
    // Each key keeps its newest outbox row: the version the pull endpoint answers with.
    assert_eq!(
        count(&server, "SELECT COUNT(*) FROM edge_outbox").await,
        keys
    );
    assert_eq!(s.outbox as i64, outbox_before - keys);
}
on_both_databases!(retention, old_rows_go_and_live_rows_stay);
