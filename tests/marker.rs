//! The `X-Sluis-Processed` marker against the real binary (issue 15, item 1), tried as an
//! attacker would with a capturing next hop: a copied marker never skips the policy (same or
//! other Message-ID, other body, subject, header fields or recipients, in a burst), while a real
//! loop, a mail sluis relayed coming back through an upstream MTA, is still recognised.

mod common;

use common::protect::*;
use common::*;
use std::collections::HashSet;

const BSN: &str = "111222333";

/// The marker field as it arrived (folded, with its CRLF).
fn marker_of(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let start = text.find("X-Sluis-Processed:").expect("no marker");
    let mut end = start + text[start..].find("\r\n").unwrap() + 2;
    while text[end..].starts_with(' ') || text[end..].starts_with('\t') {
        end += text[end..].find("\r\n").unwrap() + 2;
    }
    text[start..end].to_string()
}

/// What an upstream MTA sends back: its trace field on top of what it got.
fn looped(data: &[u8]) -> Vec<u8> {
    let mut m = b"Received: from gateway.org.test by mx.upstream.test with ESMTPS id 4XyZ;\r\n\
\tFri, 4 Dec 2026 10:00:00 +0000\r\n"
        .to_vec();
    m.extend_from_slice(data);
    m
}

fn replace(data: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8_lossy(data);
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replacen(from, to, 1).into_bytes()
}

/// Protected: a notification with a link, nothing of the content, no control headers or tags,
/// and only sluis's own fresh marker.
fn assert_protected(m: &Captured, copied_marker: &str, what: &str) {
    let t = m.text();
    assert!(!t.contains(BSN), "{what}: the BSN left in clear:\n{t}");
    assert!(
        t.contains("beveiligd bericht"),
        "{what}: not protected:\n{t}"
    );
    assert_sluis_headers_only(m, copied_marker, what);
}

fn assert_sluis_headers_only(m: &Captured, copied_marker: &str, what: &str) {
    let t = m.text();
    let head = header_block(&m.data);
    assert!(
        head.lines().filter(|l| l.starts_with("X-Sluis-")).count() == 1
            && head
                .lines()
                .any(|l| l.starts_with("X-Sluis-Processed: v2;")),
        "{what}: control headers or markers left:\n{head}"
    );
    assert!(
        !t.contains(copied_marker.trim_end()),
        "{what}: the copied marker was passed on"
    );
    assert!(!t.contains("[onbeveiligd]"), "{what}: a tag left:\n{head}");
}

