//! The portal in a real browser: Debian's chromium, headless, driven over WebDriver by
//! chromedriver. A recipient follows the link in the delivered mail, asks for the password,
//! reads it from the delivered password mail, signs in, reads the message, downloads one file
//! and the ZIP; the same with an SMS code from the outbox; an expired and a blocked link; Dutch
//! and English. Screenshots of the main pages go to `target/test-artifacts/`.

mod common;

use common::portal::{code_in, last_sms, table_mail};
use common::protect::*;
use common::webdriver::Browser;
use common::*;
use std::io::Read;
use std::time::Duration;

fn portal(cap: &Capture, port: u16, extra: impl FnOnce(Config) -> Config) -> Sluis {
    start_with(cap, |c| {
        extra(
            c.set("web", "listen", &format!("\"127.0.0.1:{port}\""))
                .set("web", "public_url", &format!("\"http://127.0.0.1:{port}\"")),
        )
    })
}

fn link_in(cap: &Capture, subject: &str) -> String {
    let m = cap.wait_for_containing(subject, ARRIVAL);
    let p = mail_parser::MessageParser::default()
        .parse(&m.data)
        .unwrap();
    let text = p.body_text(0).unwrap().into_owned();
    let i = text.find("http://127.0.0.1:").expect("a link");
    text[i..].split_whitespace().next().unwrap().to_string()
}

#[test]
fn recipient_signs_in_with_the_mailed_password_reads_and_downloads() {
    let cap = Capture::start();
    let port = free_port();
    let sluis = portal(&cap, port, |c| c);
    let u = unique("web");
    let report = noise(2 << 20, 11);
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!("To: Piet <piet@extern.test>\r\nSubject: [beveiligd] Uitslag {u}\r\n"),
            &format!("Beste Piet,\r\n\r\nHierbij de uitslag {u}.\r\n"),
            &[
                ("uitslag.pdf", report.clone()),
                ("toelichting.txt", b"Alles goed.".to_vec()),
            ],
        ),
    );
    let link = link_in(&cap, &u);
    let downloads = tempfile::tempdir().unwrap();
    let mut b = Browser::start(downloads.path(), "nl");
    b.goto(&link);
    let t = b.text();
    assert!(t.contains("Verzend mijn wachtwoord"), "{t}");
    b.screenshot("01-landing-nl");
    b.click("form[action$='/send'] button");
    poll(ARRIVAL, "the page to say the password was sent", || {
        b.text()
            .contains("naar je e-mailadres gestuurd")
            .then_some(())
    });
    b.screenshot("02-password-sent");
    let pm = poll(ARRIVAL, "the password mail", || {
        cap.messages()
            .into_iter()
            .find(|m| m.rcpt_tos == ["piet@extern.test"] && m.text().contains("Wachtwoord: "))
    });
    let pt = pm.text();
    let i = pt.find("Wachtwoord: ").unwrap() + 12;
    let password = pt[i..].lines().next().unwrap().trim().to_string();

    b.type_into("#secret", "verkeerd");
    b.click("form[action$='/login'] button");
    b.text_with("klopt niet");
    b.screenshot("03-wrong-password");
    b.type_into("#secret", &password);
    b.click("form[action$='/login'] button");
    poll(ARRIVAL, "the message page", || {
        b.text().contains(&format!("Uitslag {u}")).then_some(())
    });
    let t = b.text();
    assert!(
        t.contains("arts@org.test") && t.contains("uitslag.pdf"),
        "{t}"
    );
    assert!(t.contains("Download alles"));
    assert!(
        b.source().contains("<pre class=\"body text\">"),
        "the text body is shown"
    );
    assert!(t.contains(&format!("Hierbij de uitslag {u}")), "{t}");
    b.screenshot("04-message-nl");

    b.click("a[href$='/f/0']");
    assert_eq!(b.downloaded("uitslag.pdf"), report);
    b.click("a[href$='/zip']");
    let zip = b.downloaded("bestanden.zip");
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
    let mut got = Vec::new();
    z.by_name("uitslag.pdf")
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, report);
    let mut txt = String::new();
    z.by_name("toelichting.txt")
        .unwrap()
        .read_to_string(&mut txt)
        .unwrap();
    assert_eq!(txt, "Alles goed.");

    // English, switched on the page and remembered.
    b.click("a.lang");
    // ("Download alles" contains "Download all": wait for the English heading.)
    let t = b.text_with("Files");
    assert!(
        t.contains("Download all") && !t.contains("Bestanden"),
        "{t}"
    );
    b.screenshot("05-message-en");
    b.goto(&link);
    assert!(b.text().contains("Download all"));
}

