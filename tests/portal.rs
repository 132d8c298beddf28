//! The recipient portal over HTTP, from a real mail through the gateway to a download whose bytes
//! match the original: password by mail, SMS codes through the outbox and through an HTTP
//! provider, sessions, CSRF, lockout, hostile content, and the clear pages for expired, blocked,
//! exhausted and unknown links.

mod common;

use common::http::Client;
use common::portal::*;
use common::protect::*;
use common::*;
use std::io::Read;
use std::time::Duration;

#[test]
fn password_by_mail_then_message_files_and_zip() {
    let p = portal(|c| c);
    let u = unique("pw");
    let big = noise(3 << 20, 7);
    // RFC 2231-encoded hostile names: quotes, a CR/LF, ../, a right-to-left override, 300 chars.
    let long = "l".repeat(300);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("%22quoted%22%0D%0Aname.pdf", b"%PDF-1.4 eerste".to_vec()),
        ("..%2F..%2Fetc%2Fpasswd", b"tweede".to_vec()),
        ("rapport%E2%80%AEfdp.exe", big.clone()),
        (long.as_str(), b"lang".to_vec()),
    ];
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test", "klaas@extern.test"],
        &html_mail(
            &format!("To: piet@extern.test, klaas@extern.test\r\nSubject: [beveiligd] {u}\r\n"),
            &files,
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    let other_link = link_path(&p, &u, "klaas@extern.test");
    let mut c = Client::new(p.web);

    let landing = c.get(&link);
    assert_eq!(landing.status, 200);
    assert_headers(&landing);
    assert!(landing.text().contains("Verzend mijn wachtwoord"));
    assert!(
        !landing.text().contains(&u),
        "the subject is not shown before sign-in"
    );
    let token = csrf(&landing);

    // Nothing opens without signing in.
    assert_eq!(c.get(&format!("{link}/f/0")).status, 303);
    assert_eq!(c.get(&format!("{link}/zip")).status, 303);
    assert_eq!(c.get(&format!("{link}/body")).status, 403);
    // CSRF: no token, a wrong token, or another origin are refused.
    assert_eq!(c.post_form(&format!("{link}/send"), &[]).status, 403);
    assert_eq!(
        c.post_form(&format!("{link}/send"), &[("csrf", &"0".repeat(32))])
            .status,
        403
    );
    c.origin = Some("http://evil.example".into());
    assert_eq!(
        c.post_form(&format!("{link}/send"), &[("csrf", &token)])
            .status,
        403
    );
    // A sandboxed or privacy-stripped cross-site form: Origin null, Sec-Fetch-Site cross-site.
    c.origin = None;
    let r = c.request(
        "POST",
        &format!("{link}/send"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Origin", "null"),
            ("Sec-Fetch-Site", "cross-site"),
        ],
        format!("csrf={token}").as_bytes(),
    );
    assert_eq!(r.status, 403);
    c.origin = Some(format!("http://{}", p.web));
    // A wrong password before any was sent.
    let r = c.post_form(
        &format!("{link}/login"),
        &[("csrf", &token), ("secret", "raden")],
    );
    assert_eq!(r.status, 401);
    assert!(r.text().contains("klopt niet"));

    let r = c.post_form(&format!("{link}/send"), &[("csrf", &token)]);
    assert_eq!(r.status, 303);
    assert!(
        c.get(&format!("{link}?sent=1"))
            .text()
            .contains("naar je e-mailadres gestuurd")
    );
    let first = password_from_mail(&p, "piet@extern.test", 0);
    // A second request voids the first password.
    assert_eq!(
        c.post_form(&format!("{link}/send"), &[("csrf", &token)])
            .status,
        303
    );
    let second = password_from_mail(&p, "piet@extern.test", 1);
    assert_ne!(first, second);
    let r = c.post_form(
        &format!("{link}/login"),
        &[("csrf", &token), ("secret", &first)],
    );
    assert_eq!(r.status, 401, "the old password no longer works");
    let r = c.post_form(
        &format!("{link}/login"),
        &[("csrf", &token), ("secret", &second)],
    );
    assert_eq!(r.status, 303);
    let sc = r.header("set-cookie");
    assert!(
        sc.contains("HttpOnly") && sc.contains("SameSite=Strict"),
        "{sc}"
    );

    // Each file's SHA-256, to check a download against: a large file's is computed just after
    // the reply, so the page may say so for a moment before it shows the sum.
    use sha2::{Digest, Sha256};
    let sum = Sha256::digest(&big);
    let sum: String = sum.iter().map(|b| format!("{b:02x}")).collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let page = loop {
        let page = c.get(&link);
        assert_eq!(page.status, 200);
        let t = page.text();
        if t.contains(&format!("SHA-256 <code>{sum}</code>")) {
            break page;
        }
        assert!(
            t.contains("SHA-256 wordt berekend") || t.contains("SHA-256 is being computed"),
            "{t}"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "the checksum never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_headers(&page);
    let t = page.text();
    assert!(t.contains(&u), "subject shown");
    assert!(t.contains("arts@org.test"));
    assert!(
        t.contains("sandbox src=\"/l/"),
        "the body is in a sandboxed frame"
    );
    assert!(t.contains("&#34;quoted&#34;name.pdf"), "names escaped: {t}");
    assert!(!t.contains("<script"), "no script in the page");
    // The sender's HTML, sanitised, under a sandbox CSP.
    let body = c.get(&format!("{link}/body"));
    assert_eq!(body.status, 200);
    assert!(body.header("content-security-policy").contains("sandbox"));
    let b = body.text();
    let b = &b[b.find("<body>").expect("a body")..];
    assert!(b.contains("Uitslag <b>goed</b>"), "{b}");
    for bad in [
        "<script",
        "onerror",
        "onload",
        "javascript:",
        "tracker.example",
        "<style",
        "x.example",
    ] {
        assert!(!b.contains(bad), "{bad} survived sanitising: {b}");
    }

    // One file: the original bytes, as an attachment, never sniffed.
    let f = c.get(&format!("{link}/f/2"));
    assert_eq!(f.status, 200);
    assert_eq!(f.body, big);
    assert_eq!(f.header("content-type"), "application/octet-stream");
    assert_eq!(f.header("x-content-type-options"), "nosniff");
    let cd = f.header("content-disposition");
    // The right-to-left override was taken out when the file was stored.
    assert!(
        cd.starts_with("attachment; filename=\"rapportfdp.exe\""),
        "{cd}"
    );
    assert!(cd.contains("filename*=UTF-8''rapportfdp.exe"), "{cd}");
    let f0 = c.get(&format!("{link}/f/0"));
    assert!(!f0.header("content-disposition").contains('\r'));
    assert_eq!(f0.body, b"%PDF-1.4 eerste");

    // Everything as one ZIP, with safe, unique names.
    let z = c.get(&format!("{link}/zip"));
    assert_eq!(z.status, 200);
    assert_eq!(z.header("content-type"), "application/zip");
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(z.body)).unwrap();
    assert_eq!(zip.len(), 4);
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).unwrap();
        let name = e.name().unwrap().to_string();
        assert!(
            !name.contains('/') && !name.contains('\\') && !name.starts_with('.'),
            "{name}"
        );
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if name.contains("fdp") {
            assert_eq!(data, big);
        }
        names.push(name);
    }
    assert!(names.iter().any(|n| n == "passwd"), "{names:?}");
    assert!(names.iter().all(|n| n.chars().count() <= 200), "{names:?}");

    // The session opens only its own link.
    let r = c.get(&other_link);
    assert!(
        r.text().contains("Verzend mijn wachtwoord"),
        "another recipient's link needs its own sign-in"
    );
    assert_eq!(c.get(&format!("{other_link}/f/0")).status, 303);

    // Signing out ends the session.
    let token = csrf(&c.get(&link));
    assert_eq!(
        c.post_form(&format!("{link}/logout"), &[("csrf", &token)])
            .status,
        303
    );
    assert_eq!(c.get(&format!("{link}/f/0")).status, 303);

    // Every view and download was recorded for the sender's tracking.
    let mut p = p;
    p.sluis.terminate(Duration::from_secs(20));
    let store = open_store(&p.sluis.data_dir);
    let (id, rcpt) = store
        .meta
        .link_for_token(link.trim_start_matches("/l/"))
        .unwrap()
        .unwrap();
    let events = store.meta.events(id).unwrap();
    use sluis::store::EventKind;
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventKind::Opened && e.rcpt == Some(rcpt))
    );
    let downloads: Vec<Option<u32>> = events
        .iter()
        .filter(|e| e.kind == EventKind::Downloaded)
        .map(|e| e.file)
        .collect();
    assert!(
        downloads.contains(&Some(2)) && downloads.contains(&Some(0)),
        "{events:?}"
    );
    assert_eq!(
        downloads.len(),
        2 + 4,
        "two single files and four in the ZIP: {events:?}"
    );
}

