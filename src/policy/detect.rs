//! Runs the detectors over everything inspection found.

use super::schema::DetectorType;
use super::validators::{self, Kind};
use super::{Detector, Policy};
use crate::inspect::Inspection;
use serde::{Deserialize, Serialize};

/// One thing found, safe to show: identifiers are masked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Finding {
    pub detector: String,
    pub label: String,
    pub origin: String,
    pub excerpt: String,
}

/// What the detectors found: which fired, and examples for the sender and the audit log.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scan {
    /// Per detector index: number of matches.
    pub counts: Vec<usize>,
    pub findings: Vec<Finding>,
}

impl Scan {
    pub fn fired(&self, policy: &Policy, detector: usize) -> bool {
        self.counts
            .get(detector)
            .is_some_and(|&n| n >= policy.detectors[detector].min_count)
    }
}

const CONTEXT: usize = 24;
const MAX_FINDINGS_PER_DETECTOR: usize = 5;

fn is_word_char(c: Option<char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric())
}

fn char_before(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn char_after(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

fn floor(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil(text: &str, mut i: usize) -> usize {
    while i < text.len() && !text.is_char_boundary(i) {
        i += 1;
    }
    i.min(text.len())
}

/// Context with every digit masked, so no identifier leaks through the surroundings.
fn masked_context(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_digit() { '*' } else { c })
        .collect()
}

fn excerpt(text: &str, start: usize, end: usize, shown: &str) -> String {
    let a = floor(text, start.saturating_sub(CONTEXT));
    let b = ceil(text, (end + CONTEXT).min(text.len()));
    format!(
        "{}{}{}{}{}",
        if a > 0 { "…" } else { "" },
        masked_context(&text[a..start]),
        shown,
        masked_context(&text[end..b]),
        if b < text.len() { "…" } else { "" }
    )
}

fn near_keyword(det: &Detector, text: &str, start: usize, end: usize) -> bool {
    if det.keywords.is_empty() {
        return true;
    }
    let a = floor(text, start.saturating_sub(det.keyword_distance));
    let b = ceil(text, (end + det.keyword_distance).min(text.len()));
    let window = &text[a..b];
    det.keywords.iter().any(|k| window.contains(k.as_str()))
}

/// One match of one detector in one text.
struct Hit {
    detector: usize,
    start: usize,
    end: usize,
    shown: String,
}

/// Every match of every detector in `text`, in detector order.
fn hits(policy: &Policy, wanted: validators::Wanted, text: &str) -> Vec<Hit> {
    let mut out = Vec::new();
    let ids_found = validators::find_all(text, wanted);
    if let Some(ac) = &policy.words {
        for m in ac.find_overlapping_iter(text) {
            let i = policy.word_owner[m.pattern().as_usize()];
            let d = &policy.detectors[i];
            let (s, e) = (m.start(), m.end());
            if !d.substring
                && (is_word_char(char_before(text, s)) || is_word_char(char_after(text, e)))
            {
                continue;
            }
            if !near_keyword(d, text, s, e) {
                continue;
            }
            out.push(Hit {
                detector: i,
                start: s,
                end: e,
                shown: text[s..e].to_string(),
            });
        }
    }
    for (i, d) in policy.detectors.iter().enumerate() {
        let found: Vec<(usize, usize, String)> = match d.kind {
            DetectorType::Words => continue,
            DetectorType::Regex => d
                .regex
                .as_ref()
                .map(|re| {
                    re.find_iter(text)
                        .map(|m| (m.start(), m.end(), masked_context(m.as_str())))
                        .collect()
                })
                .unwrap_or_default(),
            DetectorType::Bsn => ids(&ids_found.bsn, Kind::Bsn),
            DetectorType::Iban => ids(&ids_found.iban, Kind::Iban),
            DetectorType::Card => ids(&ids_found.card, Kind::Card),
        };
        for (start, end, shown) in found {
            if near_keyword(d, text, start, end) {
                out.push(Hit {
                    detector: i,
                    start,
                    end,
                    shown,
                });
            }
        }
    }
    out
}

/// Whether the match at `start..end` stands among words: of the tokens around it (40 bytes
/// either side, split at spaces, outer punctuation stripped), at least three and at least
/// half are words of two or more letters. Text reads so; binary data read as text is mostly
/// one- or two-character scraps with symbols in them.
fn among_words(text: &str, start: usize, end: usize) -> bool {
    let a = floor(text, start.saturating_sub(40));
    let b = ceil(text, (end + 40).min(text.len()));
    let around = [&text[a..start], &text[end..b]];
    let (mut tokens, mut words) = (0usize, 0usize);
    for t in around.iter().flat_map(|s| s.split(' ')) {
        let t = t.trim_matches(|c: char| !c.is_alphanumeric());
        if t.is_empty() {
            continue;
        }
        tokens += 1;
        if t.chars().count() >= 2 && t.chars().all(char::is_alphabetic) {
            words += 1;
        }
    }
    words >= 3 && words * 2 >= tokens
}

/// Whether text from `origin` belongs to the file at `file` (is it, or lies inside it).
fn within_file(origin: &str, file: &str) -> bool {
    origin
        .strip_prefix(file)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(" / "))
}

pub fn scan(policy: &Policy, insp: &Inspection) -> Scan {
    let n = policy.detectors.len();
    let mut out = Scan {
        counts: vec![0; n],
        findings: Vec::new(),
    };
    let mut shown = vec![0usize; n];
    let mut record = |out: &mut Scan, origin: &str, text: &str, h: Hit| {
        let i = h.detector;
        out.counts[i] += 1;
        if shown[i] < MAX_FINDINGS_PER_DETECTOR {
            shown[i] += 1;
            let d = &policy.detectors[i];
            out.findings.push(Finding {
                detector: d.name.clone(),
                label: d.label.clone(),
                origin: origin.to_string(),
                excerpt: excerpt(text, h.start, h.end, &h.shown),
            });
        }
    };
    // The text and HTML versions of one body often normalise to the same text: scanning it
    // twice would cost time and count every word twice (min_count would fire on one mention).
    // Compared, not hashed: texts of different lengths differ at once, and hashing every byte
    // of a large body cost more than the comparison ever does.
    let mut seen: Vec<&str> = Vec::new();
    // One pass per text finds every kind of identifier a detector asks for.
    let wanted = validators::Wanted {
        bsn: has_kind(policy, DetectorType::Bsn),
        iban: has_kind(policy, DetectorType::Iban),
        card: has_kind(policy, DetectorType::Card),
    };
    // Per text scanned: its origin and what each detector found in it.
    // (A repeated text is counted once, but still belongs to its own file.)
    let mut per_text: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut seen_counts: Vec<Vec<usize>> = Vec::new();
    for t in &insp.texts {
        let text = t.text.as_str();
        if let Some(k) = seen.iter().position(|s| *s == text) {
            let counts = seen_counts[k].clone();
            per_text.push((&t.origin, counts));
            continue;
        }
        seen.push(text);
        let mut counts = vec![0usize; n];
        for h in hits(policy, wanted, text) {
            counts[h.detector] += 1;
            record(&mut out, &t.origin, text, h);
        }
        seen_counts.push(counts.clone());
        per_text.push((&t.origin, counts));
    }
    for (label, text, h) in raw_view_hits(policy, wanted, insp, &per_text) {
        record(&mut out, &label, text, h);
    }
    out
}

/// The matches in the raw views that count, with the origin to show. Per file, a match counts
/// only beyond what the file's extracted text gave for that detector (`per_text`: origin and
/// counts of every text), so text found both ways is counted once, and what extraction missed
/// (a damaged structure, text the extractor skips) still counts. A raw view seen before (the
/// same file attached twice) is scanned once, as texts are.
fn raw_view_hits<'a>(
    policy: &Policy,
    wanted: validators::Wanted,
    insp: &'a Inspection,
    per_text: &[(&str, Vec<usize>)],
) -> Vec<(String, &'a str, Hit)> {
    let mut out = Vec::new();
    let mut seen_raw: Vec<&str> = Vec::new();
    let mut files: Vec<&str> = insp.shadows.iter().map(|s| s.origin.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    for file in files {
        // Matches of the extracted text already counted, per detector.
        let mut counted = vec![0usize; policy.detectors.len()];
        for (origin, counts) in per_text {
            if within_file(origin, file) {
                for (k, c) in counted.iter_mut().zip(counts) {
                    *k += c;
                }
            }
        }
        let label = format!("{file} (raw bytes)");
        for s in insp.shadows.iter().filter(|s| s.origin == file) {
            if seen_raw.contains(&s.text.as_str()) {
                continue;
            }
            seen_raw.push(&s.text);
            for h in hits(policy, wanted, &s.text) {
                // Words occur by chance in binary data ("cvc", "hiv"): in a raw view a word
                // counts only among other words. Identifiers carry their own checksums.
                if policy.detectors[h.detector].kind == DetectorType::Words
                    && !among_words(&s.text, h.start, h.end)
                {
                    continue;
                }
                match counted.get_mut(h.detector) {
                    Some(k) if *k > 0 => *k -= 1,
                    _ => out.push((label.clone(), s.text.as_str(), h)),
                }
            }
        }
    }
    out
}

fn has_kind(policy: &Policy, kind: DetectorType) -> bool {
    policy.detectors.iter().any(|d| d.kind == kind)
}

fn ids(found: &[validators::Candidate], kind: Kind) -> Vec<(usize, usize, String)> {
    found
        .iter()
        .map(|c| (c.start, c.end, validators::mask(kind, &c.value)))
        .collect()
}

#[cfg(test)]
#[path = "tests_raw.rs"]
mod tests_raw;
