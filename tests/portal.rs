//! The recipient portal over HTTP, from a real mail through the gateway to a download whose bytes
//! match the original: password by mail, SMS codes through the outbox and through an HTTP
//! provider, sessions, CSRF, lockout, hostile content, and the clear pages for expired, blocked,
//! exhausted and unknown links.

mod common;

use common::http::{Client, HttpResponse};
use common::protect::*;
use common::*;
use std::io::Read;
use std::time::Duration;

struct Portal {
    sluis: Sluis,
    cap: Capture,
    web: std::net::SocketAddr,
}

fn portal(extra: impl FnOnce(Config) -> Config) -> Portal {
    let cap = Capture::start();
    let port = free_port();
    let sluis = start_with(&cap, |c| {
        extra(
            c.set("web", "listen", &format!("\"127.0.0.1:{port}\""))
                .set("web", "public_url", &format!("\"http://127.0.0.1:{port}\"")),
        )
    });
    let web = sluis.web_addr.expect("web address");
    Portal { sluis, cap, web }
}

/// The path of the personal link in the copy that `rcpt` received.
fn link_path(p: &Portal, subject: &str, rcpt: &str) -> String {
    let m = poll(ARRIVAL, "the copy", || {
        p.cap
            .messages()
            .into_iter()
            .find(|m| m.text().contains(subject) && m.rcpt_tos == [rcpt.to_string()])
    });
    let parsed = mail_parser::MessageParser::default()
        .parse(&m.data)
        .unwrap();
    let text = parsed.body_text(0).unwrap().into_owned();
    let i = text.find("/l/").expect("a link");
    text[i..i + 3 + 32].to_string()
}

fn csrf(page: &HttpResponse) -> String {
    let t = page.text();
    let i = t.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    t[i..i + 32].to_string()
}

const HOSTILE_HTML: &str = "<p>Uitslag <b>goed</b></p><script>alert(1)</script>\
<img src=\"https://tracker.example/p.gif\" onerror=\"alert(2)\"><svg onload=\"alert(3)\"></svg>\
<a href=\"javascript:alert(4)\">klik</a><style>body{background:url(https://x.example/a)}</style>";

fn html_mail(headers: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    use base64::Engine;
    let mut m = format!(
        "From: Anna Arts <arts@org.test>\r\n{headers}MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"=_m\"\r\n\r\n--=_m\r\n\
         Content-Type: multipart/alternative; boundary=\"=_a\"\r\n\r\n\
         --=_a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nUitslag goed\r\n\
         --=_a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{HOSTILE_HTML}\r\n--=_a--\r\n"
    )
    .into_bytes();
    for (name, data) in files {
        m.extend_from_slice(
            format!(
                "--=_m\r\nContent-Type: application/octet-stream\r\n\
                 Content-Disposition: attachment; filename*=UTF-8''{}\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
                name,
                base64::engine::general_purpose::STANDARD
                    .encode(data)
                    .as_bytes()
                    .chunks(76)
                    .map(|c| std::str::from_utf8(c).unwrap())
                    .collect::<Vec<_>>()
                    .join("\r\n")
            )
            .as_bytes(),
        );
    }
    m.extend_from_slice(b"--=_m--\r\n");
    m
}

fn password_from_mail(p: &Portal, rcpt: &str, skip: usize) -> String {
    let m = poll(ARRIVAL, "the password mail", || {
        p.cap
            .messages()
            .into_iter()
            .filter(|m| m.rcpt_tos == [rcpt.to_string()] && m.text().contains("Wachtwoord: "))
            .nth(skip)
    });
    let t = m.text();
    let i = t.find("Wachtwoord: ").unwrap() + 12;
    t[i..].lines().next().unwrap().trim().to_string()
}

