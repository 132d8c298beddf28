//! The generated input of the inspection benchmark: a 1,000-word policy and the two mails
//! (text-heavy prose, PDF/DOCX attachments), the same on every run and machine.

use base64::Engine;
use sluis::inspect::normalize;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::Path;

/// Deterministic xorshift64*: the same mail on every run and machine.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
    fn pick_owned<'a>(&mut self, items: &'a [String]) -> &'a str {
        &items[self.below(items.len())]
    }
}

pub(crate) const ONSETS: &[&str] = &[
    "b", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "dr", "gr", "kl", "kr", "pl", "pr", "sch", "sl", "sp", "st", "str", "tr", "vr", "zw", "",
];
pub(crate) const VOWELS: &[&str] = &[
    "a", "e", "i", "o", "u", "aa", "ee", "oo", "uu", "ie", "oe", "ij", "ei", "ui", "ou", "eu",
];
pub(crate) const CODAS: &[&str] = &[
    "", "", "", "k", "l", "m", "n", "r", "s", "t", "nd", "ng", "rd", "rk", "cht", "lt", "ns",
];
pub(crate) const SUFFIXES: &[&str] = &[
    "ing", "heid", "schap", "lijk", "baar", "en", "er", "te", "st", "tie", "isch", "ig",
];
pub(crate) const FUNCTION_WORDS: &[&str] = &[
    "de", "het", "een", "van", "en", "in", "is", "dat", "op", "te", "voor", "met", "niet", "zijn",
    "aan", "er", "om", "ook", "als", "bij", "door", "maar", "naar", "over", "uit", "nog", "wel",
    "dan", "kan", "worden", "wordt", "we", "u", "uw", "ons", "onze", "die", "deze", "dit", "wat",
    "hebben", "heeft", "zal", "zou", "moet", "graag", "alvast", "verder", "tot", "na", "of",
    "hierbij", "namens", "volgens", "tijdens", "zonder", "tussen", "onder", "binnen",
];
pub(crate) const ACCENTED: &[&str] = &[
    "één",
    "cliënt",
    "financiële",
    "privé",
    "café",
    "ideeën",
    "coördinatie",
    "reünie",
    "België",
    "geïnteresseerd",
    "categorieën",
    "patiënt",
    "efficiënt",
    "à",
    "Curaçao",
];
pub(crate) const NUMBERS: &[&str] = &[
    "12-03-2024",
    "€ 1.250,00",
    "06-12345678",
    "2024/0815",
    "bsn 111222333",
    "iban NL91 ABNA 0417 1643 00",
    "kenmerk 4711",
    "1e kwartaal",
];

/// A Dutch-looking word: syllables of onset, vowel, coda, sometimes a suffix.
pub(crate) fn dutchish(rng: &mut Rng) -> String {
    let mut w = String::new();
    for _ in 0..1 + rng.below(3) {
        w.push_str(rng.pick(ONSETS));
        w.push_str(rng.pick(VOWELS));
        w.push_str(rng.pick(CODAS));
    }
    if rng.below(3) == 0 {
        w.push_str(rng.pick(SUFFIXES));
    }
    w
}

/// Entries of a word list file the way the policy loader reads them.
pub(crate) fn list_entries(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Writes the policy (shipped word lists padded to 1,000 words) into `dir`; returns the
/// normalised words, in the policy's order.
pub(crate) fn write_policy(dir: &Path, rng: &mut Rng) -> Vec<String> {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/words");
    let words_dir = dir.join("words");
    std::fs::create_dir_all(&words_dir).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&shipped)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".txt"))
        .collect();
    files.sort();
    let mut words = Vec::new();
    let mut seen = HashSet::new();
    for f in &files {
        let text = std::fs::read_to_string(shipped.join(f)).unwrap();
        std::fs::write(words_dir.join(f), &text).unwrap();
        for w in list_entries(&text) {
            let n = normalize(&w);
            seen.insert(n.clone());
            words.push(n);
        }
    }
    let mut extra = String::from("# generated padding up to the benchmark's policy size\n");
    while words.len() < crate::POLICY_WORDS {
        let w = dutchish(rng);
        if w.len() >= 7 && seen.insert(w.clone()) {
            extra.push_str(&w);
            extra.push('\n');
            words.push(w);
        }
    }
    std::fs::write(words_dir.join("extra.txt"), extra).unwrap();
    files.push("extra.txt".into());
    let list = files
        .iter()
        .map(|f| format!("\"words/{f}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let toml = format!(
        r#"[settings]
unscannable = "sensitive"

[domains.trusted_partners]
domains = []

[detectors.bsn]
type = "bsn"
keywords = ["bsn", "burgerservicenummer", "sofinummer"]
keyword_distance = 300

[detectors.iban]
type = "iban"

[detectors.card]
type = "card"
keywords = ["card", "creditcard", "visa", "mastercard", "kaart", "cvc", "vervaldatum"]

[detectors.gevoelig]
type = "words"
label = "gevoelige gegevens"
words_files = [{list}]

[[rules]]
name = "bsn-extern"
detectors = ["bsn", "card"]
recipients = "external"
exempt_domains = "trusted_partners"
action = "force"
protection = "secure_message"

[[rules]]
name = "gevoelig-extern"
detectors = ["gevoelig", "iban"]
recipients = "external"
exempt_domains = "trusted_partners"
action = "auto"
protection = "secure_message"

[[rules]]
name = "bijlagen-extern"
recipients = "external"
has_attachments = true
action = "notify"
"#
    );
    std::fs::write(dir.join("policy.toml"), toml).unwrap();
    words
}

