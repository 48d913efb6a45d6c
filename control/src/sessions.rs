//! Signing in and out with an emailed code, and `GET /me`.
//!
//! `POST /auth/otp {email}` always answers 202, whether or not the address is known: known
//! addresses get a code; unknown ones get a decoy challenge that no code matches (so they are
//! rate-limited and timed alike). On an empty instance the first address to sign in creates
//! the organisation and becomes its owner; afterwards only invited addresses can sign in.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{extract::State, Json, Router};
use keygate_shared::otp::Purpose;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{
    cookie_name, csrf_token, session_digest, CurrentUser, CSRF_COOKIE, SESSION_COOKIE,
    SESSION_TTL_MS,
};
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, ClientInfo, JsonBody};
use crate::ids::{new_id, now_ms};
use crate::members::OrganisationStore;
use crate::otp;
use crate::store::audit::{record_now, AuditEntry, AuditStore};
use crate::store::WriteTx;
use crate::with_db;

/// Subject of a first-sign-in challenge (creates the organisation).
const BOOTSTRAP: &str = "bootstrap";
/// Subject of a decoy challenge (unknown address).
const DECOY: &str = "decoy";

/// Routes: `/auth/otp`, `/auth/session`, `/me`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/otp", post(request_code))
        .route("/auth/session", post(sign_in).delete(sign_out))
        .route("/me", get(me))
        .route("/auth/step-up", post(start_step_up).delete(end_step_up))
        .route("/auth/switch", post(switch_organisation))
        .route("/auth/step-up/verify", post(verify_step_up))
}

/// `POST /auth/step-up`: emails the signed-in user a code for this session's step-up window.
async fn start_step_up(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
) -> ApiResult<Json<serde_json::Value>> {
    let challenge = otp::issue(&state, Purpose::StepUp, &user, &user.session_id, &client).await?;
    record_now(
        &state.db,
        &AuditEntry::by_user(&user, "session.step_up.request").on(&user.session_id),
        &client,
    )
    .await
    .map_err(ApiError::from)?;
    Ok(Json(json!({
        "challengeId": challenge.id,
        "expiresAt": crate::ids::rfc3339(challenge.expires_at),
    })))
}

