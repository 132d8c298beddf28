use super::Policy;
use super::decide::{Context, Verdict, decide};
use super::detect::scan;
use super::schema::{Auth, Protection};
use super::tags::{SenderChoice, parse_subject};
use crate::inspect::{Attachment, Inspection, Text, Unscannable};

fn policy(toml: &str) -> Policy {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("words")).unwrap();
    std::fs::write(
        dir.path().join("words/medisch.txt"),
        "# medical\ndiagnose\nmedisch dossier\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("p.toml"), toml).unwrap();
    Policy::load(dir.path()).unwrap()
}

const BASE: &str = r#"
[domains.partners]
domains = ["partner.nl"]

[detectors.bsn]
type = "bsn"
label = "BSN"
keywords = ["bsn", "burgerservicenummer"]

[detectors.medisch]
type = "words"
words_files = ["words/medisch.txt"]

[[rules]]
name = "bsn-extern"
detectors = ["bsn"]
recipients = "external"
exempt_domains = "partners"
action = "force"
protection = "secure_message"

[[rules]]
name = "medisch-extern"
detectors = ["medisch"]
recipients = "external"
action = "auto"
protection = "secure_files"

[[rules]]
name = "bijlage-extern"
recipients = "external"
has_attachments = true
action = "notify"
"#;

fn insp(text: &str) -> Inspection {
    Inspection {
        subject: String::new(),
        texts: vec![Text {
            origin: "body".into(),
            text: crate::inspect::normalize(text),
        }],
        ..Default::default()
    }
}

fn verdict(p: &Policy, i: &Inspection, rcpts: &[&str], sender: SenderChoice) -> Verdict {
    let rcpts: Vec<String> = rcpts.iter().map(|s| s.to_string()).collect();
    let internal = vec!["example.org".to_string()];
    let ctx = Context {
        recipients: &rcpts,
        internal_domains: &internal,
    };
    decide(p, i, &scan(p, i), &ctx, sender).verdict
}

#[test]
fn same_content_internal_and_external_differ() {
    let p = policy(BASE);
    let i = insp("Mijn BSN is 111222333, graag verwerken.");
    assert_eq!(
        verdict(&p, &i, &["collega@example.org"], SenderChoice::default()),
        Verdict::Deliver
    );
    assert_eq!(
        verdict(&p, &i, &["iemand@gmail.com"], SenderChoice::default()),
        Verdict::Protect {
            protection: Protection::SecureMessage,
            auth: Auth::Password
        }
    );
    // A trusted partner is exempt.
    assert_eq!(
        verdict(&p, &i, &["zorg@partner.nl"], SenderChoice::default()),
        Verdict::Deliver
    );
    // A BSN without a keyword nearby is not one.
    let j = insp("Ordernummer 111222333 is verzonden.");
    assert_eq!(
        verdict(&p, &j, &["iemand@gmail.com"], SenderChoice::default()),
        Verdict::Deliver
    );
}

#[test]
fn findings_never_show_a_full_bsn() {
    let p = policy(BASE);
    let i = insp("burgerservicenummer 111222333 en nog 123456782 bsn");
    let s = scan(&p, &i);
    assert!(!s.findings.is_empty());
    for f in &s.findings {
        assert!(!f.excerpt.contains("111222333"), "{}", f.excerpt);
        assert!(!f.excerpt.contains("123456782"), "{}", f.excerpt);
    }
}

#[test]
fn opt_out_only_where_auto() {
    let p = policy(BASE);
    let (_, unsecure) = parse_subject("[onbeveiligd] uitslag", &p.tags);
    let med = insp("Hierbij de diagnose uit het medisch dossier.");
    assert_eq!(
        verdict(&p, &med, &["x@gmail.com"], unsecure.clone()),
        Verdict::Deliver
    );
    assert_eq!(
        verdict(&p, &med, &["x@gmail.com"], SenderChoice::default()),
        Verdict::Protect {
            protection: Protection::SecureFiles,
            auth: Auth::Password
        }
    );
    let bsn = insp("bsn 111222333");
    assert!(matches!(
        verdict(&p, &bsn, &["x@gmail.com"], unsecure),
        Verdict::Protect { .. }
    ));
}

#[test]
fn sender_tags_raise_protection_and_sms() {
    let p = policy(BASE);
    let (_, c) = parse_subject("[beveiligd] [sms] gewoon een vraag", &p.tags);
    assert_eq!(
        verdict(&p, &insp("gewoon een vraag"), &["collega@example.org"], c),
        Verdict::Protect {
            protection: Protection::SecureMessage,
            auth: Auth::Sms
        }
    );
}

#[test]
fn whole_words_only_and_attachment_notice() {
    let p = policy(BASE);
    assert_eq!(
        verdict(
            &p,
            &insp("prognosediagnoses"),
            &["x@gmail.com"],
            SenderChoice::default()
        ),
        Verdict::Deliver
    );
    let mut i = insp("zie bijlage");
    i.attachments.push(Attachment {
        name: "offerte.pdf".into(),
        content_type: "application/pdf".into(),
        size: 1000,
        origin: "attachment offerte.pdf".into(),
    });
    assert_eq!(
        verdict(&p, &i, &["x@gmail.com"], SenderChoice::default()),
        Verdict::Notify
    );
    assert_eq!(
        verdict(&p, &i, &["y@example.org"], SenderChoice::default()),
        Verdict::Deliver
    );
}

