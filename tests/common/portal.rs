//! Helpers for the portal tests: sluis with its portal on a known port, links from delivered
//! copies, CSRF tokens from pages, hostile HTML mail, passwords from delivered password mails.

use super::http::HttpResponse;
use super::protect::*;
use super::*;

pub struct Portal {
    pub sluis: Sluis,
    pub cap: Capture,
    pub web: std::net::SocketAddr,
}

pub fn portal(extra: impl FnOnce(Config) -> Config) -> Portal {
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

/// sluis with its SMS outbox at `outbox` (a file in the test's own temporary folder).
pub fn sms_portal(outbox: &std::path::Path) -> Portal {
    let ob = outbox.to_str().unwrap().to_string();
    portal(|c| {
        c.set("sms", "provider", "\"outbox\"")
            .set("sms", "path", &format!("{ob:?}"))
    })
}

/// Sends piet@extern.test a secure message with SMS sign-in and a file (the subject a fresh
/// unique word made from `name`) and returns the path of his personal link.
pub fn send_sms_message(p: &Portal, name: &str) -> String {
    let u = unique(name);
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
    link_path(p, &u, "piet@extern.test")
}

/// The path of the personal link in the copy that `rcpt` received.
pub fn link_path(p: &Portal, subject: &str, rcpt: &str) -> String {
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

pub fn csrf(page: &HttpResponse) -> String {
    let t = page.text();
    let i = t.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    t[i..i + 32].to_string()
}

pub const HOSTILE_HTML: &str = "<p>Uitslag <b>goed</b></p><script>alert(1)</script>\
<img src=\"https://tracker.example/p.gif\" onerror=\"alert(2)\"><svg onload=\"alert(3)\"></svg>\
<a href=\"javascript:alert(4)\">klik</a><style>body{background:url(https://x.example/a)}</style>";

pub fn html_mail(headers: &str, files: &[(&str, Vec<u8>)]) -> Vec<u8> {
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

/// A secure message with an HTML table (borders, colours and some hostile CSS) and one file.
pub fn table_mail(from: &str, headers: &str) -> Vec<u8> {
    use base64::Engine;
    let html = r##"<table border="1" cellpadding="4" bgcolor="#eeeeee" style="border-collapse: collapse; border: 2px solid #333"><tr><td style="color: #c00; background-color: yellow; font-weight: bold">Bedrag</td><td style="background-image: url(https://tracker.example/bg.png); color: expression(alert(1))">42</td></tr></table><img src="https://tracker.example/p.gif" alt="logo">"##;
    format!(
        "From: {from}\r\n{headers}MIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"=_m\"\r\n\r\n--=_m\r\n\
         Content-Type: multipart/alternative; boundary=\"=_a\"\r\n\r\n\
         --=_a\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBedrag 42\r\n\
         --=_a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--=_a--\r\n\
         --=_m\r\nContent-Type: application/pdf\r\n\
         Content-Disposition: attachment; filename=\"nota.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--=_m--\r\n",
        base64::engine::general_purpose::STANDARD.encode(b"%PDF-1.4 nota")
    )
    .into_bytes()
}

pub fn password_from_mail(p: &Portal, rcpt: &str, skip: usize) -> String {
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

pub fn assert_headers(r: &HttpResponse) {
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

/// The digits of the one-time code in an SMS text ("... van Org: 12345678 (10 minuten ...)").
pub fn code_in(text: &str) -> String {
    text.split(": ")
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect()
}

/// Waits for the newest SMS in an outbox file; returns it (JSON: at, to, text).
pub fn last_sms(outbox: &std::path::Path) -> serde_json::Value {
    let line = poll(ARRIVAL, "the SMS in the outbox", || {
        std::fs::read_to_string(outbox)
            .ok()
            .filter(|s| !s.is_empty())
    });
    serde_json::from_str(line.lines().last().unwrap()).unwrap()
}
