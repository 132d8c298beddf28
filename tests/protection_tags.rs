//! A tag or header that asks for protection always gets it (ISSUE 23 item 3): every protection
//! tag and `X-Sluis-*` header alone and combined, with and without an attachment, through the
//! real binary with the shipped policy, examined before the reply and from the queue. Nothing
//! the sender asked to protect arrives in clear at the next hop.

mod common;

use common::protect::*;
use common::*;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);
const PHONE: &str = "X-Sluis-Phone: +31612345678\r\n";

/// (subject tags, extra headers). SMS cases carry a phone number, or the recipient would be
/// refused (that case is its own test below).
const CASES: &[(&str, &str)] = &[
    ("[beveiligd]", ""),
    ("[secure]", ""),
    ("[beveiligde bestanden]", ""),
    ("[secure files]", ""),
    ("[openbare bestanden]", ""),
    ("[public files]", ""),
    ("[sms]", PHONE),
    ("[2fa]", PHONE),
    ("", "X-Sluis-Mode: secure\r\n"),
    ("", "X-Sluis-Mode: secure-files\r\n"),
    ("", "X-Sluis-Auth: sms\r\nX-Sluis-Phone: +31612345678\r\n"),
    ("", PHONE),
    ("", "X-Sluis-Password: een-lang-genoeg-wachtwoord\r\n"),
    ("", "X-Sluis-Expires: 2d\r\n"),
    ("", "X-Sluis-Max-Downloads: 3\r\n"),
    ("[public files] [sms]", PHONE),
    (
        "[openbare bestanden]",
        "X-Sluis-Password: een-lang-genoeg-wachtwoord\r\n",
    ),
    ("[onbeveiligd] [beveiligd]", ""),
    ("[unsecure] [secure files]", ""),
    ("[onbeveiligd] [sms]", PHONE),
    ("[unsecure]", "X-Sluis-Expires: 2d\r\n"),
    ("[secure files] [sms] [beveiligd]", PHONE),
];

fn every_tag_alone_and_combined_is_protected(mode: &str) {
    let cap = Capture::start();
    let sluis = start_examining(&cap, mode);
    let mut s = sluis.session();
    let mut sent = Vec::new();
    for (i, (tags, headers)) in CASES.iter().enumerate() {
        for with_file in [false, true] {
            let u = unique(&format!("c{i}f{}", u8::from(with_file)));
            let secret = format!("GEHEIM{u}");
            let (body, files) = if with_file {
                let f = vec![(
                    "stukken.txt",
                    format!("{secret} in de bijlage").into_bytes(),
                )];
                (format!("Zie de bijlage {u}."), f)
            } else {
                (format!("Een gewone vraag: {secret}."), vec![])
            };
            let m = mail(
                &format!("To: rcpt@extern.test\r\nSubject: {tags} Vraag {u}\r\n{headers}"),
                &body,
                &files,
            );
            s.send_mail("arts@org.test", &["rcpt@extern.test"], &m);
            sent.push((
                format!("{tags} {}", headers.trim_end()),
                with_file,
                u,
                secret,
            ));
        }
    }
    for (what, with_file, u, secret) in &sent {
        let m = cap.wait_for_containing(u, ARRIVAL);
        let text = String::from_utf8_lossy(&m.data).into_owned();
        assert!(
            !contains(&m.data, secret),
            "{what} (attachment: {with_file}) arrived in clear:\n{text}"
        );
        assert!(
            text.contains("https://veilig.org.test/l/"),
            "{what} (attachment: {with_file}) has no link:\n{text}"
        );
        let head = header_block(&m.data).to_ascii_lowercase();
        assert!(
            !head
                .lines()
                .any(|l| l.starts_with("x-sluis-") && !l.starts_with("x-sluis-processed:")),
            "{what}: control headers left:\n{head}"
        );
    }
    // Nothing at all (notices, bounces) carried a secret.
    for m in cap.messages() {
        for (what, _, _, secret) in &sent {
            assert!(!contains(&m.data, secret), "{what}: secret in {}", m.name);
        }
    }
}

#[test]
fn protection_tags_examined_before_the_reply() {
    every_tag_alone_and_combined_is_protected("always");
}

#[test]
fn protection_tags_examined_from_the_queue() {
    every_tag_alone_and_combined_is_protected("never");
}

#[test]
fn sms_without_a_phone_number_is_refused_never_sent_in_clear() {
    for mode in ["always", "never"] {
        let cap = Capture::start();
        let sluis = start_examining(&cap, mode);
        let mut s = sluis.session();
        let u = unique("zondernummer");
        let secret = format!("GEHEIM{u}");
        let m = mail(
            &format!("To: rcpt@extern.test\r\nSubject: [sms] Vraag {u}\r\n"),
            &format!("Een gewone vraag: {secret}."),
            &[],
        );
        s.expect("MAIL FROM:<arts@org.test>", "250 2.1.0");
        s.expect("RCPT TO:<rcpt@extern.test>", "250 2.1.5");
        let reply = s.data(&m);
        // Refused at the reply, or accepted and bounced to the sender: never delivered.
        if reply.starts("250") {
            let bounce = poll(ARRIVAL, "the bounce to the sender", || {
                cap.messages()
                    .into_iter()
                    .find(|m| m.rcpt_tos == ["arts@org.test"] && contains(&m.data, &u))
            });
            // What happened and what to do, Dutch first, without sluis's header names.
            let t = bounce.text();
            // The report's own header block carries sluis's marker: read its body.
            let body = t.split_once("\r\n\r\n").map_or(t.as_str(), |(_, b)| b);
            let human = body.split("message/delivery-status").next().unwrap();
            let (nl, en) = (
                human.find("geen telefoonnummer").expect(&t),
                human.find("no phone number").expect(&t),
            );
            assert!(nl < en, "{t}");
            assert!(!human.contains("X-Sluis"), "{t}");
        } else {
            assert!(reply.starts("550 5.7.0"), "{mode}: {reply:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
        for m in cap.messages() {
            assert!(
                !m.rcpt_tos.contains(&"rcpt@extern.test".to_string()),
                "{mode}: the recipient got mail without a phone number for SMS"
            );
            assert!(!contains(&m.data, &secret), "{mode}: secret in {}", m.name);
        }
    }
}