#[test]
fn unscannable_counts_as_sensitive_by_default() {
    let p = policy(BASE);
    let mut i = insp("zie bijlage");
    i.unscannable.push(Unscannable {
        origin: "attachment geheim.zip".into(),
        reason: "encrypted archive".into(),
    });
    assert!(matches!(
        verdict(&p, &i, &["x@gmail.com"], SenderChoice::default()),
        Verdict::Protect { .. }
    ));
    let relaxed = policy(&format!("[settings]\nunscannable = \"ignore\"\n{BASE}"));
    assert_eq!(
        verdict(&relaxed, &i, &["x@gmail.com"], SenderChoice::default()),
        Verdict::Deliver
    );
}

#[test]
fn errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "[detectors.x]\ntype = \"words\"\nwords = [\"a\"]\n\n[[rules]]\nname = \"r\"\ndetectors = [\"nope\"]\naction = \"notify\"\n",
    )
    .unwrap();
    let e = Policy::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("bad.toml:6:"), "{e}");
    assert!(e.contains("unknown detector 'nope'"), "{e}");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[detectors.x]\ntype = \"wordz\"\n",
    )
    .unwrap();
    let e = Policy::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("bad.toml:2:"), "{e}");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[rules]]\nname = \"r\"\naction = \"force\"\n",
    )
    .unwrap();
    let e = Policy::load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("need a protection"), "{e}");
}

#[test]
fn the_same_text_twice_counts_once() {
    let p = policy(
        "[detectors.geld]\ntype = \"words\"\nwords = [\"salarisstrook\"]\nmin_count = 2\n\n\
         [[rules]]\nname = \"r\"\ndetectors = [\"geld\"]\naction = \"notify\"\n",
    );
    // What a multipart/alternative body looks like after inspection: the same words twice.
    let mut i = insp("hierbij je salarisstrook");
    i.texts.push(i.texts[0].clone());
    assert_eq!(
        verdict(&p, &i, &["x@gmail.com"], SenderChoice::default()),
        Verdict::Deliver
    );
    i.texts.push(Text {
        origin: "attachment b.txt".into(),
        text: crate::inspect::normalize("nog een salarisstrook"),
    });
    assert_eq!(
        verdict(&p, &i, &["x@gmail.com"], SenderChoice::default()),
        Verdict::Notify
    );
}

/// Every tag and header that asks for protection gets it, alone and combined; the strictest
/// reading wins (ISSUE 23 item 3).
#[test]
fn a_request_for_protection_is_read_strictly() {
    use Protection::*;
    let p = policy(BASE);
    let with_file = |mut i: Inspection| {
        i.attachments.push(Attachment {
            origin: "attachment 1".into(),
            name: "stukken.pdf".into(),
            content_type: "application/pdf".into(),
            size: 10,
        });
        i
    };
    let choice = |subject: &str, headers: &str| {
        let (_, mut c) = parse_subject(subject, &p.tags);
        let msg = format!("Subject: x\r\n{headers}\r\n\r\nx\r\n");
        super::tags::controls(msg.as_bytes(), &mut c, &p.tags);
        c
    };
    let cases: &[(&str, &str, bool, Protection, Auth)] = &[
        ("[sms] vraag", "", true, SecureFiles, Auth::Sms),
        ("[2fa] vraag", "", false, SecureMessage, Auth::Sms),
        ("vraag", "X-Sluis-Auth: sms", true, SecureFiles, Auth::Sms),
        (
            "vraag",
            "X-Sluis-Phone: +31612345678",
            false,
            SecureMessage,
            Auth::Sms,
        ),
        (
            "vraag",
            "X-Sluis-Password: lang-genoeg-wachtwoord",
            true,
            SecureFiles,
            Auth::Password,
        ),
        (
            "vraag",
            "X-Sluis-Expires: 2d",
            false,
            SecureMessage,
            Auth::Password,
        ),
        (
            "vraag",
            "X-Sluis-Max-Downloads: 3",
            true,
            SecureFiles,
            Auth::Password,
        ),
        (
            "[public files] [sms] vraag",
            "",
            true,
            SecureFiles,
            Auth::Sms,
        ),
        (
            "[openbare bestanden] vraag",
            "",
            true,
            PublicFiles,
            Auth::Password,
        ),
        (
            "[openbare bestanden] vraag",
            "",
            false,
            SecureMessage,
            Auth::Password,
        ),
        (
            "[secure files] vraag",
            "",
            false,
            SecureMessage,
            Auth::Password,
        ),
        (
            "[onbeveiligd] [beveiligd] vraag",
            "",
            true,
            SecureMessage,
            Auth::Password,
        ),
        ("[unsecure] [sms] vraag", "", true, SecureFiles, Auth::Sms),
    ];
    for (subject, headers, file, protection, auth) in cases {
        let i = insp("gewoon een vraag");
        let i = if *file { with_file(i) } else { i };
        let got = verdict(&p, &i, &["x@gmail.com"], choice(subject, headers));
        assert_eq!(
            got,
            Verdict::Protect {
                protection: *protection,
                auth: *auth
            },
            "{subject} {headers} (attachment: {file})"
        );
    }
    // The policy's stricter protection stays: [sms] on medical text (auto, secure files) with
    // a BSN (force, secure message) is a secure message with SMS.
    let i = with_file(insp("diagnose en bsn 111222333"));
    assert_eq!(
        verdict(&p, &i, &["x@gmail.com"], choice("[sms] uitslag", "")),
        Verdict::Protect {
            protection: SecureMessage,
            auth: Auth::Sms
        }
    );
    // An opt-out alone still counts where the rule is auto.
    let i = insp("de diagnose");
    assert_eq!(
        verdict(
            &p,
            &i,
            &["x@gmail.com"],
            choice("[onbeveiligd] uitslag", "")
        ),
        Verdict::Deliver
    );
}