/// One sentence of Dutch-like prose: function words, generated words, now and then a policy
/// word, a word with diacritics or a number.
pub(crate) fn sentence(rng: &mut Rng, vocab: &[String], policy_words: &[String]) -> String {
    let n = 6 + rng.below(14);
    let mut s = String::new();
    for k in 0..n {
        if k > 0 {
            s.push(if rng.below(12) == 0 { ',' } else { ' ' });
            if s.ends_with(',') {
                s.push(' ');
            }
        }
        let r = rng.below(1000);
        let w: &str = if r < 450 {
            rng.pick(FUNCTION_WORDS)
        } else if r < 940 {
            rng.pick_owned(vocab)
        } else if r < 960 {
            rng.pick(ACCENTED)
        } else if r < 975 {
            rng.pick(NUMBERS)
        } else {
            rng.pick_owned(policy_words)
        };
        if k == 0 {
            let mut c = w.chars();
            if let Some(f) = c.next() {
                s.extend(f.to_uppercase());
                s.push_str(c.as_str());
            }
        } else {
            s.push_str(w);
        }
    }
    s.push_str(if rng.below(8) == 0 { "?" } else { "." });
    s
}

/// Paragraphs of prose (each a list of sentences).
pub(crate) fn prose(rng: &mut Rng, policy_words: &[String], bytes: usize) -> Vec<Vec<String>> {
    let vocab: Vec<String> = (0..3000).map(|_| dutchish(rng)).collect();
    let mut paras = Vec::new();
    let mut size = 0;
    while size < bytes {
        let p: Vec<String> = (0..2 + rng.below(6))
            .map(|_| sentence(rng, &vocab, policy_words))
            .collect();
        size += p.iter().map(|s| s.len() + 1).sum::<usize>();
        paras.push(p);
    }
    paras
}

/// Wraps words into lines of at most `width` bytes.
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for w in text.split(' ') {
        if !line.is_empty() && line.len() + 1 + w.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(w);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Quoted-printable (RFC 2045) of text with CRLF line ends: hard breaks kept, soft breaks at
/// 76 columns.
pub(crate) fn quoted_printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 11 / 10);
    for line in text.split("\r\n") {
        let b = line.as_bytes();
        let mut col = 0;
        for (i, &c) in b.iter().enumerate() {
            let last = i + 1 == b.len();
            let plain = (c == b' ' || c == b'\t') && !last || (33..=126).contains(&c) && c != b'=';
            let len = if plain { 1 } else { 3 };
            if col + len > 75 {
                out.push_str("=\r\n");
                col = 0;
            }
            if plain {
                out.push(c as char);
            } else {
                let _ = write!(out, "={c:02X}");
            }
            col += len;
        }
        out.push_str("\r\n");
    }
    out.truncate(out.len() - 2);
    out
}

