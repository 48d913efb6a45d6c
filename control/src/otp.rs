//! Email one-time passwords: issuing a challenge (code generated, hashed, emailed) and
//! redeeming it. The policy numbers and the hashing come from `keygate_shared::otp`:
//! 6 digits, 10 minutes, single use, at most 5 wrong tries, a cap per address per hour, and
//! each code bound to its challenge, purpose, user and subject.

use keygate_shared::otp::{self as policy, Binding, Purpose};

use crate::auth::CurrentUser;
use crate::db::WriteTx;
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, ClientInfo};
use crate::ids::{new_id, now_ms, rfc3339};
use crate::mail::Message;
use crate::with_db;

/// An issued challenge (the code went by email).
#[derive(Debug, Clone)]
pub struct Challenge {
    /// Its id, which the client sends back with the code.
    pub id: String,
    /// When the code stops working (Unix ms).
    pub expires_at: i64,
}

const HOUR_MS: i64 = 60 * 60 * 1000;

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
    send_code(
        state,
        purpose,
        &user.email,
        code.expose(),
        challenge.expires_at,
    )
    .await?;
    Ok(challenge)
}

/// Stores a challenge. `real == false` stores one whose hash no code can match (a decoy for
/// unknown sign-in addresses, so they are rate-limited and timed like known ones).
pub(crate) async fn create(
    state: &AppState,
    purpose: Purpose,
    email: &str,
    user_id: Option<&str>,
    subject: &str,
    client: &ClientInfo,
    real: bool,
) -> ApiResult<(Challenge, policy::OtpCode)> {
    let id = new_id();
    let code = policy::generate();
    let binding_user = user_id.unwrap_or(email);
    let hash = if real {
        policy::hash(
            state.keys.otp_pepper(),
            &Binding {
                challenge_id: &id,
                purpose,
                user: binding_user,
                subject,
            },
            code.expose(),
        )
    } else {
        keygate_shared::random::hex_token()
    };
    let now = now_ms();
    let expires_at = now + policy::LIFETIME_SECS * 1000;
    let recent: i64 = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let recent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM otp_challenges WHERE email = $1 AND created_at > $2",
        )
        .bind(email)
        .bind(now - HOUR_MS)
        .fetch_one(&mut *tx)
        .await?;
        if recent < i64::from(policy::MAX_CODES_PER_HOUR) {
            sqlx::query(
                "INSERT INTO otp_challenges (id, purpose, email, user_id, subject, code_hash, created_at, expires_at, ip)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&id)
            .bind(purpose.as_str())
            .bind(email)
            .bind(user_id)
            .bind(subject)
            .bind(&hash)
            .bind(now)
            .bind(expires_at)
            .bind(client.ip.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok::<i64, sqlx::Error>(recent)
    })?;
    if recent >= i64::from(policy::MAX_CODES_PER_HOUR) {
        return Err(ApiError::too_many_requests(
            "OTP_RATE_LIMITED",
            format!(
                "at most {} codes per hour can be sent to one address; try again later",
                policy::MAX_CODES_PER_HOUR
            ),
            15 * 60,
        ));
    }
    Ok((Challenge { id, expires_at }, code))
}

/// Emails a code.
pub(crate) async fn send_code(
    state: &AppState,
    purpose: Purpose,
    email: &str,
    code: &str,
    expires_at: i64,
) -> ApiResult<()> {
    let (subject, what) = match purpose {
        Purpose::SignIn => ("Your keygate sign-in code", "sign in to keygate"),
        Purpose::RevealSdkKey => (
            "Your keygate code to reveal an SDK key",
            "reveal an SDK key in keygate",
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
    state
        .mailer
        .send(&Message {
            to: email.to_owned(),
            subject: subject.to_owned(),
            text,
        })
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "sending a one-time code failed");
            ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "MAIL_UNAVAILABLE",
                "the email with your code could not be sent; try again shortly",
            )
        })
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
/// `user_id` for `purpose` and `subject`.
pub async fn redeem(
    state: &AppState,
    challenge_id: &str,
    purpose: Purpose,
    user_id: &str,
    subject: &str,
    code: &str,
) -> ApiResult<()> {
    let redeemed = redeem_checked(
        state,
        challenge_id,
        purpose,
        code,
        |owner, owner_email, subj| {
            let _ = owner_email;
            owner == Some(user_id) && subj == subject
        },
    )
    .await?;
    debug_assert_eq!(redeemed.subject, subject);
    Ok(())
}

