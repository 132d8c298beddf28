use super::*;
use chrono::TimeZone;
use mail_parser::MessageParser;

const ORIGINAL: &[u8] = b"From: Dr. Jansen <jansen@org.test>\r\n\
To: Piet <piet@extern.test>, an@extern.test\r\n\
Cc: collega@org.test\r\n\
Bcc: geheim@extern.test\r\n\
Subject: [beveiligd] Uitslag\r\n\
Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\
Message-ID: <abc@org.test>\r\n\
In-Reply-To: <prev@extern.test>\r\n\
References: <prev@extern.test>\r\n\
Thread-Topic: Uitslag 111222333\r\n\
X-Patient: 111222333\r\n\
X-Sluis-Mode: secure\r\n\
DKIM-Signature: v=1; a=rsa-sha256; b=xyz\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: multipart/alternative; boundary=\"a\"\r\n\r\n\
--a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nDe uitslag van het onderzoek is goed.\r\n\
--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>De uitslag van het onderzoek is goed.</p></body></html>\r\n\
--a--\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"uitslag.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n";

fn copy<'a>(p: Protection, files: &'a [FileInfo]) -> Copy<'a> {
    Copy {
        protection: p,
        org_name: "Zorggroep <Test>",
        portal_host: "veilig.org.test",
        language: "nl",
        sender: "Dr. Jansen",
        link: "https://veilig.org.test/r/TOKEN123?a=1&b=2",
        expires: Utc.with_ymd_and_hms(2026, 12, 9, 12, 0, 0).unwrap(),
        files,
        neutral_subject: false,
        subject: "Uitslag",
        formal: false,
        inline: &[],
    }
}

fn text_of(out: &[u8]) -> (String, String, usize) {
    let m = MessageParser::default().parse(out).unwrap();
    let text = m.body_text(0).unwrap().into_owned();
    let html = m.body_html(0).map(|h| h.into_owned()).unwrap_or_default();
    (text, html, m.attachments().count())
}

#[test]
fn secure_message_leaves_nothing_of_the_content() {
    let out = build(ORIGINAL, &copy(Protection::SecureMessage, &[])).unwrap();
    let s = String::from_utf8_lossy(&out);
    assert!(!s.contains("uitslag van het onderzoek"), "{s}");
    assert!(!s.contains("JVBERi0xLjQK"), "{s}");
    let (text, html, attachments) = text_of(&out);
    assert_eq!(attachments, 0);
    assert!(
        text.contains("Dr. Jansen heeft je een beveiligd bericht gestuurd."),
        "{text}"
    );
    assert!(
        text.contains("Open bericht: https://veilig.org.test/r/TOKEN123?a=1&b=2"),
        "{text}"
    );
    assert!(text.contains("woensdag 9 december 2026"), "{text}");
    assert!(
        text.contains("Dr. Jansen has sent you a secure message."),
        "{text}"
    );
    assert!(
        html.contains("href=\"https://veilig.org.test/r/TOKEN123?a=1&amp;b=2\""),
        "{html}"
    );
    assert!(
        html.contains("Zorggroep &lt;Test&gt;"),
        "the organisation's name, escaped: {html}"
    );
}

