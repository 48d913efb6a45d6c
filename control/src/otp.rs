//! Email one-time passwords: issuing a challenge (code generated, hashed, emailed) and
//! redeeming it. The policy numbers and the hashing come from `keygate_shared::otp`:
//! 6 digits, 10 minutes, single use, at most 5 wrong tries, a cap per address per hour, and
//! each code bound to its challenge, purpose, user and subject.

use keygate_shared::otp::{self as policy, Binding, Purpose};

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::http::{AppState, ClientInfo};
use crate::ids::{new_id, now_ms, rfc3339};
use crate::mail::Message;
use crate::store::WriteTx;
use crate::with_db;

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

/// Counts one hit in `bucket`'s fixed window of `window_secs` and returns the window's hits,
/// this one included: one upsert, so parallel requests each see a distinct count on both
/// databases.
pub(crate) async fn bump_window(
    state: &AppState,
    bucket: &str,
    window_secs: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let start = policy::window_start(now, window_secs);
    with_db!(&state.db, |pool| {
        sqlx::query_scalar(
            "INSERT INTO rate_windows (bucket, window_start, hits, expires_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_windows.hits + 1
             RETURNING hits",
        )
        .bind(bucket)
        .bind(start)
        .bind(start + window_secs * 1000)
        .fetch_one(pool)
        .await
    })
}

