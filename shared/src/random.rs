//! The one door to the operating system's CSPRNG (`getrandom`; `crypto.getRandomValues` on
//! wasm). Keygate has no other source of randomness.

/// Fills `buf` from the OS CSPRNG.
///
/// # Panics
/// If the operating system has no working random source. Issuing a key without one would be
/// worse than stopping, so this is the single deliberate panic of the crate.
pub fn fill(buf: &mut [u8]) {
    getrandom::getrandom(buf).expect("the OS random number generator failed");
}

/// 16 random bytes as 32 lowercase hex characters: nonces and opaque identifiers.
pub fn hex_token() -> String {
    let mut bytes = [0u8; 16];
    fill(&mut bytes);
    hex::encode(bytes)
}