#[test]
fn headers_kept_dropped_and_threading_intact() {
    let out = build(ORIGINAL, &copy(Protection::SecureMessage, &[])).unwrap();
    let s = String::from_utf8_lossy(&out);
    for kept in [
        "From: Dr. Jansen <jansen@org.test>\r\n",
        "To: Piet <piet@extern.test>, an@extern.test\r\n",
        "Cc: collega@org.test\r\n",
        "Message-ID: <abc@org.test>\r\n",
        "In-Reply-To: <prev@extern.test>\r\n",
        "References: <prev@extern.test>\r\n",
        "Subject: Uitslag\r\n",
    ] {
        assert!(s.contains(kept), "missing {kept:?} in {s}");
    }
    for dropped in [
        "Bcc:",
        "geheim@extern.test",
        "X-Sluis-Mode",
        "DKIM-Signature",
        "[beveiligd]",
        "Thread-Topic",
        "X-Patient",
        "111222333",
    ] {
        assert!(!s.contains(dropped), "{dropped} must not leave: {s}");
    }
    // Files protection keeps the original's other fields (nothing was found in the text).
    let files =
        String::from_utf8_lossy(&build(ORIGINAL, &copy(Protection::SecureFiles, &[])).unwrap())
            .into_owned();
    assert!(files.contains("X-Patient: 111222333\r\n"), "{files}");
    assert!(
        !files.contains("X-Sluis-Mode") && !files.contains("Bcc:"),
        "{files}"
    );
    let mut neutral = copy(Protection::SecureMessage, &[]);
    neutral.neutral_subject = true;
    let s = String::from_utf8_lossy(&build(ORIGINAL, &neutral).unwrap()).into_owned();
    assert!(
        s.contains("Subject: Beveiligd bericht van Zorggroep <Test>\r\n"),
        "{s}"
    );
}

#[test]
fn files_keep_the_body_and_replace_attachments_by_a_link_block() {
    let files = [FileInfo {
        name: "uitslag <1>.pdf".into(),
        size: 1_234_567,
    }];
    for p in [Protection::SecureFiles, Protection::PublicFiles] {
        let out = build(ORIGINAL, &copy(p, &files)).unwrap();
        let (text, html, attachments) = text_of(&out);
        assert_eq!(attachments, 0, "the attachment is gone");
        assert!(!String::from_utf8_lossy(&out).contains("JVBERi0xLjQK"));
        assert!(
            text.starts_with("De uitslag van het onderzoek is goed."),
            "{text}"
        );
        assert!(text.contains("uitslag <1>.pdf (1,2 MB)"), "{text}");
        assert!(
            text.contains("Download bestanden: https://veilig.org.test/r/TOKEN123"),
            "{text}"
        );
        assert!(
            html.contains("<p>De uitslag van het onderzoek is goed.</p>"),
            "{html}"
        );
        assert!(
            html.contains("uitslag &lt;1&gt;.pdf"),
            "file names are escaped: {html}"
        );
        assert!(
            html.find("Download bestanden").unwrap()
                < html.to_ascii_lowercase().find("</body>").unwrap()
        );
    }
}

#[test]
fn english_first_when_the_organisation_speaks_english() {
    let mut c = copy(Protection::SecureMessage, &[]);
    c.language = "en";
    let (text, _, _) = text_of(&build(ORIGINAL, &c).unwrap());
    let en = text.find("has sent you").unwrap();
    let nl = text.find("heeft je").unwrap();
    assert!(en < nl, "{text}");
}

#[test]
fn both_languages_in_full_without_a_signature_line() {
    for p in [Protection::SecureMessage, Protection::SecureFiles] {
        let files = [FileInfo {
            name: "uitslag.pdf".into(),
            size: 9,
        }];
        let (text, html, _) = text_of(&build(ORIGINAL, &copy(p, &files)).unwrap());
        // "-- " on a line of its own makes clients fold the English half away as a signature.
        assert!(!text.lines().any(|l| l == "-- "), "{p:?}: {text}");
        for footer in [
            "Verstuurd via de beveiligde mailomgeving van Zorggroep <Test>.",
            "Sent through the secure mail service of Zorggroep <Test>.",
        ] {
            assert!(text.contains(footer), "{p:?}: {text}");
            assert!(html.contains(&escape(footer)), "{p:?}: {html}");
        }
        // The portal's wording, with the time of day.
        let t = super::words::date_time(&super::words::NL, copy(p, &files).expires);
        assert!(
            text.contains(&format!("Beschikbaar tot en met {t}.")),
            "{text}"
        );
    }
    let mut c = copy(Protection::SecureMessage, &[]);
    c.formal = true;
    let (text, _, _) = text_of(&build(ORIGINAL, &c).unwrap());
    assert!(
        text.contains("Dr. Jansen heeft u een beveiligd bericht gestuurd."),
        "{text}"
    );
    assert!(!text.contains("heeft je"), "{text}");
}