/// HTML of the same kind of prose: entities for accented letters, ampersands and euro signs,
/// some inline markup, a style block.
pub(crate) fn html_of(paras: &[Vec<String>], rng: &mut Rng) -> String {
    let mut h = String::from(
        "<html><head><meta charset=\"utf-8\"><style>p { margin: 0; font-family: Calibri; }\r\n\
         .x { color: #1f497d; }</style></head>\r\n<body lang=\"NL\">\r\n",
    );
    for p in paras {
        let mut body = String::new();
        for s in p {
            let mut e = String::new();
            for c in s.chars() {
                match c {
                    'é' => e.push_str("&eacute;"),
                    'ë' => e.push_str("&euml;"),
                    'ï' => e.push_str("&#239;"),
                    'ö' => e.push_str("&ouml;"),
                    '€' => e.push_str("&euro;"),
                    '&' => e.push_str("&amp;"),
                    '<' => e.push_str("&lt;"),
                    c => e.push(c),
                }
            }
            match rng.below(6) {
                0 => {
                    let _ = write!(body, "<b>{e}</b>&nbsp; ");
                }
                1 => {
                    let _ = write!(body, "<span class=\"x\">{e}</span> ");
                }
                _ => {
                    body.push_str(&e);
                    body.push(' ');
                }
            }
        }
        let text = format!("<p class=\"MsoNormal\">{}</p>", body.trim_end());
        h.push_str(&wrap(&text, 76).join("\r\n"));
        h.push_str("\r\n");
    }
    h.push_str("</body></html>\r\n");
    h
}

pub(crate) const HEADERS: &str = "From: Anna de Vries <anna@example.nl>\r\n\
    To: Jan Jansen <jan@extern.example>\r\n\
    Subject: Verslag van het overleg\r\n\
    Date: Wed, 25 Nov 2026 10:00:00 +0100\r\n\
    Message-ID: <bench@example.nl>\r\n\
    MIME-Version: 1.0\r\n";

/// Text-heavy mail: multipart/alternative with a quoted-printable text/plain part and a
/// quoted-printable text/html part of the same prose, CRLF lines.
pub(crate) fn text_heavy(rng: &mut Rng, policy_words: &[String], prose_bytes: usize) -> Vec<u8> {
    let paras = prose(rng, policy_words, prose_bytes);
    let plain = paras
        .iter()
        .map(|p| wrap(&p.join(" "), 72).join("\r\n"))
        .collect::<Vec<_>>()
        .join("\r\n\r\n");
    let html = html_of(&paras, rng);
    let mut m = String::from(HEADERS);
    m.push_str("Content-Type: multipart/alternative; boundary=\"alt-1\"\r\n\r\n");
    m.push_str("--alt-1\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n");
    m.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    m.push_str(&quoted_printable(&plain));
    m.push_str("\r\n--alt-1\r\nContent-Type: text/html; charset=\"utf-8\"\r\n");
    m.push_str("Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    m.push_str(&quoted_printable(&html));
    m.push_str("\r\n--alt-1--\r\n");
    m.into_bytes()
}

pub(crate) fn base64_lines(data: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(data);
    let mut out = String::with_capacity(b.len() + b.len() / 38);
    for chunk in b.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(chunk).unwrap());
        out.push_str("\r\n");
    }
    out
}

/// Mail with attachments: a short text body and the LibreOffice PDF/DOCX fixtures, each
/// attached `copies` times (base64).
pub(crate) fn with_attachments(copies: usize) -> Vec<u8> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inspect");
    let fixtures: Vec<(&str, &str, Vec<u8>)> = [
        ("medisch.pdf", "application/pdf"),
        ("vertrouwelijk.pdf", "application/pdf"),
        (
            "medisch.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            "vertrouwelijk.docx",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
    ]
    .into_iter()
    .map(|(n, ct)| {
        let data = std::fs::read(dir.join(n))
            .unwrap_or_else(|e| panic!("fixture {}: {e}", dir.join(n).display()));
        (n, ct, data)
    })
    .collect();
    let mut m = String::from(HEADERS);
    m.push_str("Content-Type: multipart/mixed; boundary=\"mix-1\"\r\n\r\n");
    m.push_str("--mix-1\r\nContent-Type: text/plain; charset=\"utf-8\"\r\n\r\n");
    m.push_str("Beste Jan,\r\n\r\nBijgaand de stukken voor het overleg.\r\n\r\nAnna\r\n");
    for k in 0..copies {
        for (name, ct, data) in &fixtures {
            let (stem, ext) = name.rsplit_once('.').unwrap();
            let _ = write!(
                m,
                "--mix-1\r\nContent-Type: {ct}; name=\"{stem}-{k}.{ext}\"\r\n\
                 Content-Disposition: attachment; filename=\"{stem}-{k}.{ext}\"\r\n\
                 Content-Transfer-Encoding: base64\r\n\r\n{}",
                base64_lines(data)
            );
        }
    }
    m.push_str("--mix-1--\r\n");
    m.into_bytes()
}
