//! Email one-time passwords: issuing a challenge (code generated, hashed, emailed) and
//! redeeming it. The policy numbers and the hashing come from `keygate_shared::otp`:
//! 6 digits, 10 minutes, single use, at most 5 wrong tries, a cap per address per hour, and
//! each code bound to its challenge, purpose, user and subject.

use keygate_shared::otp::{self as policy, Binding, Purpose};

use crate::error::{ApiError, ApiResult};
use crate::http::auth::CurrentUser;
use crate::http::{AppState, ClientInfo};
use crate::ids::{new_id, now_ms, rfc3339};
use crate::mail::Message;
use crate::store;
use crate::store::otp::{Attempt, Issued, NewChallenge};

/// An issued challenge (the code went by email).
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Its id, which the client sends back with the code.
    pub id: String,
    /// When the code stops working (Unix ms).
    pub expires_at: i64,
}

/// Issues a step-up challenge for a signed-in user (e.g. revealing key `subject`) and emails
/// the code to their registered address.
pub async fn issue(
    state: &AppState,
    purpose: Purpose,
    user: &CurrentUser,
    subject: &str,
    client: &ClientInfo,
) -> ApiResult<Challenge> {
    let (challenge, code) = create(
        state,
        purpose,
        &user.email,
        Some(&user.user_id),
        subject,
        client,
        true,
    )
    .await?;
    if let Some(code) = code {
        send_code(
            state,
            purpose,
            &user.email,
            code.expose(),
            challenge.expires_at,
        );
    }
    Ok(challenge)
}

/// Whose budget a request spends: a signed-in user's own (reveals, step-up: colleagues behind
/// one office NAT never share it), else the client IP's (sign-in).
fn client_bucket(kind: &str, client: &ClientInfo, user_id: Option<&str>) -> String {
    match user_id {
        Some(user) => format!("otp-{kind}:user:{user}"),
        None => format!("otp-{kind}:{}", client.ip.as_deref().unwrap_or("unknown")),
    }
}

fn client_limited(what: &str) -> ApiError {
    ApiError::too_many_requests(
        "OTP_RATE_LIMITED",
        format!("too many {what} from your network; try again in a few minutes"),
        policy::CLIENT_WINDOW_SECS as u64,
    )
}

/// Stores a challenge and decides whether a code is mailed for it (see
/// `keygate_shared::otp::issue_decision`): `Some(code)` to mail, `None` when the request was
/// absorbed into the newest live code already in the mailbox. `real == false` stores a decoy
/// whose hash no code matches (an unknown sign-in address), limited and timed like a real one.
pub(crate) async fn create(
    state: &AppState,
    purpose: Purpose,
    email: &str,
    user_id: Option<&str>,
    subject: &str,
    client: &ClientInfo,
    real: bool,
) -> ApiResult<(Challenge, Option<policy::OtpCode>)> {
    let now = now_ms();
    let bucket = client_bucket(
        "requests",
        client,
        user_id.filter(|_| purpose != Purpose::SignIn),
    );
    let requests =
        store::otp::bump_window(&state.db, &bucket, policy::CLIENT_WINDOW_SECS, now).await?;
    if requests > i64::from(policy::MAX_REQUESTS_PER_CLIENT) {
        return Err(client_limited("code requests"));
    }
    let id = new_id();
    let code = policy::generate();
    let code_hash = if real {
        let binding = Binding {
            challenge_id: &id,
            purpose,
            user: user_id.unwrap_or(email),
            subject,
        };
        policy::hash(state.keys.otp_pepper(), &binding, code.expose())
    } else {
        keygate_shared::random::hex_token()
    };
    let challenge = NewChallenge {
        id: &id,
        purpose,
        email,
        user_id,
        subject,
        code_hash: &code_hash,
        decoy: !real,
        ip: client.ip.as_deref(),
        now,
    };
    match store::otp::issue(&state.db, &challenge).await? {
        Issued::Mail { expires_at } => Ok((Challenge { id, expires_at }, real.then_some(code))),
        Issued::Absorbed { expires_at } => Ok((Challenge { id, expires_at }, None)),
        Issued::Wait(wait) => Err(ApiError::too_many_requests(
            "OTP_COOLDOWN",
            format!(
                "a code was just sent; ask again in {wait} s (the code already sent still works)"
            ),
            wait as u64,
        )),
    }
}

/// Queues the email with a code; the mail queue sends it off the request path, so a request
/// answers as fast whether or not a code was mailed.
pub(crate) fn send_code(
    state: &AppState,
    purpose: Purpose,
    email: &str,
    code: &str,
    expires_at: i64,
) {
    let (subject, what) = match purpose {
        Purpose::SignIn => ("Your keygate sign-in code", "sign in to keygate"),
        Purpose::RevealSdkKey => (
            "Your keygate code to reveal an SDK key",
            "reveal an SDK key in keygate",
        ),
        Purpose::StepUp => (
            "Your keygate confirmation code",
            "confirm a sensitive change in keygate",
        ),
    };
    let text = format!(
        "Your code to {what} is:\n\n    {code}\n\n\
         It expires in {} minutes (at {} UTC) and works once.\n\n\
         If you did not ask for it, ignore this email: nobody can use it without access to \
         your inbox. Never share it, not even with keygate staff.\n",
        policy::LIFETIME_SECS / 60,
        rfc3339(expires_at),
    );
    state.mail.enqueue(Message {
        to: email.to_owned(),
        subject: subject.to_owned(),
        text,
    });
}

