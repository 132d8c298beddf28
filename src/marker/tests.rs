use super::*;

const MAIL: &[u8] =
    b"Received: from a by gw; Fri, 4 Dec 2026 10:00:00 +0000\r\nFrom: a@org.test\r\n\
To: b@x.test\r\nSubject: Uitslag\r\nMessage-ID: <1@org.test>\r\n\r\nTekst\r\n";
const NOW: i64 = 1_800_000_000;

fn marker() -> Marker {
    Marker::new([7; 32], std::time::Duration::from_secs(6 * 86_400))
}

fn value(field: &[u8]) -> String {
    let s = String::from_utf8(field.to_vec()).unwrap();
    let v = s.split_once(':').unwrap().1;
    crate::headers::unfold(v.as_bytes())
}

fn check(m: &Marker, v: &str, msg: &[u8], rcpts: &[&str], now: i64) -> bool {
    m.verify_any(&[v.to_string()], msg, rcpts, now)
}

#[test]
fn verifies_the_same_content_to_the_same_or_fewer_recipients() {
    let m = marker();
    let f = m.field(&canon::digest(MAIL), &["b@x.test", "C@Y.test"], NOW);
    let v = value(&f);
    assert!(check(&m, &v, MAIL, &["b@x.test", "c@y.test"], NOW + 60));
    assert!(check(&m, &v, MAIL, &["c@y.test"], NOW + 60));
    // After an upstream MTA: its trace fields on top, the body's trailing white space gone.
    let mut looped = b"Received: by mx.upstream\r\nReturn-Path: <a@org.test>\r\n".to_vec();
    looped.extend_from_slice(&MAIL[..MAIL.len() - 2]);
    looped.extend_from_slice(b"  \r\n\r\n");
    assert!(check(&m, &v, &looped, &["b@x.test"], NOW + 3600));
}

#[test]
fn refuses_other_content_recipients_times_and_keys() {
    let m = marker();
    let f = m.field(&canon::digest(MAIL), &["b@x.test"], NOW);
    let v = value(&f);
    let swap = |from: &str, to: &str| String::from_utf8_lossy(MAIL).replace(from, to).into_bytes();
    assert!(!check(
        &m,
        &v,
        &swap("Tekst", "BSN 111222333"),
        &["b@x.test"],
        NOW
    ));
    assert!(!check(
        &m,
        &v,
        &swap("<1@org", "<2@org"),
        &["b@x.test"],
        NOW
    ));
    assert!(!check(
        &m,
        &v,
        &swap("Subject: Uitslag", "Subject: Uitslag 111222333"),
        &["b@x.test"],
        NOW
    ));
    assert!(!check(
        &m,
        &v,
        &swap("To: b", "X-Extra: 111222333\r\nTo: b"),
        &["b@x.test"],
        NOW
    ));
    assert!(!check(&m, &v, MAIL, &["other@x.test"], NOW));
    assert!(!check(&m, &v, MAIL, &["b@x.test", "other@x.test"], NOW));
    assert!(!check(&m, &v, MAIL, &[], NOW));
    assert!(!check(&m, &v, MAIL, &["b@x.test"], NOW + 7 * 86_400));
    assert!(!check(&m, &v, MAIL, &["b@x.test"], NOW - 3600));
    let other = Marker::new([8; 32], std::time::Duration::from_secs(86_400));
    assert!(!check(&other, &v, MAIL, &["b@x.test"], NOW));
    // A changed time or tag list breaks the MAC.
    let later = v.replace(&format!("t={NOW}"), &format!("t={}", NOW + 1));
    assert!(!check(&m, &later, MAIL, &["b@x.test"], NOW));
    assert!(!check(
        &m,
        "v1; mac=00000000000000000000000000000000",
        MAIL,
        &["b@x.test"],
        NOW
    ));
    assert!(!check(&m, "yes", MAIL, &["b@x.test"], NOW));
}

#[test]
fn recipients_are_padded_and_folded() {
    let m = marker();
    let f = m.field(&canon::digest(MAIL), &["b@x.test"], NOW);
    let c = Marker::parse(&value(&f)).unwrap();
    assert_eq!(c.tags.len(), 4, "one recipient shows as four");
    let many: Vec<String> = (0..20).map(|i| format!("r{i}@x.test")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let f = m.field(&canon::digest(MAIL), &refs, NOW);
    let s = String::from_utf8(f.clone()).unwrap();
    assert!(s.lines().all(|l| l.len() <= 78), "{s}");
    let c = Marker::parse(&value(&f)).unwrap();
    assert_eq!(c.tags.len(), 32);
    assert!(check(&m, &value(&f), MAIL, &refs[5..9], NOW));
}

#[test]
fn splice_goes_below_sluis_trace_field() {
    let (head, skip) = splice(b"X-Sluis-Processed: v2\r\n", MAIL);
    assert!(head.starts_with(b"Received: from a by gw"));
    assert!(head.ends_with(b"X-Sluis-Processed: v2\r\n"));
    assert_eq!(&MAIL[..skip], &head[..skip]);
    let (head, skip) = splice(b"X-Sluis-Processed: v2\r\n", b"From: a\r\n\r\nx\r\n");
    assert_eq!(
        (head.as_slice(), skip),
        (&b"X-Sluis-Processed: v2\r\n"[..], 0)
    );
}