/// `DELETE /auth/step-up`: closes this session's step-up window now (e.g. before leaving the
/// desk); the next sensitive call asks for a code again.
async fn end_step_up(State(state): State<AppState>, user: CurrentUser) -> ApiResult<StatusCode> {
    with_db!(&state.db, |pool| {
        sqlx::query("UPDATE sessions SET step_up_until = NULL WHERE id = $1")
            .bind(&user.session_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StepUpVerify {
    challenge_id: String,
    code: String,
}

/// `POST /auth/step-up/verify {challengeId, code}`: opens the window for 10 minutes.
async fn verify_step_up(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(body): JsonBody<StepUpVerify>,
) -> ApiResult<Json<serde_json::Value>> {
    let entry = AuditEntry::by_user(&user, "session.step_up").on(&user.session_id);
    match otp::redeem(
        &state,
        &body.challenge_id,
        Purpose::StepUp,
        &user,
        &user.session_id,
        &body.code,
        &client,
    )
    .await
    {
        Ok(until) => {
            record_now(&state.db, &entry, &client)
                .await
                .map_err(ApiError::from)?;
            Ok(Json(json!({ "stepUpUntil": crate::ids::rfc3339(until) })))
        }
        Err(e) => {
            let failed = entry.failed().with(json!({ "reason": e.reason }));
            record_now(&state.db, &failed, &client)
                .await
                .map_err(ApiError::from)?;
            Err(e)
        }
    }
}

/// Validates and lower-cases an email address.
pub fn normalize_email(raw: &str) -> ApiResult<String> {
    let email = raw.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && local.len() <= 64
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        })
        && email.matches('@').count() == 1
        && email.chars().all(|c| c.is_ascii_graphic());
    if valid {
        Ok(email)
    } else {
        Err(ApiError::bad_request(
            "INVALID_EMAIL",
            "that is not an email address",
        ))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CodeRequest {
    email: String,
}

/// The answer to every accepted code request, known address or not.
fn code_requested(challenge: &otp::Challenge) -> (StatusCode, Json<serde_json::Value>) {
    (
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "sent",
            "message": "if this address may sign in, a code is on its way",
            "challengeId": challenge.id,
        })),
    )
}

async fn request_code(
    State(state): State<AppState>,
    client: ClientInfo,
    JsonBody(req): JsonBody<CodeRequest>,
) -> ApiResult<impl IntoResponse> {
    let email = normalize_email(&req.email)?;
    let (user_id, organisations): (Option<String>, i64) = with_db!(&state.db, |pool| {
        // One address may belong to several organisations: sign in to the membership used
        // last (the dashboard's switcher moves between them).
        let user: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE email = $1
              ORDER BY COALESCE(last_sign_in_at, 0) DESC, created_at, id LIMIT 1",
        )
        .bind(&email)
        .fetch_optional(pool)
        .await?;
        let orgs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM organisations")
            .fetch_one(pool)
            .await?;
        Ok::<_, sqlx::Error>((user, orgs))
    })?;
    let (subject, real) = match (&user_id, organisations) {
        (Some(_), _) => ("", true),
        (None, 0) => (BOOTSTRAP, true),
        (None, _) => (DECOY, false),
    };
    let (challenge, code) = otp::create(
        &state,
        Purpose::SignIn,
        &email,
        user_id.as_deref(),
        subject,
        &client,
        real,
    )
    .await?;
    // Queued, not sent here: known and unknown addresses answer equally fast.
    if let Some(code) = code {
        otp::send_code(
            &state,
            Purpose::SignIn,
            &email,
            code.expose(),
            challenge.expires_at,
        );
    }
    Ok(code_requested(&challenge))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SignInRequest {
    email: String,
    code: String,
    /// The `challengeId` of the code request this browser made. With it, wrong guesses
    /// count only against this browser's own challenge; without it (older clients), the
    /// address's newest pending challenge is judged.
    #[serde(default)]
    challenge_id: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    JsonBody(req): JsonBody<SignInRequest>,
) -> ApiResult<impl IntoResponse> {
    let email = normalize_email(&req.email)?;
    let latest: Option<String> = if let Some(id) = req.challenge_id.clone() {
        Some(id)
    } else {
        // Without a challenge id: the newest pending challenge this client IP asked for, so
        // a stranger's wrong guesses never spend the attempts of the owner's challenge.
        with_db!(&state.db, |pool| {
            sqlx::query_scalar(
                "SELECT id FROM otp_challenges
                  WHERE email = $1 AND purpose = $2 AND consumed_at IS NULL AND ip = $3
                  ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(&email)
            .bind(Purpose::SignIn.as_str())
            .bind(client.ip.as_deref().unwrap_or_default())
            .fetch_optional(pool)
            .await
        })?
    };
    let Some(challenge_id) = latest else {
        record_failed_sign_in(&state, &email, &client, "OTP_INVALID").await;
        return Err(ApiError::unauthorized(
            "OTP_INVALID",
            "that code is not right; ask for a new one",
        ));
    };
    let redeemed = match otp::redeem_checked(
        &state,
        &challenge_id,
        Purpose::SignIn,
        &req.code,
        &client,
        None,
        |_, e, _| e == email,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => {
            record_failed_sign_in(&state, &email, &client, e.reason).await;
            return Err(e);
        }
    };
    let now = now_ms();
    let token = keygate_shared::random::hex_token() + &keygate_shared::random::hex_token();
    let session_id = new_id();
    let expires_at = now + SESSION_TTL_MS;
    let user: (String, String, String, String, String) = with_db!(&state.db, |pool| async {
        let mut tx = pool.begin_write().await?;
        let user_id = match &redeemed.user_id {
            Some(id) => Some(id.clone()),
            None if redeemed.subject == BOOTSTRAP => {
                // Founding is one unique insert: of two racing first sign-ins, one founds the
                // organisation and the other is refused like any uninvited address.
                let org = new_id();
                if tx.claim_founding(&org).await? {
                    Some(
                        tx.insert_organisation_as(
                            &org,
                            crate::members::organisation_name_for(&email),
                            &email,
                        )
                        .await?,
                    )
                } else {
                    None
                }
            }
            None => None,
        };
        let Some(user_id) = user_id else {
            tx.rollback().await?;
            return Ok(None);
        };
        // Signing in with a code is a verified code: it opens the step-up window.
        sqlx::query(
            "INSERT INTO sessions (token_digest, id, user_id, created_at, expires_at, ip, user_agent, step_up_until)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(session_digest(&token))
        .bind(&session_id)
        .bind(&user_id)
        .bind(now)
        .bind(expires_at)
        .bind(client.ip.as_deref())
        .bind(client.user_agent.as_deref())
        .bind(keygate_shared::authz::step_up_until(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        let row: (String, String, String, String, String) = sqlx::query_as(
            "SELECT u.id, u.email, u.role, o.id, o.name FROM users u JOIN organisations o ON o.id = u.org_id WHERE u.id = $1",
        )
        .bind(&user_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.as_mut()
            .record_audit(
                // Not yet a `CurrentUser`: the user and organisation just read back.
                &AuditEntry::new(&row.3, &row.0, &row.1, "session.create").on(&session_id),
                &client,
            )
            .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Some(row))
    }
    .await)?
    .ok_or_else(|| ApiError::forbidden("SIGN_IN_CLOSED", "this address is not invited to any organisation"))?;
    let (user_id, email, role, org_id, org_name) = user;
    let csrf = csrf_token(state.keys.csrf_key(), &session_id);
    let mut headers = HeaderMap::new();
    let secure = state.settings.secure_cookies;
    let max_age = SESSION_TTL_MS / 1000;
    for cookie in [
        session_cookie(secure, &token, "; HttpOnly", max_age),
        csrf_cookie(secure, &csrf, max_age),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
        );
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(json!({
            "user": {"id": user_id, "email": email, "role": role},
            "organisation": {"id": org_id, "name": org_name},
            "csrfToken": csrf,
        })),
    ))
}

/// The session cookie: `__Host-` prefixed and `Secure` when `secure`, always `Path=/`, no
/// `Domain`, `SameSite=Strict`.
fn session_cookie(secure: bool, value: &str, extra: &str, max_age: i64) -> String {
    let name = cookie_name(SESSION_COOKIE, secure);
    let flag = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/{extra}; SameSite=Strict; Max-Age={max_age}{flag}")
}

/// The CSRF cookie (readable by the dashboard's script).
fn csrf_cookie(secure: bool, value: &str, max_age: i64) -> String {
    let name = cookie_name(CSRF_COOKIE, secure);
    let flag = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; SameSite=Strict; Max-Age={max_age}{flag}")
}

async fn record_failed_sign_in(state: &AppState, email: &str, client: &ClientInfo, reason: &str) {
    let result: Result<(), sqlx::Error> = async {
        let user: Option<(String, String)> = with_db!(&state.db, |pool| {
            sqlx::query_as(
                "SELECT id, org_id FROM users WHERE email = $1
                  ORDER BY COALESCE(last_sign_in_at, 0) DESC, created_at, id LIMIT 1",
            )
            .bind(email)
            .fetch_optional(pool)
            .await
        })?;
        if let Some((user_id, org_id)) = user {
            // In the organisation of the address that failed to sign in (there is no caller).
            let entry = AuditEntry::new(&org_id, &user_id, email, "session.create")
                .failed()
                .with(json!({"reason": reason}));
            record_now(&state.db, &entry, client).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not audit a failed sign-in");
    }
}

async fn sign_out(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
) -> ApiResult<impl IntoResponse> {
    with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_ms())
            .bind(&user.session_id)
            .execute(&mut *tx)
            .await?;
        tx.as_mut()
            .record_audit(
                &AuditEntry::by_user(&user, "session.delete").on(&user.session_id),
                &client,
            )
            .await?;
        tx.commit().await
    })?;
    let mut headers = HeaderMap::new();
    let secure = state.settings.secure_cookies;
    for cookie in [
        session_cookie(secure, "", "; HttpOnly", 0),
        csrf_cookie(secure, "", 0),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
        );
    }
    Ok((StatusCode::NO_CONTENT, headers))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Switch {
    organisation_id: String,
}

/// `POST /auth/switch {organisationId}`: moves this browser to the same address's membership
/// in another organisation: a new session there (no step-up window), this one ends.
async fn switch_organisation(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(body): JsonBody<Switch>,
) -> ApiResult<impl IntoResponse> {
    if !crate::ids::is_valid_id(&body.organisation_id) {
        return Err(ApiError::not_found("organisation"));
    }
    let now = now_ms();
    let token = keygate_shared::random::hex_token() + &keygate_shared::random::hex_token();
    let session_id = new_id();
    let (target_user, org_id) = with_db!(&state.db, |pool| async {
        let mut tx = pool.begin_write().await?;
        let target: Option<String> = sqlx::query_scalar(
            "SELECT id FROM users WHERE email = $1 AND org_id = $2",
        )
        .bind(&user.email)
        .bind(&body.organisation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(target) = target else {
            return Ok::<_, sqlx::Error>(None);
        };
        sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now)
            .bind(&user.session_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (token_digest, id, user_id, created_at, expires_at, ip, user_agent)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(session_digest(&token))
        .bind(&session_id)
        .bind(&target)
        .bind(now)
        .bind(now + SESSION_TTL_MS)
        .bind(client.ip.as_deref())
        .bind(client.user_agent.as_deref())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE users SET last_sign_in_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&target)
            .execute(&mut *tx)
            .await?;
        tx.as_mut()
            .record_audit(
                &AuditEntry::new(&body.organisation_id, &target, &user.email, "session.switch")
                    .on(&session_id),
                &client,
            )
            .await?;
        tx.commit().await?;
        Ok(Some((target, body.organisation_id.clone())))
    }
    .await)?
    .ok_or_else(|| ApiError::not_found("organisation"))?;
    let csrf = csrf_token(state.keys.csrf_key(), &session_id);
    let secure = state.settings.secure_cookies;
    let max_age = SESSION_TTL_MS / 1000;
    let mut headers = HeaderMap::new();
    for cookie in [
        session_cookie(secure, &token, "; HttpOnly", max_age),
        csrf_cookie(secure, &csrf, max_age),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&cookie).map_err(ApiError::internal)?,
        );
    }
    Ok((
        StatusCode::CREATED,
        headers,
        Json(json!({
            "user": {"id": target_user},
            "organisation": {"id": org_id},
            "csrfToken": csrf,
        })),
    ))
}