/// What a redeemed challenge was bound to.
#[derive(Debug, Clone)]
pub struct Redeemed {
    /// The user it was issued to (`None`: a first sign-in by email).
    pub user_id: Option<String>,
    /// The subject it unlocks.
    pub subject: String,
}

/// Redeems a challenge for a signed-in user's step-up: the challenge must have been issued to
/// `user` for `purpose` and `subject`. A verified code also opens the session's step-up
/// window (`keygate_shared::authz::STEP_UP_WINDOW_SECS`).
pub async fn redeem(
    state: &AppState,
    challenge_id: &str,
    purpose: Purpose,
    user: &CurrentUser,
    subject: &str,
    code: &str,
    client: &ClientInfo,
) -> ApiResult<i64> {
    let redeemed = redeem_checked(
        state,
        challenge_id,
        purpose,
        code,
        client,
        Some(&user.user_id),
        |owner, _email, subj| owner == Some(user.user_id.as_str()) && subj == subject,
    )
    .await?;
    debug_assert_eq!(redeemed.subject, subject);
    open_step_up(state, &user.session_id).await
}

/// Opens (or extends) session `session_id`'s step-up window from now; returns when it closes.
pub async fn open_step_up(state: &AppState, session_id: &str) -> ApiResult<i64> {
    let until = keygate_shared::authz::step_up_until(now_ms());
    store::sessions::open_step_up(&state.db, session_id, until).await?;
    Ok(until)
}

fn unknown_challenge() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "OTP_NOT_FOUND",
        "no such code request; ask for a new code",
    )
}

/// Redeems challenge `challenge_id` if `belongs(user_id, email, subject)` accepts it.
///
/// Every check-then-act is one conditional statement (`crate::store::otp::attempt`): a
/// challenge answers at most `MAX_ATTEMPTS` times, right or wrong, however many guesses
/// arrive at once, and a right code works once.
pub(crate) async fn redeem_checked(
    state: &AppState,
    challenge_id: &str,
    purpose: Purpose,
    code: &str,
    client: &ClientInfo,
    signed_in: Option<&str>,
    belongs: impl FnOnce(Option<&str>, &str, &str) -> bool,
) -> ApiResult<Redeemed> {
    if !crate::ids::is_valid_id(challenge_id) {
        return Err(unknown_challenge());
    }
    let now = now_ms();
    let wrong_bucket = client_bucket("wrong", client, signed_in);
    let window = policy::CLIENT_WINDOW_SECS;
    if store::otp::window_hits(&state.db, &wrong_bucket, window, now).await?
        >= i64::from(policy::MAX_WRONG_PER_CLIENT)
    {
        return Err(client_limited("wrong codes"));
    }
    let stored = store::otp::challenge(&state.db, challenge_id).await?;
    let Some(c) = stored.filter(|c| {
        c.purpose == purpose.as_str() && belongs(c.user_id.as_deref(), &c.email, &c.subject)
    }) else {
        return Err(unknown_challenge());
    };
    if c.consumed {
        return Err(gone(
            "OTP_CONSUMED",
            "this code was already used; ask for a new one",
        ));
    }
    if now >= c.expires_at {
        return Err(gone(
            "OTP_EXPIRED",
            "this code has expired; ask for a new one",
        ));
    }
    let code_root = c.code_id.clone().unwrap_or_else(|| challenge_id.to_owned());
    let right = is_right(state, &c, &code_root, purpose, code);
    let max = i64::from(policy::MAX_ATTEMPTS);
    let attempt = store::otp::attempt(&state.db, challenge_id, &code_root, max, right, now).await?;
    if matches!(attempt, Attempt::Wrong { .. }) {
        store::otp::bump_window(&state.db, &wrong_bucket, window, now).await?;
    }
    match attempt {
        Attempt::Redeemed => Ok(Redeemed {
            user_id: c.user_id,
            subject: c.subject,
        }),
        refused => Err(refusal(refused)),
    }
}

/// Whether `code` is challenge `c`'s, whose code is rooted at challenge `code_root`. Codes
/// hashed under the previous master key (during a rotation) still verify.
fn is_right(
    state: &AppState,
    c: &store::otp::StoredChallenge,
    code_root: &str,
    purpose: Purpose,
    code: &str,
) -> bool {
    let binding = Binding {
        challenge_id: code_root,
        purpose,
        user: c.user_id.as_deref().unwrap_or(&c.email),
        subject: &c.subject,
    };
    state
        .keys
        .otp_peppers()
        .into_iter()
        .any(|pepper| policy::verify(pepper, &binding, code, &c.code_hash))
}

/// The answer to an attempt that redeemed nothing.
fn refusal(attempt: Attempt) -> ApiError {
    match attempt {
        Attempt::Redeemed | Attempt::Consumed => gone(
            "OTP_CONSUMED",
            "this code was already used; ask for a new one",
        ),
        Attempt::Dead | Attempt::Wrong { left: ..=0 } => gone(
            "OTP_TOO_MANY_ATTEMPTS",
            "too many wrong codes; ask for a new one",
        ),
        Attempt::Wrong { left } => ApiError::unauthorized(
            "OTP_INVALID",
            format!("that code is not right; {left} tries left"),
        ),
    }
}

/// `410 <reason>`: the challenge can no longer be redeemed.
fn gone(reason: &'static str, message: &str) -> ApiError {
    ApiError::new(axum::http::StatusCode::GONE, reason, message)
}
