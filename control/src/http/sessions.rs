//! Signing in and out with an emailed code, `GET /me`, the step-up window and switching
//! organisation.
//!
//! `POST /auth/otp {email}` always answers 202, whether or not the address is known: known
//! addresses get a code; unknown ones get a decoy challenge that no code matches (so they are
//! rate-limited and timed alike). On an empty instance the first address to sign in creates
//! the organisation and becomes its owner; afterwards only invited addresses can sign in.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::Json;
use keygate_shared::otp::Purpose;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api::sessions::{
    CodeRequest, CodeRequested, IdOnly, Me, SessionOrganisation, SessionUser, SignIn, SignedIn,
    StepUpChallenge, StepUpOpened, SwitchOrganisation, Switched, VerifyCode,
};
use crate::api::{ErrorBody, Timestamp};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::{
    cookie_name, csrf_token, session_digest, CurrentUser, CSRF_COOKIE, SESSION_COOKIE,
    SESSION_TTL_MS,
};
use crate::http::otp;
use crate::http::{validate, AppState, ClientInfo, JsonBody};
use crate::ids::{new_id, now_ms};
use crate::store;
use crate::store::audit::{record_now, AuditEntry};
use crate::store::sessions::{NewSession, SignInAs};

/// Subject of a first-sign-in challenge (creates the organisation).
const BOOTSTRAP: &str = "bootstrap";
/// Subject of a decoy challenge (unknown address).
const DECOY: &str = "decoy";

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(request_code))
        .routes(routes!(sign_in, sign_out))
        .routes(routes!(me))
        .routes(routes!(start_step_up, end_step_up))
        .routes(routes!(verify_step_up))
        .routes(routes!(switch_organisation))
}

/// Email a sign-in code.
///
/// Answers 202 whether or not the address may sign in (an unknown address gets a decoy
/// challenge no code matches, limited and timed alike).
#[utoipa::path(
    post, path = "/auth/otp", tag = "sign-in",
    request_body = CodeRequest,
    responses(
        (status = 202, description = "A code is on its way if the address may sign in", body = CodeRequested),
        (status = 429, description = "`OTP_COOLDOWN` or `OTP_RATE_LIMITED` (with `Retry-After`)", body = ErrorBody),
        (status = "4XX", description = "`INVALID_EMAIL` or an invalid body", body = ErrorBody),
    ),
    security(()),
)]
async fn request_code(
    State(state): State<AppState>,
    client: ClientInfo,
    JsonBody(req): JsonBody<CodeRequest>,
) -> ApiResult<(StatusCode, Json<CodeRequested>)> {
    let email = validate::email(&req.email)?;
    let (user_id, organisations) = store::sessions::sign_in_candidate(&state.db, &email).await?;
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
    Ok((
        StatusCode::ACCEPTED,
        Json(CodeRequested {
            status: "sent",
            message: "if this address may sign in, a code is on its way",
            challenge_id: challenge.id,
        }),
    ))
}

/// Sign in with an emailed code.
///
/// Sets the session cookie (HttpOnly) and the CSRF cookie; the session starts with its
/// step-up window open.
#[utoipa::path(
    post, path = "/auth/session", tag = "sign-in",
    request_body = SignIn,
    responses(
        (status = 201, description = "Signed in; `Set-Cookie` carries the session and CSRF cookies", body = SignedIn,
            headers(("set-cookie" = String, description = "keygate_session and keygate_csrf"))),
        (status = 401, description = "`OTP_INVALID`", body = ErrorBody),
        (status = 403, description = "`SIGN_IN_CLOSED`: the address is not invited", body = ErrorBody),
        (status = 404, description = "`OTP_NOT_FOUND`", body = ErrorBody),
        (status = 410, description = "`OTP_CONSUMED`, `OTP_EXPIRED` or `OTP_TOO_MANY_ATTEMPTS`", body = ErrorBody),
        (status = "4XX", description = "`INVALID_EMAIL`, `OTP_RATE_LIMITED` or an invalid body", body = ErrorBody),
    ),
    security(()),
)]
async fn sign_in(
    State(state): State<AppState>,
    client: ClientInfo,
    JsonBody(req): JsonBody<SignIn>,
) -> ApiResult<(StatusCode, HeaderMap, Json<SignedIn>)> {
    let email = validate::email(&req.email)?;
    let redeemed = match redeem_sign_in(&state, &email, req.challenge_id, &req.code, &client).await
    {
        Ok(r) => r,
        Err(e) => {
            if !e.status.is_server_error() {
                store::sessions::record_failed_sign_in(&state.db, &email, &client, e.reason).await;
            }
            return Err(e);
        }
    };
    let who = match (&redeemed.user_id, redeemed.subject.as_str()) {
        (Some(id), _) => SignInAs::User(id),
        (None, BOOTSTRAP) => SignInAs::Founder(&email),
        (None, _) => SignInAs::Nobody,
    };
    let now = now_ms();
    let fresh = FreshSession::new();
    // Signing in with a code is a verified code: it opens the step-up window.
    let session = fresh.opening(now, Some(keygate_shared::authz::step_up_until(now)));
    let (user, organisation) = store::sessions::sign_in(&state.db, who, &session, &client).await?;
    let (csrf, headers) = fresh.cookies(&state)?;
    Ok((
        StatusCode::CREATED,
        headers,
        Json(SignedIn {
            user,
            organisation,
            csrf_token: csrf,
        }),
    ))
}