fn unknown_challenge() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "OTP_NOT_FOUND",
        "no such code request; ask for a new code",
    )
}

/// Redeems challenge `challenge_id` if `belongs(user_id, email, subject)` accepts it.
pub(crate) async fn redeem_checked(
    state: &AppState,
    challenge_id: &str,
    purpose: Purpose,
    code: &str,
    belongs: impl FnOnce(Option<&str>, &str, &str) -> bool,
) -> ApiResult<Redeemed> {
    if !crate::ids::is_valid_id(challenge_id) {
        return Err(unknown_challenge());
    }
    type Row = (
        String,
        String,
        Option<String>,
        String,
        String,
        i64,
        i64,
        Option<i64>,
    );
    let pepper = state.keys.otp_pepper().to_vec();
    let now = now_ms();
    enum Outcome {
        Unknown,
        Consumed,
        Expired,
        Dead,
        Wrong { left: i64 },
        Ok(Redeemed),
    }
    let outcome = with_db!(&state.db, |pool| {
        let mut tx = pool.begin_write().await?;
        let row: Option<Row> = sqlx::query_as(
            "SELECT purpose, email, user_id, subject, code_hash, attempts, expires_at, consumed_at
               FROM otp_challenges WHERE id = $1",
        )
        .bind(challenge_id)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match row {
            None => Outcome::Unknown,
            Some((p, email, owner, subject, hash, attempts, expires_at, consumed_at)) => {
                if p != purpose.as_str() || !belongs(owner.as_deref(), &email, &subject) {
                    Outcome::Unknown
                } else if consumed_at.is_some() {
                    Outcome::Consumed
                } else if attempts >= i64::from(policy::MAX_ATTEMPTS) {
                    Outcome::Dead
                } else if now >= expires_at {
                    Outcome::Expired
                } else {
                    let binding_user = owner.clone().unwrap_or_else(|| email.clone());
                    let binding = Binding {
                        challenge_id,
                        purpose,
                        user: &binding_user,
                        subject: &subject,
                    };
                    if policy::verify(&pepper, &binding, code, &hash) {
                        let done = sqlx::query(
                            "UPDATE otp_challenges SET consumed_at = $1 WHERE id = $2 AND consumed_at IS NULL",
                        )
                        .bind(now)
                        .bind(challenge_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        if done == 1 {
                            Outcome::Ok(Redeemed {
                                user_id: owner,
                                subject,
                            })
                        } else {
                            Outcome::Consumed
                        }
                    } else {
                        sqlx::query(
                            "UPDATE otp_challenges SET attempts = attempts + 1 WHERE id = $1",
                        )
                        .bind(challenge_id)
                        .execute(&mut *tx)
                        .await?;
                        Outcome::Wrong {
                            left: i64::from(policy::MAX_ATTEMPTS) - attempts - 1,
                        }
                    }
                }
            }
        };
        tx.commit().await?;
        Ok::<Outcome, sqlx::Error>(outcome)
    })?;
    let gone = |reason, message: &str| {
        ApiError::new(axum::http::StatusCode::GONE, reason, message.to_owned())
    };
    match outcome {
        Outcome::Ok(r) => Ok(r),
        Outcome::Unknown => Err(unknown_challenge()),
        Outcome::Consumed => Err(gone(
            "OTP_CONSUMED",
            "this code was already used; ask for a new one",
        )),
        Outcome::Expired => Err(gone(
            "OTP_EXPIRED",
            "this code has expired; ask for a new one",
        )),
        Outcome::Dead | Outcome::Wrong { left: ..=0 } => Err(gone(
            "OTP_TOO_MANY_ATTEMPTS",
            "too many wrong codes; ask for a new one",
        )),
        Outcome::Wrong { left } => Err(ApiError::unauthorized(
            "OTP_INVALID",
            format!("that code is not right; {left} tries left"),
        )),
    }
}
