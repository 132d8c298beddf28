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

/// A decision that found nothing, with `origins` as findings (where they were found).
pub(crate) fn decision_found_in(origins: &[&str]) -> crate::policy::decide::Decision {
    crate::policy::decide::Decision {
        verdict: crate::policy::decide::Verdict::Deliver,
        rules: Vec::new(),
        findings: origins
            .iter()
            .map(|o| crate::policy::detect::Finding {
                detector: "bsn".into(),
                label: "BSN".into(),
                origin: o.to_string(),
                excerpt: "1****2333".into(),
            })
            .collect(),
        unscannable: Vec::new(),
        sender: Default::default(),
        external: Vec::new(),
        reasons: Vec::new(),
    }
}
