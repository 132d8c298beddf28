//! What the recipient reads on the portal (issue 23, item 4), through the real binary: where the
//! password or code went and how often it can be sent again, the sender's name, real dates in
//! the ZIP, and HTML mail that keeps its table borders and colours but loads nothing remote.

mod common;

use common::http::Client;
use common::portal::*;
use common::protect::*;
use common::*;

fn send(c: &mut Client, link: &str, token: &str) -> common::http::HttpResponse {
    c.post_form(&format!("{link}/send"), &[("csrf", token)])
}

#[test]
fn after_sending_the_page_says_where_and_how_often_again() {
    let p = portal(|c| c);
    let u = unique("resend");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet.jansen@extern.test"],
        &table_mail(
            "Anna Arts <arts@org.test>",
            &format!("To: piet.jansen@extern.test\r\nSubject: [beveiligd] {u}\r\n"),
        ),
    );
    let link = link_path(&p, &u, "piet.jansen@extern.test");
    let mut c = Client::new(p.web);
    let landing = c.get(&link);
    let t = landing.text();
    assert!(t.contains("Verzend mijn wachtwoord"), "{t}");
    assert!(!t.contains("Opnieuw versturen"), "{t}");
    let token = csrf(&landing);

    assert_eq!(send(&mut c, &link, &token).status, 303);
    let page = c.get(&format!("{link}?sent=1")).text();
    assert!(page.contains("p***@e***.test"), "{page}");
    assert!(
        !page.contains("piet.jansen"),
        "the address is masked: {page}"
    );
    assert!(page.contains("Opnieuw versturen"), "{page}");
    assert!(!page.contains("Verzend mijn wachtwoord"), "{page}");
    assert!(page.contains("nog 2 keer opnieuw versturen"), "{page}");
    assert!(page.contains("maximaal 3 keer per 10 minuten"), "{page}");
    // A reload without ?sent=1 still knows, and so does the English page.
    let en = c.get(&format!("{link}?lang=en")).text();
    assert!(en.contains("Send again"), "{en}");
    assert!(en.contains("2 more times"), "{en}");
    assert!(en.contains("p***@e***.test"), "{en}");
    assert_eq!(c.get(&format!("{link}?lang=nl")).status, 200);

    assert_eq!(send(&mut c, &link, &token).status, 303);
    assert_eq!(send(&mut c, &link, &token).status, 303);
    let page = c.get(&link).text();
    assert!(
        page.contains("Opnieuw versturen kan weer over 10 minuten"),
        "{page}"
    );
    assert!(
        !page.contains("class=\"button quiet\""),
        "no button when none are left: {page}"
    );
    let r = send(&mut c, &link, &token);
    assert_eq!(r.status, 429);
    assert!(!r.header("retry-after").is_empty());
    // The third password is the one that works.
    let pw = password_from_mail(&p, "piet.jansen@extern.test", 2);
    let r = c.post_form(
        &format!("{link}/login"),
        &[("csrf", &token), ("secret", &pw)],
    );
    assert_eq!(r.status, 303);
}

#[test]
fn sms_page_names_the_masked_phone() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.txt");
    let p = sms_portal(&outbox);
    let link = send_sms_message(&p, "smsmask");
    let mut c = Client::new(p.web);
    let landing = c.get(&link);
    assert!(landing.text().contains("Stuur mij een code"));
    let token = csrf(&landing);
    assert_eq!(send(&mut c, &link, &token).status, 303);
    let page = c.get(&format!("{link}?sent=1")).text();
    assert!(page.contains("+31 6 ** ** ** 78"), "{page}");
    assert!(!page.contains("12345678"), "{page}");
    assert!(page.contains("Opnieuw versturen"), "{page}");
}