fn assert_headers(r: &HttpResponse) {
    let csp = r.header("content-security-policy");
    assert!(
        csp.contains("frame-ancestors 'none'") || csp.contains("sandbox"),
        "{csp}"
    );
    assert!(
        !csp.contains("unsafe-inline") || csp.contains("sandbox"),
        "{csp}"
    );
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(r.header("referrer-policy"), "no-referrer");
    assert_eq!(r.header("cache-control"), "no-store");
}

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

    let page = c.get(&link);
    assert_eq!(page.status, 200);
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
fn sms_codes_through_the_outbox_and_an_http_provider() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.txt");
    let ob = outbox.to_str().unwrap().to_string();
    let p = portal(|c| {
        c.set("sms", "provider", "\"outbox\"")
            .set("sms", "path", &format!("{ob:?}"))
    });
    let u = unique("sms");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [secure] [sms] {u}\r\n\
                 X-Sluis-Phone: piet@extern.test=06-12345678\r\n"
            ),
            "Tekst",
            &[("a.txt", b"inhoud".to_vec())],
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    let mut c = Client::new(p.web);
    let landing = c.get(&link);
    assert!(landing.text().contains("sms"), "{}", landing.text());
    let token = csrf(&landing);
    assert_eq!(
        c.post_form(&format!("{link}/send"), &[("csrf", &token)])
            .status,
        303
    );
    let line = poll(ARRIVAL, "the SMS in the outbox", || {
        std::fs::read_to_string(&outbox)
            .ok()
            .filter(|s| !s.is_empty())
    });
    let sms: serde_json::Value = serde_json::from_str(line.lines().last().unwrap()).unwrap();
    assert_eq!(sms["to"], "+31612345678");
    let text = sms["text"].as_str().unwrap();
    let code: String = text
        .split(": ")
        .nth(1)
        .unwrap()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    assert!(code.len() >= 6, "{text}");
    assert_eq!(
        c.post_form(
            &format!("{link}/login"),
            &[("csrf", &token), ("secret", "00000000")]
        )
        .status,
        401
    );
    assert_eq!(
        c.post_form(
            &format!("{link}/login"),
            &[("csrf", &token), ("secret", &code)]
        )
        .status,
        303
    );
    assert_eq!(c.get(&format!("{link}/f/0")).body, b"inhoud");
    // Single use: after signing out the same code does not open it again.
    let t2 = csrf(&c.get(&link));
    c.post_form(&format!("{link}/logout"), &[("csrf", &t2)]);
    let r = c.post_form(
        &format!("{link}/login"),
        &[("csrf", &token), ("secret", &code)],
    );
    assert_eq!(r.status, 401);
    // Resends are limited.
    let mut last = 0;
    for _ in 0..4 {
        last = c
            .post_form(&format!("{link}/send"), &[("csrf", &token)])
            .status;
    }
    assert_eq!(last, 429);
}

