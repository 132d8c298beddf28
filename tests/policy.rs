//! Inspection and policy end to end: real mail through the gateway, decisions seen at the
//! next hop (or not), the sender's notice, hot reload, `sluis explain` and `sluis check`.

mod common;

use common::protect::copy_dir;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

/// sluis with the shipped default policy (a copy it may edit) and org.test as internal domain.
fn start(cap: &Capture) -> (Sluis, PathBuf) {
    let mut s = Sluis::prepare(
        Config::new(&cap.next_hop())
            .set("organisation", "internal_domains", "[\"org.test\"]")
            .set("organisation", "name", "\"Testorganisatie\"")
            .set("policy", "dir", "\"policies\"")
            .set("policy", "allow_empty_policy", "false"),
    );
    let dir = s.dir.path().join("policies");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dir,
    );
    s.spawn();
    (s, dir)
}

fn bsn_mail(tag: &str) -> Vec<u8> {
    message(
        tag,
        "Beste,\r\n\r\nHet burgerservicenummer van de client is 111222333.\r\n",
    )
}

#[test]
fn same_content_internal_goes_external_is_protected() {
    let cap = Capture::start();
    let (sluis, _) = start(&cap);
    let mut s = sluis.session();
    let internal = unique("bsnintern");
    s.send_mail("arts@org.test", &["collega@org.test"], &bsn_mail(&internal));
    let m = cap.wait_for_containing(&internal, ARRIVAL);
    assert!(
        contains(&m.data, "111222333"),
        "internal mail arrives as sent"
    );

    let external = unique("bsnextern");
    s.send_mail(
        "arts@org.test",
        &["patient@gmail.test"],
        &bsn_mail(&external),
    );
    // It leaves only as a secure-message notification: no BSN, a link instead.
    let m = cap.wait_for_containing(&external, ARRIVAL);
    assert_eq!(m.rcpt_tos, ["patient@gmail.test"]);
    assert!(
        !contains(&m.data, "111222333"),
        "a message with a BSN to an external recipient left unprotected"
    );
    assert!(m.text().contains("beveiligd bericht"), "{}", m.text());
}

#[test]
fn notify_delivers_unchanged_and_tells_the_sender() {
    let cap = Capture::start();
    let (sluis, _) = start(&cap);
    let tag = unique("bijlage");
    let mut msg = Vec::new();
    msg.extend_from_slice(
        format!(
            "From: a@org.test\r\nTo: klant@extern.test\r\nSubject: {tag}\r\nMessage-ID: <{tag}@org.test>\r\n\
             MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
             --b1\r\nContent-Type: text/plain\r\n\r\nZie de offerte.\r\n\
             --b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"offerte.bin\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgc=\r\n--b1--\r\n"
        )
        .as_bytes(),
    );
    let mut s = sluis.session();
    s.send_mail("a@org.test", &["klant@extern.test"], &msg);
    let m = cap.wait_for_containing(&format!("Message-ID: <{tag}@org.test>"), ARRIVAL);
    assert_relayed_exactly(&m.data, &msg);
    let notice = poll(ARRIVAL, "the sender's notice", || {
        cap.messages()
            .into_iter()
            .find(|m| m.rcpt_tos == ["a@org.test"] && contains(&m.data, &tag))
    });
    assert_eq!(notice.mail_from, "", "notices use the null sender");
    let text = notice.text();
    assert!(text.contains("Let op"), "{text}");
    assert!(text.contains("klant@extern.test"), "{text}");
}

#[test]
fn tags_and_control_headers_never_leave() {
    let cap = Capture::start();
    let (sluis, _) = start(&cap);
    let tag = unique("optout");
    let msg = format!(
        "From: a@org.test\r\nTo: x@extern.test\r\nSubject: [onbeveiligd] {tag}\r\nX-Sluis-Auth: password\r\n\r\n\
         De diagnose staat in het medisch dossier.\r\n"
    );
    let mut s = sluis.session();
    s.send_mail("a@org.test", &["x@extern.test"], msg.as_bytes());
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    let text = m.text();
    assert!(text.contains(&format!("Subject: {tag}\r\n")), "{text}");
    assert!(!text.to_lowercase().contains("onbeveiligd"), "{text}");
    assert!(!text.contains("X-Sluis-Auth"), "{text}");
    assert!(text.contains("medisch dossier"), "the body is unchanged");
}

#[test]
fn hot_reload_changes_the_next_message_and_bad_files_are_refused() {
    let cap = Capture::start();
    let (sluis, dir) = start(&cap);
    let extra = dir.join("extra.toml");
    let rule = "[detectors.project]\ntype = \"words\"\nwords = [\"project walvis\"]\n\n\
                [[rules]]\nname = \"walvis\"\ndetectors = [\"project\"]\nrecipients = \"any\"\naction = \"notify\"\n";
    // Written elsewhere and renamed in, as editors do.
    let tmp = dir.join("extra.toml.swp");
    std::fs::write(&tmp, rule).unwrap();
    std::fs::rename(&tmp, &extra).unwrap();
    let mut s = sluis.session();
    let first = unique("walvis1");
    poll(ARRIVAL, "the new rule to take effect", || {
        let t = unique("probe");
        s.send_mail(
            "a@org.test",
            &["b@org.test"],
            &message(&t, "over project walvis"),
        );
        cap.wait_for_containing(&t, ARRIVAL);
        std::thread::sleep(Duration::from_millis(300));
        cap.messages()
            .iter()
            .any(|m| m.rcpt_tos == ["a@org.test"] && contains(&m.data, &t))
            .then_some(())
    });
    // An invalid change is refused: the rule above stays in force.
    std::fs::write(
        &extra,
        format!("{rule}\n[[rules]]\nname = \"kapot\"\naction = \"force\"\n"),
    )
    .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    s.send_mail(
        "a@org.test",
        &["b@org.test"],
        &message(&first, "weer project walvis"),
    );
    poll(ARRIVAL, "a notice under the last good policy", || {
        cap.messages()
            .iter()
            .any(|m| m.rcpt_tos == ["a@org.test"] && contains(&m.data, &first))
            .then_some(())
    });
    assert!(
        sluis.log().contains("policy change refused"),
        "{}",
        sluis.log()
    );
    // Removing the file removes the rule.
    std::fs::remove_file(&extra).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let last = unique("walvis3");
    s.send_mail(
        "a@org.test",
        &["b@org.test"],
        &message(&last, "nogmaals project walvis"),
    );
    cap.wait_for_containing(&last, ARRIVAL);
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        !cap.messages()
            .iter()
            .any(|m| m.rcpt_tos == ["a@org.test"] && contains(&m.data, &last)),
        "no notice once the rule is gone"
    );
}