#[test]
fn brute_force_locks_the_link_even_for_the_right_password() {
    let p = portal(|c| c);
    let u = unique("bf");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [secure files] {u}\r\nX-Sluis-Password: Paard-Batterij-Nietje\r\n"
            ),
            "Tekst",
            &[("a.txt", b"x".to_vec())],
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    let mut c = Client::new(p.web);
    let landing = c.get(&link);
    assert!(
        !landing.text().contains("Verzend mijn wachtwoord"),
        "a custom password is never sent"
    );
    let token = csrf(&landing);
    for _ in 0..5 {
        let r = c.post_form(
            &format!("{link}/login"),
            &[("csrf", &token), ("secret", "fout")],
        );
        assert_eq!(r.status, 401);
    }
    // A fresh client (new IP-independent session) still meets the lock on this link.
    let mut c2 = Client::new(p.web);
    let r = c2.post_form(
        &format!("{link}/login"),
        &[("csrf", &token), ("secret", "Paard-Batterij-Nietje")],
    );
    assert_eq!(r.status, 429);
    let t = r.text();
    assert!(t.contains("Te veel pogingen"), "{t}");
    // The first lock is a minute: said as "1 minuut" or in seconds, never "1 minuten".
    assert!(
        t.contains("Probeer het over 1 minuut opnieuw") || t.contains(" seconden opnieuw"),
        "{t}"
    );
}

