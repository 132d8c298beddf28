//! The portal's words in Dutch and English (the manual's wording in Dutch).

#[derive(Debug)]
pub struct Texts {
    pub code: &'static str,
    pub other_code: &'static str,
    pub other_name: &'static str,
    pub title: &'static str,
    pub secure_channel: &'static str,
    pub from: &'static str,
    pub date: &'static str,
    pub subject: &'static str,
    pub to: &'static str,
    pub send_password: &'static str,
    pub send_code: &'static str,
    pub password: &'static str,
    pub sms_code: &'static str,
    pub sign_in: &'static str,
    pub password_sent: &'static str,
    pub code_sent: &'static str,
    pub custom_password: &'static str,
    pub intro_password: &'static str,
    pub intro_sms: &'static str,
    pub wrong: &'static str,
    pub locked: &'static str,
    /// Units for a wait: one and more ("1 minuut", "2 minuten").
    pub units: [(&'static str, &'static str); 3],
    pub resend_limit: &'static str,
    /// The quiet button once something went out, and the limit in words ({max} per {window}).
    pub send_again: &'static str,
    pub sends_left: &'static str,
    pub sends_wait: &'static str,
    pub files: &'static str,
    pub download: &'static str,
    pub download_all: &'static str,
    pub file_blocked: &'static str,
    pub file_exhausted: &'static str,
    pub checksum_pending: &'static str,
    pub downloads_left: &'static str,
    pub available_until: &'static str,
    pub expired_title: &'static str,
    pub expired_text: &'static str,
    pub blocked_title: &'static str,
    pub blocked_text: &'static str,
    pub exhausted_title: &'static str,
    pub exhausted_text: &'static str,
    pub sign_out: &'static str,
    pub message: &'static str,
    pub no_files: &'static str,
    pub protected_by: &'static str,
    pub language: &'static str,
    pub password_mail_subject: &'static str,
    pub password_mail_body: &'static str,
    pub sms_text: &'static str,
    /// The skip link's words: where it goes.
    pub skip_to_content: &'static str,
    /// One page for every link that does not exist (unknown, mistyped or cut off).
    pub unknown_title: &'static str,
    pub unknown_text: &'static str,
}