/// A plain text mail from arts@org.test with these header fields.
fn msg(headers: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Anna Arts <arts@org.test>\r\n{headers}Date: Fri, 4 Dec 2026 10:00:00 +0100\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

fn replayed_marker_never_skips_inspection(mode: &str) {
    let cap = Capture::start();
    let sluis = start_examining(&cap, mode);
    let mut seen = HashSet::new();
    let u = unique("");
    // A clean mail to an external recipient: it leaves as written, with a marker.
    let clean = msg(
        &format!(
            "To: piet@extern.test\r\nSubject: Afspraak {u}\r\nMessage-ID: <m{u}@org.test>\r\n"
        ),
        "Tot dinsdag.",
    );
    let m = send_and_catch(&sluis, &cap, &mut seen, &["piet@extern.test"], &clean);
    assert!(m.text().contains("Tot dinsdag."));
    let mark = marker_of(&m.data);
    // A BSN mail internally: in clear (the policy allows it), with a marker.
    let internal = msg(
        &format!("To: jan@org.test\r\nSubject: Dossier {u}\r\nMessage-ID: <i{u}@org.test>\r\n"),
        &format!("Het BSN is {BSN}."),
    );
    let i = send_and_catch(&sluis, &cap, &mut seen, &["jan@org.test"], &internal);
    assert!(
        i.text().contains(BSN),
        "internal mail is delivered as written"
    );
    let attacks = attacks(&u, &m, &i);
    for (what, rcpts, bytes, copied) in &attacks {
        let got = send_and_catch(&sluis, &cap, &mut seen, rcpts, bytes);
        assert_protected(&got, copied, what);
        // With two recipients the other copy arrives as well.
        for _ in 1..rcpts.len() {
            let other = next_new(&cap, &mut seen);
            assert_protected(&other, copied, what);
        }
    }
    burst_of_replays(&sluis, &cap, &seen, &attacks[0].2, &mark);
}

/// The replays tried: (what, recipients, bytes, the marker copied into them).
fn attacks(
    u: &str,
    m: &Captured,
    i: &Captured,
) -> Vec<(&'static str, Vec<&'static str>, Vec<u8>, String)> {
    let (mark, imark) = (marker_of(&m.data), marker_of(&i.data));
    let with_marker = |marker: &str, body: Vec<u8>| {
        let mut v = marker.as_bytes().to_vec();
        v.extend_from_slice(&body);
        v
    };
    vec![
        (
            "same Message-ID, other body",
            vec!["piet@extern.test"],
            with_marker(
                &mark,
                msg(
                    &format!(
                        "To: piet@extern.test\r\nSubject: Afspraak {u}\r\nMessage-ID: <m{u}@org.test>\r\n"
                    ),
                    &format!("BSN {BSN}"),
                ),
            ),
            mark.clone(),
        ),
        (
            "other Message-ID, tags and control headers",
            vec!["piet@extern.test"],
            with_marker(
                &mark,
                msg(
                    &format!(
                        "To: piet@extern.test\r\nSubject: [onbeveiligd] Lijst {u}\r\n\
                         Message-ID: <x{u}@org.test>\r\nX-Sluis-Mode: none\r\n"
                    ),
                    &format!("BSN {BSN}"),
                ),
            ),
            mark.clone(),
        ),
        (
            "the relayed mail with a line added to its body",
            vec!["piet@extern.test"],
            looped(&replace(
                &m.data,
                "Tot dinsdag.",
                &format!("Tot dinsdag. BSN {BSN}"),
            )),
            mark.clone(),
        ),
        (
            "the relayed mail with another subject",
            vec!["piet@extern.test"],
            looped(&replace(
                &m.data,
                &format!("Subject: Afspraak {u}"),
                &format!("Subject: Afspraak BSN {BSN}"),
            )),
            mark.clone(),
        ),
        (
            "an internal mail replayed to an outside recipient",
            vec!["piet@extern.test"],
            looped(&i.data),
            imark.clone(),
        ),
        (
            "an internal mail replayed with an extra recipient",
            vec!["jan@org.test", "piet@extern.test"],
            looped(&i.data),
            imark.clone(),
        ),
    ]
}

/// The same replay, eight at once on their own sessions: each protected; and nothing with the
/// BSN reached an outside recipient.
fn burst_of_replays(
    sluis: &Sluis,
    cap: &Capture,
    seen: &HashSet<String>,
    replay: &[u8],
    mark: &str,
) {
    let burst = replay.to_vec();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (addr, b) = (sluis.addr, burst.clone());
            std::thread::spawn(move || {
                let mut s = Smtp::connect_ehlo(addr);
                s.send_mail("arts@org.test", &["piet@extern.test"], &b);
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let all = cap.wait_for(seen.len() + 8, ARRIVAL);
    for m in all.iter().filter(|m| !seen.contains(&m.name)) {
        assert_protected(m, mark, "burst");
    }
    // Nothing else with the BSN went to an outside recipient.
    for m in cap.messages() {
        if m.rcpt_tos.iter().any(|r| r.ends_with("@extern.test")) {
            assert!(!m.text().contains(BSN), "BSN left to {:?}", m.rcpt_tos);
        }
    }
}

#[test]
fn a_copied_marker_never_skips_inspection_before_the_reply() {
    replayed_marker_never_skips_inspection("always");
}

#[test]
fn a_copied_marker_never_skips_inspection_in_the_relay() {
    replayed_marker_never_skips_inspection("never");
}

/// The reason for the marker: a mail whose sender opted out of protection (the tag is stripped
/// on the way out) comes back through an upstream MTA and must leave as it did, once, and not
/// be protected the second time. Only the same content to the same recipients (or fewer).
#[test]
fn a_real_loop_is_recognised_and_nothing_else() {
    let cap = Capture::start();
    let mut sluis = start(&cap);
    let mut seen = HashSet::new();
    let u = unique("");
    let rcpts = ["piet@extern.test", "an@extern.test"];
    let original = format!(
        "From: Anna Arts <arts@org.test>\r\nTo: piet@extern.test, an@extern.test\r\n\
         Subject: [onbeveiligd] Verslag {u}\r\nMessage-ID: <l{u}@org.test>\r\n\
         Date: Fri, 4 Dec 2026 10:00:00 +0100\r\nX-Sluis-Mode: none\r\n\r\n\
         Het medisch dossier van de cliënt, zoals besproken.   \r\n"
    );
    let first = send_and_catch(&sluis, &cap, &mut seen, &rcpts, original.as_bytes());
    let t = first.text();
    assert!(t.contains("medisch dossier"), "opted out: in clear:\n{t}");
    assert!(
        !t.contains("[onbeveiligd]") && !t.contains("X-Sluis-Mode"),
        "{t}"
    );
    // The key comes from the master key: a restart (even a crash) changes nothing.
    sluis.crash_restart();
    // Back from the upstream, to one of its recipients and to both: as it left, once.
    for back in [&rcpts[..1], &rcpts[..]] {
        let again = send_and_catch(&sluis, &cap, &mut seen, back, &looped(&first.data));
        let t = again.text();
        assert!(
            t.contains("medisch dossier"),
            "a loop is not protected again:\n{t}"
        );
        assert!(!t.contains("beveiligd bericht"), "{t}");
        assert_eq!(again.rcpt_tos.len(), back.len());
        // Its marker is fresh, and the second pass's is recognised too.
        assert_ne!(marker_of(&again.data), marker_of(&first.data));
    }
    // An upstream that strips trailing white space is still a loop.
    let trimmed = replace(&first.data, "besproken.   \r\n", "besproken.\r\n");
    let again = send_and_catch(&sluis, &cap, &mut seen, &rcpts[..1], &looped(&trimmed));
    assert!(again.text().contains("medisch dossier"));
    // Anything else is examined: the opt-out went with the first pass, so it is protected.
    loop_variants_are_examined(&sluis, &cap, &mut seen, &first, &u);
    // One message per pass and recipient set: nothing was handled twice.
    assert_eq!(cap.messages().len(), seen.len());
}

/// What is not the same content to the same recipients is examined: the opt-out went with the
/// first pass, so it is protected.
fn loop_variants_are_examined(
    sluis: &Sluis,
    cap: &Capture,
    seen: &mut HashSet<String>,
    first: &Captured,
    u: &str,
) {
    let mark = marker_of(&first.data);
    let variants: Vec<(&str, Vec<&str>, Vec<u8>)> = vec![
        (
            "another recipient",
            vec!["kees@extern.test"],
            looped(&first.data),
        ),
        (
            "an extra recipient",
            vec!["piet@extern.test", "kees@extern.test"],
            looped(&first.data),
        ),
        (
            "a changed body",
            vec!["piet@extern.test"],
            looped(&replace(&first.data, "zoals besproken", "zoals gevraagd")),
        ),
        (
            "another Message-ID",
            vec!["piet@extern.test"],
            looped(&replace(
                &first.data,
                &format!("<l{u}@"),
                &format!("<k{u}@"),
            )),
        ),
        (
            "an added header field",
            vec!["piet@extern.test"],
            looped(&replace(&first.data, "Subject:", "X-Extra: ja\r\nSubject:")),
        ),
    ];
    for (what, to, bytes) in &variants {
        sluis.session().send_mail("arts@org.test", to, bytes);
        for _ in 0..to.len() {
            let got = next_new(cap, seen);
            let t = got.text();
            assert!(
                !t.contains("medisch dossier"),
                "{what}: left in clear:\n{t}"
            );
            assert!(
                t.contains("beveiligd bericht"),
                "{what}: not protected:\n{t}"
            );
            assert_sluis_headers_only(&got, &mark, what);
        }
    }
}

/// A message over the relay's in-memory size gets its marker in a first pass over the queued
/// file and is streamed in a second: that marker verifies on the way back too. The policy's
/// `notify` (an IBAN to an outside recipient) tells the sender once, not once per pass.
#[test]
fn a_large_loop_is_recognised_and_the_sender_told_once() {
    let cap = Capture::start();
    let sluis = start(&cap);
    let u = unique("");
    let mut original = format!(
        "From: Anna Arts <arts@org.test>\r\nTo: piet@extern.test\r\n\
         Subject: Groot verslag {u}\r\nMessage-ID: <g{u}@org.test>\r\n\r\n\
         Graag overmaken naar IBAN NL91ABNA0417164300.\r\n"
    );
    for i in 0..6000 {
        original.push_str(&format!(
            "Regel {i} van het verslag, met wat tekst erbij.\t \r\n"
        ));
    }
    assert!(original.len() > 300 * 1024);
    let to_piet = |all: &[Captured]| -> Vec<Captured> {
        all.iter()
            .filter(|m| m.rcpt_tos == ["piet@extern.test"])
            .cloned()
            .collect()
    };
    let notices = |all: &[Captured]| {
        all.iter()
            .filter(|m| m.rcpt_tos == ["arts@org.test"])
            .count()
    };
    sluis
        .session()
        .send_mail("arts@org.test", &["piet@extern.test"], original.as_bytes());
    let all = cap.wait_for(2, ARRIVAL);
    assert_eq!(notices(&all), 1, "the sender is told about the IBAN");
    let first = to_piet(&all).remove(0);
    assert!(first.text().contains("Regel 5999 van het verslag"));
    sluis
        .session()
        .send_mail("arts@org.test", &["piet@extern.test"], &looped(&first.data));
    let all = poll(ARRIVAL, "the looped copy", || {
        let all = cap.messages();
        (to_piet(&all).len() == 2).then_some(all)
    });
    let again = to_piet(&all).remove(1);
    assert!(again.text().contains("Regel 5999 van het verslag"));
    assert_ne!(marker_of(&again.data), marker_of(&first.data));
    // A changed copy is examined again, and its sender told again.
    let changed = replace(&first.data, "Regel 17 ", "Regel 17b ");
    sluis
        .session()
        .send_mail("arts@org.test", &["piet@extern.test"], &looped(&changed));
    let all = poll(ARRIVAL, "the changed copy and its notice", || {
        let all = cap.messages();
        (all.len() == 5).then_some(all)
    });
    assert_eq!(
        notices(&all),
        2,
        "one notice for the original, one for the changed copy"
    );
}