#[test]
fn sender_name_zip_dates_and_html_tables() {
    let p = portal(|c| c);
    let u = unique("reads");
    let before = chrono::Local::now();
    // An encoded display name with a control character, markup and a bidi override.
    let from = "=?utf-8?q?Jan_de_Vries=01_=3Cb=3Ezorg=3C/b=3E=E2=80=AE?= <jan@org.test>";
    smtplib_send(
        &p.sluis,
        "jan@org.test",
        &["piet@extern.test"],
        &table_mail(
            from,
            &format!("To: piet@extern.test\r\nSubject: [beveiligd] {u}\r\n"),
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    let mut c = Client::new(p.web);
    let landing = c.get(&link);
    let t = landing.text();
    assert!(
        t.contains("Jan de Vries &lt;b&gt;zorg&lt;/b&gt; (jan@org.test)")
            || t.contains("Jan de Vries &#60;b&#62;zorg&#60;/b&#62; (jan@org.test)"),
        "the name, cleaned and escaped: {t}"
    );
    assert!(!t.contains('\u{202e}') && !t.contains('\u{1}'), "{t}");
    let token = csrf(&landing);
    assert_eq!(send(&mut c, &link, &token).status, 303);
    let pw = password_from_mail(&p, "piet@extern.test", 0);
    let r = c.post_form(
        &format!("{link}/login"),
        &[("csrf", &token), ("secret", &pw)],
    );
    assert_eq!(r.status, 303);
    let page = c.get(&link).text();
    assert!(
        page.contains("(jan@org.test)") && page.contains("Jan de Vries"),
        "{page}"
    );

    // ZIP entries carry the message's time, not 1980.
    let z = c.get(&format!("{link}/zip"));
    assert_eq!(z.status, 200);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(z.body)).unwrap();
    let e = zip.by_index(0).unwrap();
    let d = e.last_modified().expect("a date");
    use chrono::{Datelike, Timelike};
    let after = chrono::Local::now();
    let got = (
        d.year() as i32,
        d.month() as u32,
        d.day() as u32,
        d.hour() as u32,
    );
    let near = [before, after].map(|t| (t.year(), t.month(), t.day(), t.hour()));
    assert!(near.contains(&got), "{got:?} not near {near:?}");

    // The HTML keeps its table look; nothing remote and no script in CSS.
    let body = c.get(&format!("{link}/body"));
    assert_eq!(body.status, 200);
    let b = body.text();
    for kept in [
        "border=\"1\"",
        "cellpadding=\"4\"",
        "bgcolor=\"#eeeeee\"",
        "border:2px solid #333",
        "color:#c00",
        "background-color:yellow",
        "font-weight:bold",
    ] {
        assert!(b.contains(kept), "{kept} lost: {b}");
    }
    for gone in ["tracker.example", "url(", "expression"] {
        assert!(!b.contains(gone), "{gone} kept: {b}");
    }
    assert!(
        body.header("content-security-policy")
            .contains("img-src data:"),
        "the CSP backs it up"
    );
}

/// A burst of sends at once: exactly the limit goes out, the rest get 429, and the page then
/// says when the next can go instead of offering a button.
#[test]
fn a_burst_of_sends_gets_the_limit_and_the_page_says_when() {
    let p = portal(|c| c);
    let u = unique("burst");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &table_mail(
            "Anna Arts <arts@org.test>",
            &format!("To: piet@extern.test\r\nSubject: [beveiligd] {u}\r\n"),
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    let token = csrf(&Client::new(p.web).get(&link));
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..12)
            .map(|_| s.spawn(|| send(&mut Client::new(p.web), &link, &token).status))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 303).count(),
        3,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        9,
        "{statuses:?}"
    );
    let page = Client::new(p.web).get(&link).text();
    assert!(
        page.contains("Opnieuw versturen kan weer over 10 minuten"),
        "{page}"
    );
    assert!(!page.contains("class=\"button quiet\""), "{page}");
    // Three password mails went out (the refused ones were never queued).
    password_from_mail(&p, "piet@extern.test", 2);
    let mails = p
        .cap
        .messages()
        .into_iter()
        .filter(|m| m.rcpt_tos == ["piet@extern.test"] && m.text().contains("Wachtwoord: "))
        .count();
    assert_eq!(mails, 3);
}
