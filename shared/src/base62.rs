//! Base62 (`0-9A-Za-z`): the only alphabet key bodies and checksums use, so a key survives
//! copy-paste, URLs and double-click selection intact.

/// The 62 symbols, in value order.
pub const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The value of one base62 symbol, or `None` for anything outside the alphabet.
pub fn value(symbol: u8) -> Option<u8> {
    match symbol {
        b'0'..=b'9' => Some(symbol - b'0'),
        b'A'..=b'Z' => Some(symbol - b'A' + 10),
        b'a'..=b'z' => Some(symbol - b'a' + 36),
        _ => None,
    }
}

/// Encodes `n` as exactly `width` symbols, most significant first, zero-padded.
/// `n` must be below `62^width`; keygate only calls it with `u32` values and width 6.
pub fn encode_fixed(mut n: u64, out: &mut [u8]) {
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
}

/// Decodes a fixed-width base62 number; `None` if a symbol is outside the alphabet or the
/// value overflows `u64`.
pub fn decode_fixed(symbols: &[u8]) -> Option<u64> {
    symbols.iter().try_fold(0u64, |acc, &s| {
        acc.checked_mul(62)?.checked_add(u64::from(value(s)?))
    })
}

/// Fills `out` with uniformly random base62 symbols from the OS CSPRNG (rejection sampling,
/// so no symbol is more likely than another).
pub fn random_symbols(out: &mut [u8]) {
    let mut filled = 0;
    let mut pool = [0u8; 64];
    while filled < out.len() {
        crate::random::fill(&mut pool);
        for &byte in &pool {
            // 248 = 4 * 62: bytes at or above it would bias the low symbols.
            if byte < 248 {
                out[filled] = ALPHABET[usize::from(byte % 62)];
                filled += 1;
                if filled == out.len() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_round_trips_u32_range() {
        for n in [0u64, 1, 61, 62, 3843, u64::from(u32::MAX)] {
            let mut buf = [0u8; 6];
            encode_fixed(n, &mut buf);
            assert_eq!(decode_fixed(&buf), Some(n));
        }
    }

    #[test]
    fn symbols_outside_the_alphabet_have_no_value() {
        for s in [b'-', b'_', b' ', b'/', b'+', 0xff] {
            assert_eq!(value(s), None);
        }
        assert!(ALPHABET
            .iter()
            .enumerate()
            .all(|(i, &s)| value(s) == Some(i as u8)));
    }

    #[test]
    fn random_symbols_are_in_the_alphabet_and_vary() {
        let mut a = [0u8; 40];
        let mut b = [0u8; 40];
        random_symbols(&mut a);
        random_symbols(&mut b);
        assert!(a.iter().all(|&s| value(s).is_some()));
        assert_ne!(a, b);
    }
}