/// The hits so far in `bucket`'s current window.
async fn window_hits(
    state: &AppState,
    bucket: &str,
    window_secs: i64,
    now: i64,
) -> Result<i64, sqlx::Error> {
    let start = policy::window_start(now, window_secs);
    let hits: Option<i64> = with_db!(&state.db, |pool| {
        sqlx::query_scalar("SELECT hits FROM rate_windows WHERE bucket = $1 AND window_start = $2")
            .bind(bucket)
            .bind(start)
            .fetch_optional(pool)
            .await
    })?;
    Ok(hits.unwrap_or(0))
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
    let requests = bump_window(
        state,
        &client_bucket(
            "requests",
            client,
            user_id.filter(|_| purpose != Purpose::SignIn),
        ),
        policy::CLIENT_WINDOW_SECS,
        now,
    )
    .await?;
    if requests > i64::from(policy::MAX_REQUESTS_PER_CLIENT) {
        return Err(client_limited("code requests"));
    }
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
    let address_bucket = format!("otp-address:{}:{email}", purpose.as_str());
    let window_start = policy::window_start(now, policy::LIFETIME_SECS);
    type Live = (String, Option<String>, String, String, i64, i64);
    let outcome = with_db!(&state.db, |pool| {
        async {
        let mut tx = pool.begin_write().await?;
        // Count the request against the address; on PostgreSQL the upsert also holds the
        // row's lock until commit, so requests for one address decide one at a time.
        sqlx::query(
            "INSERT INTO rate_windows (bucket, window_start, hits, expires_at) VALUES ($1, $2, 1, $3)
             ON CONFLICT (bucket, window_start) DO UPDATE SET hits = rate_windows.hits + 1",
        )
        .bind(&address_bucket)
        .bind(window_start)
        .bind(window_start + policy::LIFETIME_SECS * 1000)
        .execute(&mut *tx)
        .await?;
        // Live codes for this (address, purpose, subject): a reveal of key B is not held up
        // by a code for key A (only the signed-in user can ask for those anyway).
        let live: Vec<Live> = sqlx::query_as(
            "SELECT id, user_id, subject, code_hash, created_at, expires_at FROM otp_challenges
              WHERE email = $1 AND purpose = $2 AND subject = $3 AND code_id IS NULL
                AND consumed_at IS NULL AND expires_at > $4
              ORDER BY created_at DESC, id DESC",
        )
        .bind(email)
        .bind(purpose.as_str())
        .bind(subject)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let same = live
            .iter()
            .find(|(_, owner, subj, ..)| subj == subject && owner.as_deref() == user_id);
        let decision = policy::issue_decision(
            now,
            live.first().map(|l| l.4),
            u32::try_from(live.len()).unwrap_or(u32::MAX),
            same.is_some(),
        );
        let (code_id, code_hash, expires_at) = match (decision, same) {
            (policy::IssueDecision::Mail, _) => (None, hash.clone(), now + policy::LIFETIME_SECS * 1000),
            (policy::IssueDecision::Absorb, Some((shared_id, _, _, shared_hash, _, shared_expiry))) => {
                (Some(shared_id.clone()), shared_hash.clone(), *shared_expiry)
            }
            (policy::IssueDecision::Wait(_), _) | (policy::IssueDecision::Absorb, None) => {
                tx.rollback().await?;
                return Ok(Err(secs_of(decision)));
            }
        };
        sqlx::query(
            "INSERT INTO otp_challenges (id, purpose, email, user_id, subject, code_hash, created_at, expires_at, ip, code_id, decoy)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&id)
        .bind(purpose.as_str())
        .bind(email)
        .bind(user_id)
        .bind(subject)
        .bind(&code_hash)
        .bind(now)
        .bind(expires_at)
        .bind(client.ip.as_deref())
        .bind(code_id.as_deref())
        .bind(!real)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(Ok((code_id.is_none(), expires_at)))
    }
    .await
    })?;
    match outcome {
        Ok((mailed, expires_at)) => Ok((
            Challenge { id, expires_at },
            (mailed && real).then_some(code),
        )),
        Err(wait) => Err(ApiError::too_many_requests(
            "OTP_COOLDOWN",
            format!(
                "a code was just sent; ask again in {wait} s (the code already sent still works)"
            ),
            wait as u64,
        )),
    }
}

fn secs_of(decision: policy::IssueDecision) -> i64 {
    match decision {
        policy::IssueDecision::Wait(s) => s,
        _ => policy::RESEND_AFTER_SECS,
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
    with_db!(&state.db, |pool| {
        sqlx::query("UPDATE sessions SET step_up_until = $1 WHERE id = $2")
            .bind(until)
            .bind(session_id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
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
/// Every check-then-act is one conditional statement: a wrong code spends one of the
/// challenge's attempts with `... WHERE attempts < MAX_ATTEMPTS`, so parallel guesses get
/// exactly `MAX_ATTEMPTS` judgements on both databases; a right code consumes the code (every
/// challenge sharing it) with `... WHERE consumed_at IS NULL`, so it works once.
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
    if window_hits(state, &wrong_bucket, policy::CLIENT_WINDOW_SECS, now).await?
        >= i64::from(policy::MAX_WRONG_PER_CLIENT)
    {
        return Err(client_limited("wrong codes"));
    }
    type Row = (
        String,
        String,
        Option<String>,
        String,
        String,
        i64,
        Option<i64>,
        Option<String>,
    );
    // Codes hashed under the previous master key (during a rotation) still verify.
    let peppers: Vec<Vec<u8>> = state
        .keys
        .otp_peppers()
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    enum Outcome {
        Unknown,
        Consumed,
        Expired,
        Dead,
        Wrong { left: i64 },
        Ok(Redeemed),
    }
    let max = i64::from(policy::MAX_ATTEMPTS);
    let row: Option<Row> = with_db!(&state.db, |pool| {
        sqlx::query_as(
            "SELECT purpose, email, user_id, subject, code_hash, expires_at, consumed_at, code_id
               FROM otp_challenges WHERE id = $1",
        )
        .bind(challenge_id)
        .fetch_optional(pool)
        .await
    })?;
    let outcome = match row {
        None => Outcome::Unknown,
        Some((p, email, owner, subject, hash, expires_at, consumed_at, code_id)) => {
            if p != purpose.as_str() || !belongs(owner.as_deref(), &email, &subject) {
                Outcome::Unknown
            } else if consumed_at.is_some() {
                Outcome::Consumed
            } else if now >= expires_at {
                Outcome::Expired
            } else {
                let code_root = code_id.unwrap_or_else(|| challenge_id.to_owned());
                let binding_user = owner.clone().unwrap_or_else(|| email.clone());
                let binding = Binding {
                    challenge_id: &code_root,
                    purpose,
                    user: &binding_user,
                    subject: &subject,
                };
                let right = peppers
                    .iter()
                    .any(|pepper| policy::verify(pepper, &binding, code, &hash));
                with_db!(&state.db, |pool| {
                    async {
                        // Judging spends an attempt either way, so a challenge answers at most
                        // MAX_ATTEMPTS times, right or wrong, however many arrive at once.
                        let spent: Option<i64> = sqlx::query_scalar(
                            "UPDATE otp_challenges SET attempts = attempts + 1
                              WHERE id = $1 AND attempts < $2 AND consumed_at IS NULL
                              RETURNING attempts",
                        )
                        .bind(challenge_id)
                        .bind(max)
                        .fetch_optional(pool)
                        .await?;
                        let Some(spent) = spent else {
                            let consumed: Option<i64> = sqlx::query_scalar(
                                "SELECT consumed_at FROM otp_challenges WHERE id = $1",
                            )
                            .bind(challenge_id)
                            .fetch_one(pool)
                            .await?;
                            return Ok::<_, sqlx::Error>(if consumed.is_some() {
                                Outcome::Consumed
                            } else {
                                Outcome::Dead
                            });
                        };
                        if !right {
                            return Ok(Outcome::Wrong { left: max - spent });
                        }
                        let done = sqlx::query(
                            "UPDATE otp_challenges SET consumed_at = $1
                              WHERE (id = $2 OR code_id = $2) AND consumed_at IS NULL",
                        )
                        .bind(now)
                        .bind(&code_root)
                        .execute(pool)
                        .await?
                        .rows_affected();
                        Ok(if done > 0 {
                            Outcome::Ok(Redeemed {
                                user_id: owner,
                                subject,
                            })
                        } else {
                            Outcome::Consumed
                        })
                    }
                    .await
                })?
            }
        }
    };
    let gone = |reason, message: &str| {
        ApiError::new(axum::http::StatusCode::GONE, reason, message.to_owned())
    };
    if matches!(outcome, Outcome::Wrong { .. }) {
        bump_window(state, &wrong_bucket, policy::CLIENT_WINDOW_SECS, now).await?;
    }
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

/// Deletes rate windows that have ended and challenges that expired (decoys at once, real
/// ones a day later, for the audit trail's sake). Returns the rows deleted.
/// `crate::jobs::retention::run_otp_sweeper` runs it periodically.
pub async fn sweep(db: &crate::store::Db, now: i64) -> Result<u64, sqlx::Error> {
    const DAY_MS: i64 = 24 * 60 * 60 * 1000;
    with_db!(db, |pool| {
        async {
            let windows = sqlx::query("DELETE FROM rate_windows WHERE expires_at < $1")
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected();
            let challenges = sqlx::query(
                "DELETE FROM otp_challenges
                  WHERE (decoy AND expires_at < $1) OR expires_at < $2",
            )
            .bind(now)
            .bind(now - DAY_MS)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(windows + challenges)
        }
        .await
    })
}