#[test]
fn sms_code_from_the_outbox_and_clear_pages_for_expired_and_blocked_links() {
    let cap = Capture::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.txt");
    let ob = outbox.to_str().unwrap().to_string();
    let sluis = portal(&cap, port, |c| c.set("sms", "path", &format!("{ob:?}")));
    let u = unique("websms");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [secure] [sms] Dossier {u}\r\n\
                 X-Sluis-Phone: +31612345678\r\n"
            ),
            "Het dossier.",
            &[("dossier.txt", b"dossier".to_vec())],
        ),
    );
    let link = link_in(&cap, &u);
    let downloads = tempfile::tempdir().unwrap();
    let mut b = Browser::start(downloads.path(), "en");
    b.goto(&link);
    let t = b.text();
    assert!(
        t.contains("Send me a code") && t.contains("text message"),
        "{t}"
    );
    b.screenshot("06-landing-sms-en");
    b.click("form[action$='/send'] button");
    b.text_with("A code was sent to your phone");
    let sms = last_sms(&outbox);
    let code = code_in(sms["text"].as_str().unwrap());
    b.type_into("#secret", &code);
    b.click("form[action$='/login'] button");
    poll(ARRIVAL, "the message page", || {
        b.text().contains(&format!("Dossier {u}")).then_some(())
    });
    b.screenshot("07-message-sms-en");
    b.click("a[href$='/f/0']");
    assert_eq!(b.downloaded("dossier.txt"), b"dossier");

    // An expired link.
    let e = unique("webexp");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [secure files] {e}\r\nX-Sluis-Expires: 2s\r\n"
            ),
            "Tekst",
            &[("a.txt", b"a".to_vec())],
        ),
    );
    let expired = link_in(&cap, &e);
    std::thread::sleep(Duration::from_secs(3));
    b.goto(&format!("{expired}?lang=nl"));
    assert!(b.text().contains("Deze link is verlopen"));
    b.screenshot("08-expired-nl");

    // A blocked link: blocked by the admin command while sluis runs.
    let out = sluis.cli(&["message", "block", &link]);
    assert!(out.status.success(), "{out:?}");
    b.goto(&link);
    let t = b.text();
    assert!(t.contains("This link has been blocked"), "{t}");
    b.screenshot("09-blocked-en");
}

/// The pages ISSUE 23 changed (the SMS landing's 'Stuur mij een code', the expiry 'tot en met'
/// with the time, the message's time), in Dutch and English at phone and desktop width;
/// screenshots `23-*` in target/test-artifacts.
#[test]
fn changed_pages_in_both_languages_at_phone_and_desktop_width() {
    let cap = Capture::start();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.txt");
    let ob = outbox.to_str().unwrap().to_string();
    let _sluis = portal(&cap, port, |c| c.set("sms", "path", &format!("{ob:?}")));
    for (lang, send, sent, until, at) in [
        (
            "nl",
            "Stuur mij een code",
            "per sms naar je telefoon",
            "Beschikbaar tot en met",
            " om ",
        ),
        (
            "en",
            "Send me a code",
            "A code was sent to your phone",
            "Available until",
            " at ",
        ),
    ] {
        // A message per language: after a send the link's page offers 'send again' instead.
        let u = unique("web23");
        smtplib_send(
            &_sluis,
            "arts@org.test",
            &["piet@extern.test"],
            &mail(
                &format!(
                    "To: piet@extern.test\r\nSubject: [sms] Uitslag {u}\r\n\
                     X-Sluis-Phone: +31612345678\r\n"
                ),
                "De uitslag staat in de bijlage.",
                &[("uitslag.txt", b"uitslag".to_vec())],
            ),
        );
        let link = link_in(&cap, &u);
        let downloads = tempfile::tempdir().unwrap();
        let mut b = Browser::start(downloads.path(), lang);
        b.goto(&link);
        let t = b.text_with(send);
        assert!(t.contains(until) && t.contains(at), "{lang}: {t}");
        b.screenshot(&format!("23-landing-sms-{lang}-desktop"));
        b.viewport(Some((390, 844)));
        b.goto(&link);
        b.text_with(send);
        b.screenshot(&format!("23-landing-sms-{lang}-phone"));
        b.viewport(None);
        b.click("form[action$='/send'] button");
        b.text_with(sent);
        let sms = last_sms(&outbox);
        let code = code_in(sms["text"].as_str().unwrap());
        b.type_into("#secret", &code);
        b.click("form[action$='/login'] button");
        let t = b.text_with("uitslag.txt");
        assert!(t.contains(until) && t.contains(at), "{lang}: {t}");
        b.screenshot(&format!("23-message-{lang}-desktop"));
        b.viewport(Some((390, 844)));
        b.goto(&link);
        b.text_with("uitslag.txt");
        b.screenshot(&format!("23-message-{lang}-phone"));
    }
}