#[test]
fn explain_and_check() {
    let cap = Capture::start();
    let (sluis, dir) = start(&cap);
    let eml = sluis.dir.path().join("m.eml");
    std::fs::write(
        &eml,
        "From: arts@org.test\nTo: patient@gmail.test\nSubject: uitslag\n\nUw BSN: 111.222.333\n",
    )
    .unwrap();
    let out = sluis.cli(&["explain", eml.to_str().unwrap()]);
    let text = output_text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("burgerservicenummer (BSN)"), "{text}");
    assert!(text.contains("******333"), "{text}");
    assert!(
        !text.contains("111222333") && !text.contains("111.222.333"),
        "{text}"
    );
    assert!(text.contains("bsn-extern"), "{text}");
    assert!(
        text.contains("decision:   protect: secure message"),
        "{text}"
    );
    let out = sluis.cli(&["explain", eml.to_str().unwrap(), "--to", "collega@org.test"]);
    assert!(output_text(&out).contains("decision:   deliver as sent"));

    let out = sluis.cli(&["check"]);
    assert!(out.status.success(), "{}", output_text(&out));
    std::fs::write(
        dir.join("zz.toml"),
        "[[rules]]\nname = \"x\"\ndetectors = [\"geen\"]\naction = \"notify\"\n",
    )
    .unwrap();
    let out = sluis.cli(&["check"]);
    let text = output_text(&out);
    assert!(!out.status.success());
    assert!(text.contains("zz.toml:2:"), "{text}");
    assert!(text.contains("unknown detector 'geen'"), "{text}");
}

fn with_attachment(name: &str, bytes: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: arts@org.test\r\nTo: patient@gmail.test\r\nSubject: stukken\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"xx\"\r\n\r\n--xx\r\nContent-Type: text/plain\r\n\r\n\
         Zie bijlage.\r\n--xx\r\nContent-Type: application/octet-stream\r\n\
         Content-Disposition: attachment; filename=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n\
         {}\r\n--xx--\r\n",
        lines.join("\r\n")
    )
}

#[test]
fn bsn_in_office_documents_made_by_libreoffice_is_found() {
    let cap = Capture::start();
    let (sluis, _) = start(&cap);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inspect");
    for name in [
        "vertrouwelijk.docx",
        "vertrouwelijk.odt",
        "vertrouwelijk.pdf",
        "vertrouwelijk.xlsx",
        "vertrouwelijk.ods",
        "vertrouwelijk.pptx",
        "vertrouwelijk.rtf",
    ] {
        let eml = sluis.dir.path().join(format!("{name}.eml"));
        std::fs::write(
            &eml,
            with_attachment(name, &std::fs::read(fixtures.join(name)).unwrap()),
        )
        .unwrap();
        let out = sluis.cli(&["explain", eml.to_str().unwrap()]);
        let text = output_text(&out);
        assert!(
            text.contains(&format!(
                "finding:    burgerservicenummer (BSN) [bsn] in attachment {name}"
            )),
            "{name}: {text}"
        );
        assert!(
            text.contains("decision:   protect: secure message"),
            "{name}: {text}"
        );
    }
    // Through the gateway: the DOCX to an external recipient leaves as a link, never as is.
    let docx = std::fs::read(fixtures.join("vertrouwelijk.docx")).unwrap();
    let msg = with_attachment("vertrouwelijk.docx", &docx);
    sluis
        .session()
        .send_mail("arts@org.test", &["patient@gmail.test"], msg.as_bytes());
    let m = cap.wait_for(1, ARRIVAL).remove(0);
    let b64 = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&docx[..57])
    };
    assert!(!contains(&m.data, &b64), "the document left unprotected");
    assert!(
        !contains(&m.data, "Zie bijlage"),
        "a secure message keeps the body in the store"
    );
    assert!(m.text().contains("/l/"), "{}", m.text());
}

#[test]
fn an_idle_policy_folder_is_not_reloaded() {
    let cap = Capture::start();
    let (sluis, dir) = start(&cap);
    // Loading reads the files; reading must not count as a change.
    std::thread::sleep(Duration::from_secs(2));
    let loads = |log: &str| log.matches("policy loaded").count();
    assert_eq!(loads(&sluis.log()), 0, "{}", sluis.log());
    std::fs::write(
        dir.join("extra.toml"),
        "[domains.x]\ndomains = [\"x.test\"]\n",
    )
    .unwrap();
    poll(ARRIVAL, "the change to be loaded", || {
        (loads(&sluis.log()) > 0).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let settled = loads(&sluis.log());
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        loads(&sluis.log()),
        settled,
        "reloads keep coming: {}",
        sluis.log()
    );
}