#[test]
fn clear_pages_for_unknown_expired_exhausted_and_public_links() {
    let p = portal(|c| c);
    let mut c = Client::new(p.web);
    // Unknown links, well-formed or cut off: one friendly 404 page that says nothing about
    // which links exist; anything else a plain 404.
    let a = c.get("/l/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let b = c.get("/l/..%2F..%2Fetc%2Fpasswd");
    let cut = c.get("/l/AAAAAAAAAAAA");
    for r in [&a, &b, &cut] {
        assert_eq!(r.status, 404);
        assert_eq!(r.text(), a.text());
    }
    let t = a.text();
    assert!(t.contains("Deze link werkt niet"), "{t}");
    assert!(!t.contains("AAAAAAAA") && !t.contains("passwd"), "{t}");
    let d = c.get("/nothing");
    assert_eq!(d.status, 404);
    assert_eq!(d.text(), "Not found\n");
    assert_eq!(c.get("/healthz").text(), "ok\n");

    let u = unique("pub");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [public files] {u}\r\nX-Sluis-Max-Downloads: 1\r\n"
            ),
            "Folder",
            &[("folder.txt", b"folder tekst".to_vec())],
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    // Public files: listed without signing in; the limit is one download.
    let page = c.get(&link);
    assert!(page.text().contains("folder.txt"), "{}", page.text());
    assert!(!page.text().contains("Verzend mijn wachtwoord"));
    assert_eq!(c.get(&format!("{link}/f/0")).body, b"folder tekst");
    let again = c.get(&format!("{link}/f/0"));
    assert_eq!(again.status, 410);
    assert!(again.text().contains("Maximaal aantal downloads bereikt"));

    // English from the browser, and the switch is remembered.
    let mut en = Client::new(p.web);
    en.accept_language = Some("en-GB,en;q=0.9".into());
    assert!(en.get(&link).text().contains("Files"));
    let nl = en.get(&format!("{link}?lang=nl"));
    assert!(nl.header("set-cookie").contains("sluis_lang=nl"));
    assert!(en.get(&link).text().contains("Bestanden"));

    let u = unique("exp");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [public files] {u}\r\nX-Sluis-Expires: 2s\r\n"
            ),
            "Folder",
            &[("a.txt", b"tekst".to_vec())],
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    std::thread::sleep(Duration::from_secs(3));
    let r = c.get(&link);
    assert_eq!(r.status, 410);
    assert!(r.text().contains("Deze link is verlopen"));
    assert_eq!(c.get(&format!("{link}/f/0")).status, 410);
}
