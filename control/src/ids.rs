//! Identifiers and clocks: UUIDv7 ids (time-ordered, so indexes stay append-mostly) and
//! Unix-millisecond timestamps, the one time format stored in both databases.

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether a string looks like an id keygate issued; cheap guard before a lookup so that a
/// malformed id is a clean 404 rather than a database round trip.
pub fn is_valid_id(s: &str) -> bool {
    s.len() == 36 && uuid::Uuid::parse_str(s).is_ok()
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A Unix-millisecond time as RFC 3339 (`2026-11-28T10:35:16.123Z`), as the APIs show times.
pub fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Now, in Unix seconds (what signed edge messages carry).
pub fn unix_secs() -> u64 {
    u64::try_from(now_ms() / 1000).unwrap_or_default()
}
