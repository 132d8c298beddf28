//! Dates, sizes and wording in Dutch and English for the rewritten mail.

use chrono::{DateTime, Datelike, TimeZone, Utc};

pub struct Lang {
    pub days: [&'static str; 7],
    pub months: [&'static str; 12],
    pub decimal: char,
    pub secure_message: &'static str,
    /// The same in the organisation's formal address (`address_form = "u"`).
    pub secure_message_formal: &'static str,
    /// Between the date and the time of day: "woensdag 9 december 2026 om 17:00".
    pub at: &'static str,
    pub open: &'static str,
    pub download: &'static str,
    pub files_secure: &'static str,
    pub files_public: &'static str,
    pub until: &'static str,
    pub neutral_subject: &'static str,
    pub footer: &'static str,
}

pub const NL: Lang = Lang {
    days: [
        "maandag",
        "dinsdag",
        "woensdag",
        "donderdag",
        "vrijdag",
        "zaterdag",
        "zondag",
    ],
    months: [
        "januari",
        "februari",
        "maart",
        "april",
        "mei",
        "juni",
        "juli",
        "augustus",
        "september",
        "oktober",
        "november",
        "december",
    ],
    decimal: ',',
    secure_message: "{} heeft je een beveiligd bericht gestuurd.",
    secure_message_formal: "{} heeft u een beveiligd bericht gestuurd.",
    at: "om",
    open: "Open bericht",
    download: "Download bestanden",
    files_secure: "De bijlagen van dit bericht zijn beveiligd verstuurd:",
    files_public: "De bijlagen van dit bericht staan klaar om te downloaden:",
    until: "Beschikbaar tot en met {}.",
    neutral_subject: "Beveiligd bericht van {}",
    footer: "Verstuurd via de beveiligde mailomgeving van {}. Controleer altijd of de link naar {} gaat.",
};

pub const EN: Lang = Lang {
    days: [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ],
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    decimal: '.',
    secure_message: "{} has sent you a secure message.",
    secure_message_formal: "{} has sent you a secure message.",
    at: "at",
    open: "Open message",
    download: "Download files",
    files_secure: "The attachments of this message were sent securely:",
    files_public: "The attachments of this message are ready to download:",
    until: "Available until {}.",
    neutral_subject: "Secure message from {}",
    footer: "Sent through the secure mail service of {}. Always check that the link goes to {}.",
};

pub fn lang(code: &str) -> (&'static Lang, &'static Lang) {
    if code.starts_with("en") {
        (&EN, &NL)
    } else {
        (&NL, &EN)
    }
}

/// "woensdag 9 december 2026" / "Wednesday 9 December 2026".
pub fn date<Tz: TimeZone>(l: &Lang, d: DateTime<Tz>) -> String {
    format!(
        "{} {} {} {}",
        l.days[d.weekday().num_days_from_monday() as usize],
        d.day(),
        l.months[d.month0() as usize],
        d.year()
    )
}

/// "woensdag 9 december 2026 om 17:00" in the server's time zone (the organisation's own):
/// the moment a link stops working, worded the same in the mail and on the portal.
pub fn date_time(l: &Lang, d: DateTime<Utc>) -> String {
    let local = d.with_timezone(&chrono::Local);
    format!("{} {} {}", date(l, local), l.at, local.format("%H:%M"))
}

/// "1,2 MB" / "1.2 MB".
pub fn size(l: &Lang, bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "kB", "MB", "GB", "TB"];
    if bytes < 1000 {
        return format!("{bytes} {}", UNITS[0]);
    }
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    format!("{:.1} {}", v, UNITS[u]).replace('.', &l.decimal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn dates_and_sizes_in_words() {
        let d = Utc.with_ymd_and_hms(2026, 12, 9, 12, 0, 0).unwrap();
        assert_eq!(date(&NL, d), "woensdag 9 december 2026");
        assert_eq!(date(&EN, d), "Wednesday 9 December 2026");
        assert_eq!(size(&NL, 1_234_567), "1,2 MB");
        assert_eq!(size(&EN, 1_234_567), "1.2 MB");
        assert_eq!(size(&NL, 12), "12 bytes");
        let t = date_time(&NL, d);
        assert!(t.contains(" 2026 om ") && t.ends_with(":00"), "{t}");
    }
}
