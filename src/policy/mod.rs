//! Admin policy: detectors, recipient and attachment conditions, and the action each rule
//! takes. Loaded from every `*.toml` in the policy folder; reloaded when the folder changes.

pub mod decide;
pub mod detect;
pub mod schema;
pub mod tags;
pub mod validators;
pub mod watch;

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::Regex;
use schema::{
    Action, Auth, DetectorSpec, DetectorType, PolicyFile, Protection, Settings, TagWords,
};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum PolicyError {
    #[error(
        "policy folder {dir} does not exist; sluis does not run without rules. Set [policy] dir \
         to the folder with your policy files, or allow_empty_policy = true for a plain relay"
    )]
    Missing { dir: String },
    #[error(
        "policy folder {dir} has no rules ({files} policy file(s)); sluis does not run without \
         rules. Add a policy file with a [[rule]], or set [policy] allow_empty_policy = true for \
         a plain relay"
    )]
    NoRules { dir: String, files: usize },
    #[error("{file}: {msg}")]
    File { file: String, msg: String },
    #[error("{file}:{line}:{col}: {msg}")]
    At {
        file: String,
        line: usize,
        col: usize,
        msg: String,
    },
}

/// A detector, ready to run.
#[derive(Debug)]
pub struct Detector {
    pub name: String,
    pub label: String,
    pub kind: DetectorType,
    pub regex: Option<Regex>,
    pub keywords: Vec<String>,
    pub keyword_distance: usize,
    pub min_count: usize,
    pub substring: bool,
}

/// Where a recipient must be for a rule to match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    Any,
    External,
    Internal,
    List(String),
}

#[derive(Debug)]
pub struct Rule {
    pub name: String,
    /// Indexes into `Policy::detectors`.
    pub detectors: Vec<usize>,
    pub recipients: Recipients,
    pub exempt: Option<String>,
    pub has_attachments: bool,
    pub attachment_types: Vec<String>,
    pub min_attachment_size: Option<u64>,
    pub action: Action,
    pub protection: Option<Protection>,
    pub auth: Option<Auth>,
    pub file: String,
}

/// Everything loaded from the policy folder.
#[derive(Debug)]
pub struct Policy {
    pub settings: Settings,
    pub tags: TagWords,
    pub domains: HashMap<String, HashSet<String>>,
    pub detectors: Vec<Detector>,
    /// All word-list entries of all word detectors in one automaton; `word_owner[pattern]`
    /// is the detector a pattern belongs to.
    pub words: Option<AhoCorasick>,
    pub word_owner: Vec<usize>,
    pub rules: Vec<Rule>,
    pub files: Vec<PathBuf>,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// The first line that mentions `needle`, for messages about names and values.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .map_or(1, |i| i + 1)
}