/// A message without files: 'Geen bestanden' with the expiry in the message's card, no card
/// of its own; the skip link says where it goes. Screenshots `23-no-files-*`.
#[test]
fn a_message_without_files_has_no_files_card() {
    let cap = Capture::start();
    let port = free_port();
    let sluis = portal(&cap, port, |c| c);
    let u = unique("web23b");
    let password = "een-lang-genoeg-wachtwoord";
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [beveiligd] Afspraak {u}\r\n\
                 X-Sluis-Password: {password}\r\n"
            ),
            "De afspraak is op dinsdag.",
            &[],
        ),
    );
    let link = link_in(&cap, &u);
    for (lang, none, skip, files, unknown) in [
        (
            "nl",
            "Geen bestanden.",
            "Naar de inhoud",
            "Bestanden",
            "Deze link werkt niet",
        ),
        (
            "en",
            "No files.",
            "Skip to content",
            "Files",
            "This link does not work",
        ),
    ] {
        let downloads = tempfile::tempdir().unwrap();
        let mut b = Browser::start(downloads.path(), lang);
        b.goto(&link);
        b.type_into("#secret", password);
        b.click("form[action$='/login'] button");
        let t = b.text_with(none);
        assert!(!t.lines().any(|l| l.trim() == files), "{lang}: {t}");
        assert!(b.source().contains(skip), "{lang}: skip link");
        b.screenshot(&format!("23-no-files-{lang}-desktop"));
        b.viewport(Some((390, 844)));
        b.goto(&link);
        b.text_with(none);
        b.screenshot(&format!("23-no-files-{lang}-phone"));
        // A link cut off in the mail client: a page that says what to do.
        let cut = &link[..link.len() - 10];
        b.goto(cut);
        b.text_with(unknown);
        b.screenshot(&format!("23-unknown-link-{lang}-phone"));
        b.viewport(None);
        b.goto(cut);
        b.text_with(unknown);
        b.screenshot(&format!("23-unknown-link-{lang}-desktop"));
    }
}

/// After 'Verzend mijn wachtwoord': where it went (masked) and a quiet 'Opnieuw versturen' with
/// the limit; then the message with the sender's name and an HTML table that keeps its borders
/// and colours. Screenshots `23-password-sent-*` and `23-html-table-*`.
#[test]
fn after_sending_where_it_went_and_send_again() {
    let cap = Capture::start();
    let port = free_port();
    let sluis = portal(&cap, port, |c| c);
    for (lang, rcpt, sent, again, left, pw) in [
        (
            "nl",
            "piet@extern.test",
            "p***@e***.test",
            "Opnieuw versturen",
            "nog 2 keer",
            "Wachtwoord: ",
        ),
        (
            "en",
            "klaas@extern.test",
            "k***@e***.test",
            "Send again",
            "2 more times",
            "Password: ",
        ),
    ] {
        let u = unique("web23c");
        smtplib_send(
            &sluis,
            "arts@org.test",
            &[rcpt],
            &table_mail(
                "Anna Arts <arts@org.test>",
                &format!("To: {rcpt}\r\nSubject: [beveiligd] Nota {u}\r\n"),
            ),
        );
        let link = link_in(&cap, &u);
        let downloads = tempfile::tempdir().unwrap();
        let mut b = Browser::start(downloads.path(), lang);
        b.goto(&link);
        b.click("form[action$='/send'] button");
        let t = b.text_with(sent);
        assert!(t.contains(again) && t.contains(left), "{lang}: {t}");
        assert!(t.contains("Anna Arts (arts@org.test)"), "{lang}: {t}");
        b.screenshot(&format!("23-password-sent-{lang}-desktop"));
        b.viewport(Some((390, 844)));
        b.goto(&link);
        b.text_with(sent);
        b.screenshot(&format!("23-password-sent-{lang}-phone"));
        b.viewport(None);
        let pm = poll(ARRIVAL, "the password mail", || {
            cap.messages()
                .into_iter()
                .find(|m| m.rcpt_tos == [rcpt] && m.text().contains(pw))
        });
        let pt = pm.text();
        let i = pt.find(pw).unwrap() + pw.len();
        let password = pt[i..].lines().next().unwrap().trim().to_string();
        b.type_into("#secret", &password);
        b.click("form[action$='/login'] button");
        b.text_with("nota.pdf");
        b.screenshot(&format!("23-html-table-{lang}-desktop"));
    }
}