#[test]
fn sms_through_a_generic_http_provider() {
    let dir = tempfile::tempdir().unwrap();
    let seen = dir.path().join("requests.jsonl");
    let port = free_port();
    let mut server = std::process::Command::new("python3")
        .arg(support("http_capture.py"))
        .arg(port.to_string())
        .arg(&seen)
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/v1/messages");
    let p = portal(|c| {
        c.set("sms", "provider", "\"http\"")
            .set("sms", "url", &format!("{url:?}"))
            .set("sms", "headers", "{ Authorization = \"Bearer geheim\" }")
            .set(
                "sms",
                "body",
                "'{\"recipient\":\"{to_json}\",\"message\":\"{text_json}\"}'",
            )
    });
    let u = unique("smshttp");
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [secure] [sms] {u}\r\nX-Sluis-Phone: +31612345678\r\n"
            ),
            "Tekst",
            &[],
        ),
    );
    let link = link_path(&p, &u, "piet@extern.test");
    let mut c = Client::new(p.web);
    let token = csrf(&c.get(&link));
    assert_eq!(
        c.post_form(&format!("{link}/send"), &[("csrf", &token)])
            .status,
        303
    );
    let line = poll(ARRIVAL, "the provider to be called", || {
        std::fs::read_to_string(&seen)
            .ok()
            .filter(|s| !s.is_empty())
    });
    let _ = server.kill();
    let _ = server.wait();
    let req: serde_json::Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(req["method"], "POST");
    assert_eq!(req["path"], "/v1/messages");
    let auth = req["headers"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .map(|(_, v)| v.clone());
    assert_eq!(auth, Some(serde_json::json!("Bearer geheim")));
    let body: serde_json::Value = serde_json::from_str(req["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["recipient"], "+31612345678");
    let text = body["message"].as_str().unwrap();
    let code: String = text.split(": ").nth(1).unwrap().chars().take(8).collect();
    assert_eq!(
        c.post_form(
            &format!("{link}/login"),
            &[("csrf", &token), ("secret", &code)]
        )
        .status,
        303
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
    assert!(r.text().contains("Te veel pogingen"));
}

#[test]
fn clear_pages_for_unknown_expired_exhausted_and_public_links() {
    let p = portal(|c| c);
    let mut c = Client::new(p.web);
    // Unknown tokens, well-formed or not: one plain 404 that says nothing.
    let a = c.get("/l/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    let b = c.get("/l/..%2F..%2Fetc%2Fpasswd");
    let d = c.get("/nothing");
    for r in [&a, &b, &d] {
        assert_eq!(r.status, 404);
        assert_eq!(r.text(), "Not found\n");
    }
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

/// curl over HTTPS (certificate not verified: it is self-signed); returns (status, headers, body).
fn curl(args: &[&str]) -> (u16, String, String) {
    let out = std::process::Command::new("curl")
        .args(["-sk", "-D", "-", "--max-time", "30"])
        .args(args)
        .output()
        .expect("run curl (Debian package curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

#[test]
fn over_https_sessions_use_host_prefixed_secure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok);
    let cap = Capture::start();
    let port = free_port();
    let (c, k) = (
        cert.to_str().unwrap().to_string(),
        key.to_str().unwrap().to_string(),
    );
    let sluis = start_with(&cap, |cfg| {
        cfg.set("web", "listen", &format!("\"127.0.0.1:{port}\""))
            .set(
                "web",
                "public_url",
                &format!("\"https://127.0.0.1:{port}\""),
            )
            .set("web", "tls_cert", &format!("{c:?}"))
            .set("web", "tls_key", &format!("{k:?}"))
    });
    let u = unique("tls");
    smtplib_send(
        &sluis,
        "arts@org.test",
        &["piet@extern.test"],
        &mail(
            &format!(
                "To: piet@extern.test\r\nSubject: [secure files] {u}\r\nX-Sluis-Password: Paard-Batterij-Nietje\r\n"
            ),
            "Tekst",
            &[("a.txt", b"over tls".to_vec())],
        ),
    );
    let m = cap.wait_for_containing(&u, ARRIVAL);
    let p = mail_parser::MessageParser::default()
        .parse(&m.data)
        .unwrap();
    let text = p.body_text(0).unwrap().into_owned();
    let base = format!("https://127.0.0.1:{port}");
    let i = text.find(&format!("{base}/l/")).expect("an https link");
    let link = text[i..i + base.len() + 3 + 32].to_string();
    let (status, head, body) = curl(&[&link]);
    assert_eq!(status, 200, "{head}");
    let i = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    let csrf = body[i..i + 32].to_string();
    let (status, head, _) = curl(&[
        "-H",
        &format!("Origin: {base}"),
        "--data-urlencode",
        &format!("csrf={csrf}"),
        "--data-urlencode",
        "secret=Paard-Batterij-Nietje",
        &format!("{link}/login"),
    ]);
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_default()
        .to_string();
    assert!(cookie.contains("__Host-sluis="), "{cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{attr} missing: {cookie}");
    }
    let sid = cookie
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _, body) = curl(&["-H", &format!("Cookie: {sid}"), &format!("{link}/f/0")]);
    assert_eq!((status, body.as_str()), (200, "over tls"));
}
