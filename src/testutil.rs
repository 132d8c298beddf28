//! Helpers shared by unit tests.

/// A deterministic xorshift64 sequence: the same generated inputs on every run. The generator
/// the tests used inline (`x ^= x << 13; x ^= x >> 7; x ^= x << 17`), as a closure.
pub(crate) fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}