/// Redeems the sign-in code of `email`: against the challenge this browser names or, for
/// clients that name none, the newest pending one this client IP asked for.
async fn redeem_sign_in(
    state: &AppState,
    email: &str,
    challenge_id: Option<String>,
    code: &str,
    client: &ClientInfo,
) -> ApiResult<otp::Redeemed> {
    let challenge_id = match challenge_id {
        Some(id) => Some(id),
        None => {
            let ip = client.ip.as_deref().unwrap_or_default();
            store::otp::newest_pending(&state.db, email, Purpose::SignIn.as_str(), ip).await?
        }
    };
    let Some(challenge_id) = challenge_id else {
        return Err(ApiError::unauthorized(
            "OTP_INVALID",
            "that code is not right; ask for a new one",
        ));
    };
    otp::redeem_checked(
        state,
        &challenge_id,
        Purpose::SignIn,
        code,
        client,
        None,
        |_, e, _| e == email,
    )
    .await
}

/// Sign out.
///
/// The session is revoked server-side and both cookies are cleared.
#[utoipa::path(
    delete, path = "/auth/session", tag = "sign-in",
    responses(
        (status = 204, description = "Signed out; `Set-Cookie` clears both cookies"),
    ),
    security(("session" = [])),
)]
async fn sign_out(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
) -> ApiResult<(StatusCode, HeaderMap)> {
    let audit = AuditEntry::by_user(&user, "session.delete").on(&user.session_id);
    store::sessions::sign_out(&state.db, &user.session_id, now_ms(), &audit, &client).await?;
    Ok((StatusCode::NO_CONTENT, session_cookies(&state, "", "", 0)?))
}

