//! Signing in to the portal: SMS codes through the outbox and through a generic HTTP provider,
//! and HTTPS with `__Host-` secure cookies.

mod common;

use common::http::Client;
use common::portal::*;
use common::protect::*;
use common::*;

#[test]
fn sms_codes_through_the_outbox_and_an_http_provider() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.txt");
    let p = sms_portal(&outbox);
    let link = send_sms_message(&p, "sms");
    let mut c = Client::new(p.web);
    let landing = c.get(&link);
    assert!(landing.text().contains("sms"), "{}", landing.text());
    let token = csrf(&landing);
    assert_eq!(
        c.post_form(&format!("{link}/send"), &[("csrf", &token)])
            .status,
        303
    );
    let sms = last_sms(&outbox);
    assert_eq!(sms["to"], "+31612345678");
    let text = sms["text"].as_str().unwrap();
    assert!(text.contains("(10 minuten geldig)"), "{text}");
    let code = code_in(text);
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
    let code = code_in(text);
    assert_eq!(
        c.post_form(
            &format!("{link}/login"),
            &[("csrf", &token), ("secret", &code)]
        )
        .status,
        303
    );
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