async fn me(
    State(state): State<AppState>,
    user: CurrentUser,
) -> ApiResult<Json<serde_json::Value>> {
    let (org_name, memberships): (String, Vec<(String, String, String)>) =
        with_db!(&state.db, |pool| {
            let name: String = sqlx::query_scalar("SELECT name FROM organisations WHERE id = $1")
                .bind(&user.org_id)
                .fetch_one(pool)
                .await?;
            let all: Vec<(String, String, String)> = sqlx::query_as(
                "SELECT o.id, o.name, u.role FROM users u JOIN organisations o ON o.id = u.org_id
              WHERE u.email = $1 ORDER BY o.name, o.id",
            )
            .bind(&user.email)
            .fetch_all(pool)
            .await?;
            Ok::<_, sqlx::Error>((name, all))
        })?;
    let organisations: Vec<serde_json::Value> = memberships
        .into_iter()
        .map(|(id, name, role)| json!({"id": id, "name": name, "role": role}))
        .collect();
    Ok(Json(json!({
        "user": {"id": user.user_id, "email": user.email, "role": user.role.as_str()},
        "organisation": {"id": user.org_id, "name": org_name},
        "organisations": organisations,
        "csrfToken": csrf_token(state.keys.csrf_key(), &user.session_id),
        "stepUpUntil": user
            .step_up_until
            .filter(|t| *t > now_ms())
            .map(crate::ids::rfc3339),
    })))
}

#[cfg(test)]
mod tests {
    use super::normalize_email;

    #[test]
    fn emails_are_validated_and_lowercased() {
        assert_eq!(
            normalize_email(" Ada@Example.COM ").unwrap(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "a@b",
            "a b@example.com",
            "a@@example.com",
            "a@exa\tmple.com",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?}");
        }
    }
}
