//! Record versions from a hybrid logical clock: wall-clock milliseconds with a counter.
//!
//! A version is `(ms since VERSION_EPOCH_MS) << COUNTER_BITS`, plus a counter for changes in
//! the same millisecond. The next version is the larger of "now" and "the last one + 1"
//! ([`next_version`]), so versions never go backwards even if the wall clock does, and they
//! stay ahead of anything written before: a database restored from yesterday or a fresh one
//! starts from the current time, not from 1. When the counter overflows (more than
//! 2^[`COUNTER_BITS`] changes in one millisecond) the clock simply runs a little ahead of the
//! wall clock until real time catches up.
//!
//! The control plane persists the last version in one database row and advances it with one
//! conditional statement in the same transaction as the outbox row (the statement mirrors
//! [`next_version`]); when the edge reports that it holds a newer version of a key than the
//! control plane sent, the clock jumps past it ([`catch_up`]) and the key is re-issued.
//!
//! **Bit split.** Versions must stay at or below [`MAX_VERSION`] = 2^53 - 1, the largest
//! integer JavaScript reads exactly. With [`COUNTER_BITS`] = 12 (4,096 changes per
//! millisecond before the clock runs ahead), 41 bits remain for milliseconds: 2^41 ms is about
//! 69.7 years after [`VERSION_EPOCH_MS`] (2025-01-01), that is until September 2094.
//!
//! ```
//! use keygate_shared::clock::{next_version, wall_clock_version, MAX_VERSION};
//!
//! let now = 1_800_000_000_000; // Unix ms
//! let v1 = next_version(0, now).unwrap();
//! assert_eq!(v1, wall_clock_version(now));
//! // The same millisecond, or a wall clock that went backwards: still increasing.
//! let v2 = next_version(v1, now - 5_000).unwrap();
//! assert_eq!(v2, v1 + 1);
//! assert!(v2 <= MAX_VERSION);
//! ```

/// The clock's epoch in Unix milliseconds: 2025-01-01T00:00:00Z.
pub const VERSION_EPOCH_MS: u64 = 1_735_689_600_000;

/// Low bits of a version holding the counter within one millisecond.
pub const COUNTER_BITS: u32 = 12;

/// The largest version: 2^53 - 1, exact in a JavaScript number.
pub const MAX_VERSION: u64 = (1 << 53) - 1;

/// The clock cannot advance: versions would pass [`MAX_VERSION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockExhausted;

impl core::fmt::Display for ClockExhausted {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "record versions would exceed 2^53 - 1")
    }
}

impl std::error::Error for ClockExhausted {}

/// The version the wall clock alone gives at `now_unix_ms` (counter 0). Times before the
/// epoch give 0; times past the clock's range give [`MAX_VERSION`] + 1 (refused by
/// [`check_version`]).
pub fn wall_clock_version(now_unix_ms: u64) -> u64 {
    let ms = now_unix_ms.saturating_sub(VERSION_EPOCH_MS);
    if ms > (MAX_VERSION >> COUNTER_BITS) {
        return MAX_VERSION + 1;
    }
    ms << COUNTER_BITS
}

/// The version after `last` at `now_unix_ms`: the wall clock's version if it is ahead, else
/// `last + 1`. Never returns a version `<= last`.
pub fn next_version(last: u64, now_unix_ms: u64) -> Result<u64, ClockExhausted> {
    check_version(wall_clock_version(now_unix_ms).max(last.saturating_add(1)))
}

/// Versions a catch-up always leaves unused below [`MAX_VERSION`] (2^32, four billion
/// changes), so a bogus report of a huge version cannot exhaust the clock and stop all writes.
pub const CATCH_UP_HEADROOM: u64 = 1 << 32;

/// The clock's last version after learning that `seen` exists somewhere (the edge holds it):
/// the next version issued will be greater than both. A `seen` within [`CATCH_UP_HEADROOM`]
/// of [`MAX_VERSION`] is refused (the key then cannot be re-issued past it, which is logged):
/// a bogus report must not exhaust the clock.
pub fn catch_up(last: u64, seen: u64) -> Result<u64, ClockExhausted> {
    if seen > MAX_VERSION - CATCH_UP_HEADROOM {
        return Err(ClockExhausted);
    }
    Ok(last.max(seen))
}

/// `version` if it is a valid version (at most [`MAX_VERSION`]).
pub fn check_version(version: u64) -> Result<u64, ClockExhausted> {
    if version <= MAX_VERSION {
        Ok(version)
    } else {
        Err(ClockExhausted)
    }
}

/// The Unix milliseconds a version was issued at (at the latest; a clock running ahead of
/// real time issues versions that read a little later). For display and diagnostics.
pub fn version_time_ms(version: u64) -> u64 {
    (version >> COUNTER_BITS) + VERSION_EPOCH_MS
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: u64 = 1_800_000_000_000;

    #[test]
    fn the_bit_split_lasts_until_2094() {
        // 2094-01-01T00:00:00Z is still representable; 2095-01-01 is not.
        assert!(wall_clock_version(3_913_142_400_000) <= MAX_VERSION);
        assert!(wall_clock_version(3_944_678_400_000) > MAX_VERSION);
        assert_eq!(next_version(0, 3_944_678_400_000), Err(ClockExhausted));
    }

    #[test]
    fn versions_follow_the_wall_clock_and_decode_back() {
        let v = next_version(0, NOW).unwrap();
        assert_eq!(version_time_ms(v), NOW);
        let later = next_version(v, NOW + 1).unwrap();
        assert_eq!(later, v + (1 << COUNTER_BITS));
        // Anything a row-id scheme issued (small integers) is far below today's versions.
        assert!(next_version(1_000_000, NOW).unwrap() > 1_000_000_000);
    }

    #[test]
    fn a_counter_overflow_runs_ahead_and_never_repeats() {
        let mut v = next_version(0, NOW).unwrap();
        for _ in 0..(1u64 << COUNTER_BITS) + 10 {
            let n = next_version(v, NOW).unwrap();
            assert_eq!(n, v + 1);
            v = n;
        }
        assert!(version_time_ms(v) > NOW, "ran ahead of the wall clock");
    }

    #[test]
    fn catching_up_jumps_past_what_the_edge_holds_but_not_past_the_maximum() {
        let last = next_version(0, NOW).unwrap();
        let held = last + 1_000_000;
        let caught = catch_up(last, held).unwrap();
        assert!(next_version(caught, NOW).unwrap() > held);
        assert_eq!(catch_up(held, last), Ok(held), "never moves backwards");
        assert_eq!(catch_up(last, MAX_VERSION + 1), Err(ClockExhausted));
        assert_eq!(catch_up(last, MAX_VERSION), Err(ClockExhausted));
        let highest = MAX_VERSION - CATCH_UP_HEADROOM;
        assert_eq!(catch_up(last, highest), Ok(highest));
        assert!(
            next_version(highest, NOW).is_ok(),
            "room is left after a catch-up"
        );
        assert_eq!(next_version(MAX_VERSION, NOW), Err(ClockExhausted));
    }

    proptest! {
        #[test]
        fn next_is_always_greater_and_bounded(last in 0u64..=MAX_VERSION, now in 0u64..4_000_000_000_000) {
            match next_version(last, now) {
                Ok(v) => {
                    prop_assert!(v > last);
                    prop_assert!(v <= MAX_VERSION);
                    prop_assert!(v >= wall_clock_version(now));
                }
                Err(ClockExhausted) => {
                    prop_assert!(last == MAX_VERSION || wall_clock_version(now) > MAX_VERSION);
                }
            }
        }
    }
}
