//! Raw views of attachments (`Inspection::shadows`): what they add to the findings.

use super::super::Policy;
use super::scan;
use crate::inspect::{Inspection, Text};

fn policy() -> Policy {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.toml"),
        "[detectors.bsn]\ntype = \"bsn\"\nlabel = \"BSN\"\nkeywords = [\"bsn\"]\n\
         [detectors.fin]\ntype = \"words\"\nlabel = \"fin\"\nwords = [\"factuur\"]\nmin_count = 2\n",
    )
    .unwrap();
    Policy::load(dir.path()).unwrap()
}

fn text(origin: &str, t: &str) -> Text {
    Text {
        origin: origin.into(),
        text: t.into(),
    }
}

#[test]
fn raw_views_count_only_what_extraction_missed() {
    let p = policy();
    // Found by the extractor and in the raw bytes: counted once, so one mention of a word
    // does not reach min_count 2.
    let both = Inspection {
        texts: vec![text("attachment a.pdf", "bsn 111222333 factuur")],
        shadows: vec![text(
            "attachment a.pdf",
            "(bsn 111222333 de factuur van vorige maand) tj",
        )],
        ..Default::default()
    };
    let s = scan(&p, &both);
    assert_eq!(s.counts, vec![1, 1]);
    assert!(s.findings.iter().all(|f| f.origin == "attachment a.pdf"));
    // Hidden from the extractor: found in the raw view, and said so.
    let hidden = Inspection {
        texts: vec![text("attachment a.pdf", "niets")],
        shadows: vec![text("attachment a.pdf", "(bsn 111222333) tj")],
        ..Default::default()
    };
    let s = scan(&p, &hidden);
    assert_eq!(s.counts[0], 1);
    assert_eq!(s.findings[0].origin, "attachment a.pdf (raw bytes)");
    assert_eq!(s.findings[0].excerpt, "(bsn ******333) tj");
    // Text of a member of the file counts for the file; another file's does not.
    let nested = Inspection {
        texts: vec![
            text("attachment z.zip / a.txt", "bsn 111222333"),
            text("attachment y.pdf", "bsn 111222333"),
        ],
        shadows: vec![text("attachment z.zip", "bsn 111222333")],
        ..Default::default()
    };
    assert_eq!(scan(&p, &nested).counts[0], 1);
    // The same file twice: its text and its raw view each count once, as texts do.
    let twice = Inspection {
        texts: vec![
            text("attachment a.pdf", "niets"),
            text("attachment b.pdf", "niets"),
        ],
        shadows: vec![
            text("attachment a.pdf", "bsn 111222333"),
            text("attachment b.pdf", "bsn 111222333"),
        ],
        ..Default::default()
    };
    assert_eq!(scan(&p, &twice).counts[0], 1);
}

#[test]
fn words_in_raw_views_count_only_among_words() {
    let p = policy();
    let noise = Inspection {
        shadows: vec![text(
            "attachment foto.jpg",
            "q [ z factuur ~ p& 3 x factuur } a+ k",
        )],
        ..Default::default()
    };
    assert_eq!(scan(&p, &noise).counts[1], 0);
    let prose = Inspection {
        shadows: vec![text(
            "attachment a.pdf",
            "(hierbij de factuur) tj (en nog een factuur voor u) tj",
        )],
        ..Default::default()
    };
    assert_eq!(scan(&p, &prose).counts[1], 2);
}
