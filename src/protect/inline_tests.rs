use super::*;
use crate::testutil::decision_found_in;

const PNG: &str = "iVBORw0KGgoAAAANSUhEUg==";

/// An HTML mail with the given parts after its HTML body (`cid:logo@x` is referenced).
fn mail(parts: &[&str]) -> Vec<u8> {
    let mut m = "From: a@org.test\r\nTo: b@x.test\r\nSubject: s\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/related; boundary=\"r\"\r\n\r\n\
--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><img src=\"cid:logo@x\"><img src='CID:zip@x'>\
<img src=cid:big@x> <img src=\"cid:pct%25id@x\"></p>\r\n"
        .to_string();
    for p in parts {
        m.push_str("--r\r\n");
        m.push_str(p);
        m.push_str("\r\n");
    }
    m.push_str("--r--\r\n");
    m.into_bytes()
}

fn part(ct: &str, cid: &str, extra: &str, b64: &str) -> String {
    format!(
        "Content-Type: {ct}\r\nContent-ID: <{cid}>\r\n{extra}Content-Transfer-Encoding: base64\r\n\r\n{b64}"
    )
}

fn kept_cids(raw: &[u8], found: &[&str]) -> Vec<String> {
    let p = Parsed::new(raw).unwrap();
    kept(&p, &decision_found_in(found))
        .into_iter()
        .map(|i| p.msg.parts[i].content_id().unwrap().to_string())
        .collect()
}

#[test]
fn only_referenced_small_clean_images_stay() {
    use base64::Engine;
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    let mut big = b"\x89PNG\r\n\x1a\n".to_vec();
    big.resize(MAX_EACH + 1, 0);
    let raw = mail(&[
        &part("image/png", "logo@x", "", PNG),
        // Referenced, but a ZIP: protected.
        &part("application/zip", "zip@x", "", &b64(b"PK\x03\x04zip")),
        // An image no one refers to.
        &part("image/png", "unused@x", "", PNG),
        // Referenced, an image type, too big.
        &part("image/png", "big@x", "", &b64(&big)),
        // Referenced with a URL escape.
        &part("image/png", "pct%id@x", "", PNG),
    ]);
    assert_eq!(kept_cids(&raw, &[]), ["logo@x", "pct%id@x"]);
}

#[test]
fn labels_attachments_and_findings_are_not_trusted() {
    let raw = mail(&[
        // Text labelled as an image.
        &part("image/png", "logo@x", "", "QlNOIDExMTIyMjMzMw=="),
        &part("image/svg+xml", "zip@x", "", "PHN2Zz48L3N2Zz4="),
    ]);
    assert!(kept_cids(&raw, &[]).is_empty());
    let attached = mail(&[&part(
        "image/png",
        "logo@x",
        "Content-Disposition: attachment; filename=logo.png\r\n",
        PNG,
    )]);
    assert!(kept_cids(&attached, &[]).is_empty());
    let named = mail(&[&part(
        "image/png; name=scan.png",
        "logo@x",
        "Content-Disposition: inline; filename=scan.png\r\n",
        PNG,
    )]);
    assert_eq!(kept_cids(&named, &["body"]), ["logo@x"]);
    assert!(kept_cids(&named, &["attachment scan.png"]).is_empty());
    let unnamed = mail(&[&part("image/png", "logo@x", "", PNG)]);
    assert!(kept_cids(&unnamed, &["attachment part 3"]).is_empty());
    assert!(kept_cids(&unnamed, &["message"]).is_empty());
    // No HTML body: nothing to render.
    let plain = b"From: a@b\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"q\"\r\n\r\n\
--q\r\nContent-Type: text/plain\r\n\r\ncid:logo@x\r\n--q\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n\
Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoAAAANSUhEUg==\r\n--q--\r\n";
    assert!(kept_cids(plain, &[]).is_empty());
}