pub const NL: Texts = Texts {
    code: "nl",
    other_code: "en",
    other_name: "English",
    title: "Beveiligd kanaal",
    secure_channel: "Beveiligd kanaal van {}",
    from: "Van",
    date: "Datum",
    subject: "Onderwerp",
    to: "Aan",
    send_password: "Verzend mijn wachtwoord",
    send_code: "Stuur mij een code",
    password: "Wachtwoord",
    sms_code: "Code uit de sms",
    sign_in: "Openen",
    password_sent: "Het wachtwoord is naar je e-mailadres gestuurd: {}. Kijk in je inbox en vul het hieronder in.",
    code_sent: "Er is een code per sms naar je telefoon gestuurd: {}. Vul de code hieronder in.",
    custom_password: "De afzender geeft je het wachtwoord op een andere manier, bijvoorbeeld telefonisch.",
    intro_password: "Dit bericht is beveiligd. Druk op 'Verzend mijn wachtwoord': je krijgt een e-mail met het wachtwoord.",
    intro_sms: "Dit bericht is beveiligd. Druk op 'Stuur mij een code': je krijgt een code per sms.",
    wrong: "Dat wachtwoord of die code klopt niet, of is verlopen.",
    locked: "Te veel pogingen. Probeer het over {} opnieuw.",
    units: [
        ("seconde", "seconden"),
        ("minuut", "minuten"),
        ("uur", "uur"),
    ],
    resend_limit: "Je hebt al een paar keer een nieuw wachtwoord of een nieuwe code gevraagd. Probeer het over {} opnieuw.",
    send_again: "Opnieuw versturen",
    sends_left: "Niets ontvangen? Je kunt nog {} keer opnieuw versturen (maximaal {max} keer per {window} minuten).",
    sends_wait: "Opnieuw versturen kan weer over {} (maximaal {max} keer per {window} minuten).",
    files: "Bestanden",
    download: "Download",
    download_all: "Download alles",
    file_blocked: "geblokkeerd door de afzender",
    file_exhausted: "maximaal aantal downloads bereikt",
    checksum_pending: "SHA-256 wordt berekend; laad de pagina later opnieuw",
    downloads_left: "nog {} keer te downloaden",
    available_until: "Beschikbaar tot en met {}",
    expired_title: "Deze link is verlopen",
    expired_text: "De bestanden en het bericht zijn niet meer beschikbaar. Vraag de afzender ze opnieuw te sturen.",
    blocked_title: "Deze link is geblokkeerd",
    blocked_text: "De afzender heeft de toegang tot dit bericht ingetrokken.",
    exhausted_title: "Maximaal aantal downloads bereikt",
    exhausted_text: "Dit bestand kan niet vaker worden gedownload. Vraag de afzender het opnieuw te sturen.",
    sign_out: "Afmelden",
    message: "Bericht",
    no_files: "Geen bestanden.",
    protected_by: "Beveiligd door {} via sluis",
    language: "Taal",
    password_mail_subject: "Je wachtwoord voor het beveiligde bericht",
    password_mail_body: "Je hebt een wachtwoord gevraagd voor een beveiligd bericht van {sender}.\r\n\r\nWachtwoord: {password}\r\n\r\nVul het in op de pagina die je net hebt geopend. Een nieuw wachtwoord vervangt dit.\r\nHeb je niets gevraagd? Dan kun je deze e-mail negeren.\r\n",
    sms_text: "Je code voor het beveiligde bericht van {org}: {code} ({valid} geldig)",
    skip_to_content: "Naar de inhoud",
    unknown_title: "Deze link werkt niet",
    unknown_text: "De link is onvolledig of bestaat niet. Open de e-mail opnieuw en klik op de knop, of kopieer de hele link. Werkt het dan nog niet? Vraag de afzender om het bericht opnieuw te sturen.",
};

pub const EN: Texts = Texts {
    code: "en",
    other_code: "nl",
    other_name: "Nederlands",
    title: "Secure channel",
    secure_channel: "Secure channel of {}",
    from: "From",
    date: "Date",
    subject: "Subject",
    to: "To",
    send_password: "Send my password",
    send_code: "Send me a code",
    password: "Password",
    sms_code: "Code from the text message",
    sign_in: "Open",
    password_sent: "The password was sent to your e-mail address: {}. Check your inbox and enter it below.",
    code_sent: "A code was sent to your phone by text message: {}. Enter it below.",
    custom_password: "The sender gives you the password another way, for instance by phone.",
    intro_password: "This message is protected. Press 'Send my password': you will get an e-mail with the password.",
    intro_sms: "This message is protected. Press 'Send me a code': you will get a code by text message.",
    wrong: "That password or code is not right, or has expired.",
    locked: "Too many attempts. Try again in {}.",
    units: [
        ("second", "seconds"),
        ("minute", "minutes"),
        ("hour", "hours"),
    ],
    resend_limit: "You asked for a new password or code several times already. Try again in {}.",
    send_again: "Send again",
    sends_left: "Nothing arrived? You can send it {} more times (at most {max} times in {window} minutes).",
    sends_wait: "You can send it again in {} (at most {max} times in {window} minutes).",
    files: "Files",
    download: "Download",
    download_all: "Download all",
    file_blocked: "blocked by the sender",
    file_exhausted: "download limit reached",
    checksum_pending: "SHA-256 is being computed; reload the page later",
    downloads_left: "{} downloads left",
    available_until: "Available until {}",
    expired_title: "This link has expired",
    expired_text: "The files and the message are no longer available. Ask the sender to send them again.",
    blocked_title: "This link has been blocked",
    blocked_text: "The sender has withdrawn access to this message.",
    exhausted_title: "Download limit reached",
    exhausted_text: "This file cannot be downloaded again. Ask the sender to send it again.",
    sign_out: "Sign out",
    message: "Message",
    no_files: "No files.",
    protected_by: "Protected by {} with sluis",
    language: "Language",
    password_mail_subject: "Your password for the secure message",
    password_mail_body: "You asked for a password for a secure message from {sender}.\r\n\r\nPassword: {password}\r\n\r\nEnter it on the page you just opened. A new password replaces this one.\r\nDid you not ask for it? Then you can ignore this e-mail.\r\n",
    sms_text: "Your code for the secure message from {org}: {code} (valid for {valid})",
    skip_to_content: "Skip to content",
    unknown_title: "This link does not work",
    unknown_text: "The link is incomplete or does not exist. Open the e-mail again and click the button, or copy the whole link. Still not working? Ask the sender to send the message again.",
};