fn read_list(path: &Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

impl Policy {
    /// A policy with no rules: every message goes out as sent.
    pub fn empty() -> Policy {
        Policy {
            settings: Settings::default(),
            tags: TagWords::default(),
            domains: HashMap::new(),
            detectors: Vec::new(),
            words: None,
            word_owner: Vec::new(),
            rules: Vec::new(),
            files: Vec::new(),
        }
    }

    /// The policy sluis runs with: the folder must exist and hold at least one rule, unless
    /// `allow_empty` (a plain relay), where a missing folder is an empty policy. Fails closed:
    /// a gateway without rules would relay everything in clear.
    pub fn load_checked(dir: &Path, allow_empty: bool) -> Result<Policy, PolicyError> {
        match Self::load(dir) {
            Err(PolicyError::Missing { .. }) if allow_empty => Ok(Policy::empty()),
            Ok(p) if p.rules.is_empty() && !allow_empty => Err(PolicyError::NoRules {
                dir: dir.display().to_string(),
                files: p.files.len(),
            }),
            other => other,
        }
    }

    /// Loads every `*.toml` in `dir` (sorted by name); the folder must exist.
    pub fn load(dir: &Path) -> Result<Policy, PolicyError> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(PolicyError::Missing {
                    dir: dir.display().to_string(),
                });
            }
            Err(e) => {
                return Err(PolicyError::File {
                    file: format!("policy folder {}", dir.display()),
                    msg: format!("cannot read it: {}", crate::fsutil::io_reason(&e)),
                });
            }
        };
        files.sort();
        let mut parsed = Vec::new();
        for f in &files {
            let name = f.display().to_string();
            let text = std::fs::read_to_string(f).map_err(|e| PolicyError::File {
                file: name.clone(),
                msg: e.to_string(),
            })?;
            let pf: PolicyFile = toml::from_str(&text).map_err(|e| {
                let (line, col) = e.span().map_or((1, 1), |s| line_col(&text, s.start));
                PolicyError::At {
                    file: name.clone(),
                    line,
                    col,
                    msg: e.message().trim().to_string(),
                }
            })?;
            parsed.push((name, text, pf));
        }
        Self::build(dir, parsed, files)
    }

    fn build(
        dir: &Path,
        parsed: Vec<(String, String, PolicyFile)>,
        files: Vec<PathBuf>,
    ) -> Result<Policy, PolicyError> {
        let at = |file: &str, text: &str, needle: &str, msg: String| PolicyError::At {
            file: file.to_string(),
            line: line_of(text, needle),
            col: 1,
            msg,
        };
        let mut p = Policy::empty();
        p.files = files;
        let mut settings_from: Option<String> = None;
        let mut tags_from: Option<String> = None;
        let mut specs: BTreeMap<String, (String, String, DetectorSpec)> = BTreeMap::new();
        for (file, text, pf) in &parsed {
            if let Some(s) = &pf.settings {
                if let Some(other) = &settings_from {
                    return Err(at(
                        file,
                        text,
                        "[settings]",
                        format!("[settings] is already set in {other}"),
                    ));
                }
                settings_from = Some(file.clone());
                if s.expiry.get().is_zero() || s.expiry.get() > s.max_expiry.get() {
                    return Err(at(
                        file,
                        text,
                        "expiry",
                        "expiry must be more than 0 and at most max_expiry".into(),
                    ));
                }
                p.settings = s.clone();
            }
            if let Some(t) = &pf.tags {
                if let Some(other) = &tags_from {
                    return Err(at(
                        file,
                        text,
                        "[tags]",
                        format!("[tags] is already set in {other}"),
                    ));
                }
                tags_from = Some(file.clone());
                p.tags = t.clone();
            }
            for (name, list) in &pf.domains {
                if p.domains.contains_key(name) {
                    return Err(at(
                        file,
                        text,
                        name,
                        format!("domain list '{name}' is defined twice"),
                    ));
                }
                p.domains.insert(
                    name.clone(),
                    list.domains
                        .iter()
                        .map(|d| d.trim().to_ascii_lowercase())
                        .collect(),
                );
            }
            for (name, spec) in &pf.detectors {
                if specs.contains_key(name) {
                    return Err(at(
                        file,
                        text,
                        name,
                        format!("detector '{name}' is defined twice"),
                    ));
                }
                specs.insert(name.clone(), (file.clone(), text.clone(), spec.clone()));
            }
        }
        let mut patterns: Vec<String> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for (name, (file, text, spec)) in specs {
            let err = |m: String| at(&file, &text, &format!("detectors.{name}"), m);
            let mut det = Detector {
                label: spec.label.clone().unwrap_or_else(|| name.clone()),
                name: name.clone(),
                kind: spec.kind,
                regex: None,
                keywords: spec
                    .keywords
                    .iter()
                    .map(|k| crate::inspect::normalize(k))
                    .collect(),
                keyword_distance: spec.keyword_distance,
                min_count: spec.min_count.max(1),
                substring: spec.substring,
            };
            match spec.kind {
                DetectorType::Words => {
                    let mut words = spec.words.clone();
                    for wf in &spec.words_files {
                        words.extend(
                            read_list(&dir.join(wf))
                                .map_err(|m| err(format!("words_files: {m}")))?,
                        );
                    }
                    if words.is_empty() {
                        return Err(err(format!("detector '{name}' has no words")));
                    }
                    let idx = p.detectors.len();
                    for w in words {
                        let w = crate::inspect::normalize(&w);
                        if !w.is_empty() {
                            patterns.push(w);
                            p.word_owner.push(idx);
                        }
                    }
                }
                DetectorType::Regex => {
                    let pat = spec.pattern.as_deref().ok_or_else(|| {
                        err(format!("detector '{name}' of type regex needs a pattern"))
                    })?;
                    let re = regex::RegexBuilder::new(pat)
                        .case_insensitive(true)
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| err(format!("detector '{name}': bad pattern: {e}")))?;
                    det.regex = Some(re);
                }
                DetectorType::Bsn | DetectorType::Iban | DetectorType::Card => {}
            }
            index.insert(name, p.detectors.len());
            p.detectors.push(det);
        }
        if !patterns.is_empty() {
            let ac = AhoCorasick::builder()
                .kind(Some(AhoCorasickKind::DFA))
                .match_kind(MatchKind::Standard)
                .build(&patterns)
                .map_err(|e| PolicyError::File {
                    file: dir.display().to_string(),
                    msg: format!("word lists: {e}"),
                })?;
            p.words = Some(ac);
        }
        let builtin = ["unscannable"];
        for (file, text, pf) in &parsed {
            for spec in &pf.rules {
                let needle = format!("\"{}\"", spec.name);
                let err = |m: String| at(file, text, &needle, format!("rule '{}': {m}", spec.name));
                let mut detectors = Vec::new();
                for d in &spec.detectors {
                    match index.get(d) {
                        Some(&i) => detectors.push(i),
                        None if builtin.contains(&d.as_str()) => detectors.push(usize::MAX),
                        None => return Err(err(format!("unknown detector '{d}'"))),
                    }
                }
                let recipients = match spec.recipients.as_deref() {
                    None | Some("any") => Recipients::Any,
                    Some("external") => Recipients::External,
                    Some("internal") => Recipients::Internal,
                    Some(list) if p.domains.contains_key(list) => {
                        Recipients::List(list.to_string())
                    }
                    Some(other) => {
                        return Err(err(format!(
                            "recipients = '{other}' is not any, external, internal or a domain list"
                        )));
                    }
                };
                if let Some(ex) = &spec.exempt_domains
                    && !p.domains.contains_key(ex)
                {
                    return Err(err(format!("unknown domain list '{ex}'")));
                }
                if spec.action != Action::Notify && spec.protection.is_none() {
                    return Err(err("auto and force need a protection (public_files, secure_files or secure_message)".into()));
                }
                if p.rules.iter().any(|r| r.name == spec.name) {
                    return Err(err("a rule with this name already exists".into()));
                }
                p.rules.push(Rule {
                    name: spec.name.clone(),
                    detectors,
                    recipients,
                    exempt: spec.exempt_domains.clone(),
                    has_attachments: spec.has_attachments
                        || !spec.attachment_types.is_empty()
                        || spec.min_attachment_size.is_some(),
                    attachment_types: spec
                        .attachment_types
                        .iter()
                        .map(|t| t.trim_start_matches('.').to_ascii_lowercase())
                        .collect(),
                    min_attachment_size: spec.min_attachment_size.map(|s| s.bytes()),
                    action: spec.action,
                    protection: spec.protection,
                    auth: spec.auth,
                    file: file.clone(),
                });
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests;
