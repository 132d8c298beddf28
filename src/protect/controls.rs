//! The sender's file settings from `X-Sluis-*` headers (SPEC §2, §5): expiry, download limit,
//! phone numbers for SMS, and a custom password. Read from the decision's recorded controls.

use crate::policy::schema::Settings;
use chrono::{NaiveDate, TimeZone, Utc};
use std::collections::BTreeMap;

/// What the sender asked for, checked against the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    /// Unix seconds.
    pub expires: i64,
    pub download_limit: u32,
    /// Lowercased recipient address → phone number in E.164 form; `""` is everyone's number.
    pub phones: BTreeMap<String, String>,
    pub password: Option<String>,
    /// What was asked for but not honoured, for the log and the audit trail.
    pub ignored: Vec<String>,
}

impl FileSettings {
    pub fn phone_for(&self, rcpt: &str) -> Option<&str> {
        self.phones
            .get(&rcpt.to_ascii_lowercase())
            .or_else(|| self.phones.get(""))
            .map(String::as_str)
    }
}

pub fn read(controls: &BTreeMap<String, String>, settings: &Settings, now: i64) -> FileSettings {
    let max = settings.max_expiry.get().as_secs() as i64;
    let mut out = FileSettings {
        expires: now + settings.expiry.get().as_secs() as i64,
        download_limit: settings.download_limit,
        phones: BTreeMap::new(),
        password: None,
        ignored: Vec::new(),
    };
    if let Some(v) = controls.get("expires") {
        match expiry(v.trim(), now) {
            // A sender may shorten the expiry, never stretch it past the admin's maximum.
            Some(at) if at > now => out.expires = at.min(now + max),
            _ => out.ignored.push(format!(
                "X-Sluis-Expires: '{v}' is not a future date or duration"
            )),
        }
    }
    if let Some(v) = controls.get("max-downloads") {
        match v.trim().parse::<u32>() {
            Ok(n) => out.download_limit = n,
            Err(_) => out
                .ignored
                .push(format!("X-Sluis-Max-Downloads: '{v}' is not a number")),
        }
    }
    if let Some(v) = controls.get("phone") {
        for entry in v.split([',', ';']).map(str::trim).filter(|e| !e.is_empty()) {
            let (who, number) = match entry.rsplit_once('=') {
                Some((w, n)) => (w.trim().to_ascii_lowercase(), n),
                None => (String::new(), entry),
            };
            match phone(number) {
                Some(p) => {
                    out.phones.insert(who, p);
                }
                None => out
                    .ignored
                    .push(format!("X-Sluis-Phone: '{number}' is not a phone number")),
            }
        }
    }
    if let Some(v) = controls.get("password") {
        out.password = Some(v.clone());
    }
    out
}

/// `7d`, `48h`, `3600` (seconds), `2026-12-01` (the end of that day, UTC) or RFC 3339.
fn expiry(v: &str, now: i64) -> Option<i64> {
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        let end = d.and_hms_opt(23, 59, 59)?;
        return Some(Utc.from_utc_datetime(&end).timestamp());
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
        return Some(t.timestamp());
    }
    let d = crate::units::parse_duration(v).ok()?;
    Some(now.saturating_add(d.as_secs() as i64))
}

/// A phone number in E.164 form: `+31612345678`. Dutch national numbers (`06 1234 5678`) and
/// the `00` international prefix are accepted; separators are dropped.
pub fn phone(raw: &str) -> Option<String> {
    let mut s: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')' | '\u{a0}'))
        .collect();
    if let Some(rest) = s.strip_prefix("00") {
        s = format!("+{rest}");
    } else if s.starts_with('0') && s.len() == 10 {
        s = format!("+31{}", &s[1..]);
    }
    let digits = s.strip_prefix('+')?;
    let ok = (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0');
    ok.then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn defaults_come_from_the_policy() {
        let s = Settings::default();
        let f = read(&BTreeMap::new(), &s, NOW);
        assert_eq!(f.expires, NOW + 14 * 86_400);
        assert_eq!(f.download_limit, 0);
        assert!(f.phones.is_empty() && f.password.is_none() && f.ignored.is_empty());
    }

    #[test]
    fn expiry_is_shortened_but_never_stretched() {
        let s = Settings::default();
        assert_eq!(
            read(&ctl(&[("expires", "3d")]), &s, NOW).expires,
            NOW + 3 * 86_400
        );
        assert_eq!(
            read(&ctl(&[("expires", "90d")]), &s, NOW).expires,
            NOW + 14 * 86_400
        );
        let f = read(&ctl(&[("expires", "2027-03-01")]), &s, NOW);
        assert_eq!(f.expires, NOW + 14 * 86_400, "beyond the maximum");
        let f = read(&ctl(&[("expires", "yesterday")]), &s, NOW);
        assert_eq!(f.expires, NOW + 14 * 86_400);
        assert_eq!(f.ignored.len(), 1);
        let soon = chrono::DateTime::from_timestamp(NOW + 86_400, 0)
            .unwrap()
            .to_rfc3339();
        assert_eq!(
            read(&ctl(&[("expires", &soon)]), &s, NOW).expires,
            NOW + 86_400
        );
    }

    #[test]
    fn downloads_and_password() {
        let s = Settings::default();
        let f = read(
            &ctl(&[("max-downloads", "3"), ("password", "Kl0mp-En-Paard!")]),
            &s,
            NOW,
        );
        assert_eq!(f.download_limit, 3);
        assert_eq!(f.password.as_deref(), Some("Kl0mp-En-Paard!"));
        let f = read(&ctl(&[("max-downloads", "-1")]), &s, NOW);
        assert_eq!(f.download_limit, 0);
        assert_eq!(f.ignored.len(), 1);
    }

    #[test]
    fn phones_per_recipient_or_for_all() {
        let s = Settings::default();
        let f = read(
            &ctl(&[(
                "phone",
                "Piet@Example.nl=06-1234 5678, +44 7700 900123; nope=12",
            )]),
            &s,
            NOW,
        );
        assert_eq!(f.phone_for("piet@example.NL"), Some("+31612345678"));
        assert_eq!(f.phone_for("someone@else.org"), Some("+447700900123"));
        assert_eq!(f.ignored.len(), 1);
        assert_eq!(phone("0031 6 12345678").as_deref(), Some("+31612345678"));
        assert_eq!(phone("12345"), None);
        assert_eq!(phone("+3161234567a"), None);
    }
}