/// The signed-in user.
///
/// The user, the session's organisation (`organisation`), every organisation the address
/// belongs to, the CSRF token and the step-up window.
#[utoipa::path(
    get, path = "/me", tag = "sign-in",
    responses(
        (status = 200, description = "The signed-in user and session", body = Me),
    ),
    security(("session" = [])),
)]
async fn me(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<Me>> {
    let (name, organisations) =
        store::sessions::memberships(&state.db, &user.org_id, &user.email).await?;
    let csrf_token = csrf_token(state.keys.csrf_key(), &user.session_id);
    let step_up_until = user.step_up_until.filter(|t| *t > now_ms()).map(Timestamp);
    Ok(Json(Me {
        user: SessionUser {
            id: user.user_id,
            email: user.email,
            role: user.role.as_str().to_owned(),
        },
        organisation: SessionOrganisation {
            id: user.org_id,
            name,
        },
        organisations,
        csrf_token,
        step_up_until,
    }))
}

/// Ask for a step-up code.
///
/// No request body. Emails the signed-in address a code that opens this session's 10-minute
/// step-up window (`POST /auth/step-up/verify`).
#[utoipa::path(
    post, path = "/auth/step-up", tag = "sign-in",
    responses(
        (status = 200, description = "A code is on its way", body = StepUpChallenge),
        (status = 429, description = "`OTP_COOLDOWN` or `OTP_RATE_LIMITED` (with `Retry-After`)", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn start_step_up(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
) -> ApiResult<Json<StepUpChallenge>> {
    let challenge = otp::issue(&state, Purpose::StepUp, &user, &user.session_id, &client).await?;
    let audit = AuditEntry::by_user(&user, "session.step_up.request").on(&user.session_id);
    record_now(&state.db, &audit, &client).await?;
    Ok(Json(StepUpChallenge {
        challenge_id: challenge.id,
        expires_at: Timestamp(challenge.expires_at),
    }))
}

/// Close the step-up window.
///
/// Closes this session's step-up window now (e.g. before leaving the desk); the next
/// sensitive call asks for a code again.
#[utoipa::path(
    delete, path = "/auth/step-up", tag = "sign-in",
    responses(
        (status = 204, description = "The window is closed"),
    ),
    security(("session" = [])),
)]
async fn end_step_up(State(state): State<AppState>, user: CurrentUser) -> ApiResult<StatusCode> {
    store::sessions::close_step_up(&state.db, &user.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Verify a step-up code.
///
/// Opens this session's step-up window for 10 minutes.
#[utoipa::path(
    post, path = "/auth/step-up/verify", tag = "sign-in",
    request_body = VerifyCode,
    responses(
        (status = 200, description = "The window is open", body = StepUpOpened),
        (status = 401, description = "`OTP_INVALID`", body = ErrorBody),
        (status = 404, description = "`OTP_NOT_FOUND`", body = ErrorBody),
        (status = 410, description = "`OTP_CONSUMED`, `OTP_EXPIRED` or `OTP_TOO_MANY_ATTEMPTS`", body = ErrorBody),
        (status = "4XX", description = "`NOT_SIGNED_IN`, `CSRF_TOKEN_INVALID`, `OTP_RATE_LIMITED` or an invalid body", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn verify_step_up(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(body): JsonBody<VerifyCode>,
) -> ApiResult<Json<StepUpOpened>> {
    let entry = AuditEntry::by_user(&user, "session.step_up").on(&user.session_id);
    let redeemed = otp::redeem(
        &state,
        &body.challenge_id,
        Purpose::StepUp,
        &user,
        &user.session_id,
        &body.code,
        &client,
    )
    .await;
    match redeemed {
        Ok(until) => {
            record_now(&state.db, &entry, &client).await?;
            Ok(Json(StepUpOpened {
                step_up_until: Timestamp(until),
            }))
        }
        Err(e) => {
            let failed = entry.failed().with(json!({ "reason": e.reason }));
            record_now(&state.db, &failed, &client).await?;
            Err(e)
        }
    }
}

/// Switch organisation.
///
/// Moves this browser to the same address's membership in another organisation: a new
/// session there (no step-up window); this one ends.
#[utoipa::path(
    post, path = "/auth/switch", tag = "sign-in",
    request_body = SwitchOrganisation,
    responses(
        (status = 201, description = "Switched; `Set-Cookie` carries the new session and CSRF cookies", body = Switched,
            headers(("set-cookie" = String, description = "keygate_session and keygate_csrf"))),
        (status = 404, description = "The address is not a member of that organisation", body = ErrorBody),
    ),
    security(("session" = [])),
)]
async fn switch_organisation(
    State(state): State<AppState>,
    user: CurrentUser,
    client: ClientInfo,
    JsonBody(body): JsonBody<SwitchOrganisation>,
) -> ApiResult<(StatusCode, HeaderMap, Json<Switched>)> {
    validate::id(&body.organisation_id, "organisation")?;
    let fresh = FreshSession::new();
    let session = fresh.opening(now_ms(), None);
    let org_id = body.organisation_id;
    let user_id = store::sessions::switch(
        &state.db,
        &user.email,
        &org_id,
        &user.session_id,
        &session,
        &client,
    )
    .await?;
    let (csrf, headers) = fresh.cookies(&state)?;
    Ok((
        StatusCode::CREATED,
        headers,
        Json(Switched {
            user: IdOnly { id: user_id },
            organisation: IdOnly { id: org_id },
            csrf_token: csrf,
        }),
    ))
}

/// A session about to be opened: its cookie value (256 bits from the OS CSPRNG, hex), id
/// and the cookie's digest (what is stored).
struct FreshSession {
    token: String,
    id: String,
    digest: String,
}

impl FreshSession {
    fn new() -> Self {
        let token = keygate_shared::random::hex_token() + &keygate_shared::random::hex_token();
        let digest = session_digest(&token);
        FreshSession {
            token,
            id: new_id(),
            digest,
        }
    }

    /// The row to store: from `now` for [`SESSION_TTL_MS`], step-up window open until
    /// `step_up_until` if given.
    fn opening(&self, now: i64, step_up_until: Option<i64>) -> NewSession<'_> {
        NewSession {
            id: &self.id,
            token_digest: &self.digest,
            now,
            expires_at: now + SESSION_TTL_MS,
            step_up_until,
        }
    }

    /// Its CSRF token and the `Set-Cookie` headers that hand both to the browser.
    fn cookies(&self, state: &AppState) -> ApiResult<(String, HeaderMap)> {
        let csrf = csrf_token(state.keys.csrf_key(), &self.id);
        let headers = session_cookies(state, &self.token, &csrf, SESSION_TTL_MS / 1000)?;
        Ok((csrf, headers))
    }
}

/// `Set-Cookie` for the session cookie (HttpOnly) and the CSRF cookie (readable by the
/// dashboard's script): `__Host-` prefixed and `Secure` when cookies are secure, always
/// `Path=/`, no `Domain`, `SameSite=Strict`. Empty values with `max_age` 0 clear them.
fn session_cookies(
    state: &AppState,
    token: &str,
    csrf: &str,
    max_age: i64,
) -> ApiResult<HeaderMap> {
    let secure = state.settings.secure_cookies;
    let flag = if secure { "; Secure" } else { "" };
    let cookie = |base: &str, value: &str, extra: &str| {
        let name = cookie_name(base, secure);
        format!("{name}={value}; Path=/{extra}; SameSite=Strict; Max-Age={max_age}{flag}")
    };
    let mut headers = HeaderMap::new();
    for value in [
        cookie(SESSION_COOKIE, token, "; HttpOnly"),
        cookie(CSRF_COOKIE, csrf, ""),
    ] {
        headers.append(
            header::SET_COOKIE,
            HeaderValue::from_str(&value).map_err(ApiError::internal)?,
        );
    }
    Ok(headers)
}