pub fn texts(code: &str) -> &'static Texts {
    if code == "en" { &EN } else { &NL }
}

/// The language: an explicit choice (`?lang=`, then the cookie), else the browser's
/// Accept-Language (first of nl/en by preference), else the organisation's default.
pub fn choose(
    explicit: Option<&str>,
    cookie: Option<&str>,
    accept: Option<&str>,
    default: &str,
) -> &'static str {
    for v in [explicit, cookie].into_iter().flatten() {
        match v {
            "nl" => return "nl",
            "en" => return "en",
            _ => {}
        }
    }
    if let Some(a) = accept {
        let mut best: Option<(f32, &'static str)> = None;
        for item in a.split(',') {
            let mut it = item.split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| {
                    p.trim()
                        .strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                })
                .unwrap_or(1.0);
            let lang = if tag == "nl" || tag.starts_with("nl-") {
                "nl"
            } else if tag == "en" || tag.starts_with("en-") {
                "en"
            } else {
                continue;
            };
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, lang));
            }
        }
        if let Some((_, l)) = best {
            return l;
        }
    }
    if default.starts_with("en") {
        "en"
    } else {
        "nl"
    }
}

impl Texts {
    /// A wait in words, rounded up to the unit that reads naturally: "30 seconden",
    /// "1 minuut", "3 uur" (a lock of seconds no longer reads "1 minuten").
    pub fn wait(&self, secs: i64) -> String {
        let s = secs.max(1) as u64;
        let (n, unit) = if s < 60 {
            (s, 0)
        } else if s < 2 * 3600 {
            (s.div_ceil(60), 1)
        } else {
            (s.div_ceil(3600), 2)
        };
        let (one, more) = self.units[unit];
        format!("{n} {}", if n == 1 { one } else { more })
    }
}

pub fn fill(t: &str, v: &str) -> String {
    t.replacen("{}", v, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_read_naturally() {
        assert_eq!(NL.wait(0), "1 seconde");
        assert_eq!(NL.wait(30), "30 seconden");
        assert_eq!(NL.wait(60), "1 minuut");
        assert_eq!(NL.wait(61), "2 minuten");
        assert_eq!(EN.wait(7199), "120 minutes");
        assert_eq!(NL.wait(7200), "2 uur");
        assert_eq!(EN.wait(86_400), "24 hours");
    }

    #[test]
    fn language_choice() {
        assert_eq!(
            choose(None, None, Some("en-GB,en;q=0.9,nl;q=0.8"), "nl"),
            "en"
        );
        assert_eq!(
            choose(None, None, Some("de-DE,nl;q=0.5,en;q=0.4"), "en"),
            "nl"
        );
        assert_eq!(choose(None, None, Some("fr"), "en"), "en");
        assert_eq!(choose(None, Some("en"), Some("nl"), "nl"), "en");
        assert_eq!(choose(Some("nl"), Some("en"), None, "en"), "nl");
        assert_eq!(choose(Some("xx"), None, None, "nl"), "nl");
    }
}
