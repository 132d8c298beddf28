//! Fail closed without a policy: a missing, empty or rule-less policy folder stops `sluis serve`
//! and `sluis check` with a message naming the folder, unless `[policy] allow_empty_policy`
//! asks for a plain relay; serve never creates a policy folder; a reload that would leave no
//! rules is refused. All through the real binary.

mod common;

use common::protect::copy_dir;
use common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const ARRIVAL: Duration = Duration::from_secs(30);

/// A config for a relay to `cap` with the policy left to its default (or `dir`), fail-closed.
fn config(cap: &Capture, dir: Option<&Path>) -> Config {
    let c = Config::new(&cap.next_hop())
        .set("policy", "allow_empty_policy", "false")
        .set("organisation", "internal_domains", "[\"org.test\"]");
    match dir {
        Some(d) => c.set("policy", "dir", &format!("{:?}", d.to_str().unwrap())),
        None => c,
    }
}

/// Runs `sluis ARGS --config FILE` from `cwd`; a serve that does not exit within 30 s (it
/// started after all) is killed and reported.
fn run_in(cwd: &Path, config: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(sluis_bin())
        .args(args)
        .arg("--config")
        .arg(config)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            let out = child.wait_with_output().unwrap();
            panic!(
                "sluis {args:?} kept running without a policy:\n{}",
                output_text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// `serve` and `check` both refuse, exit 1, and name `folder` and `why`; nothing is created.
fn both_refuse(sluis: &Sluis, folder: &Path, why: &str) {
    let cwd = tempfile::tempdir().unwrap();
    for cmd in ["serve", "check"] {
        let out = run_in(cwd.path(), &sluis.config_path, &[cmd]);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {text}");
        assert!(
            text.contains(&format!("policy folder {}", folder.display())) && text.contains(why),
            "{cmd} should name the folder {} and say {why:?}: {text}",
            folder.display()
        );
        // The way out for a folder without rules; an unreadable one is no plain relay.
        assert_eq!(
            text.contains("allow_empty_policy"),
            !why.contains("cannot read"),
            "{cmd}: {text}"
        );
        assert!(!text.contains("config OK"), "{text}");
    }
    assert!(
        !cwd.path().join("policies").exists(),
        "a policies folder was created in the current directory"
    );
    assert!(!sluis.data_dir.exists(), "serve created its data dir");
}

#[test]
fn a_missing_default_folder_stops_serve_and_check() {
    let cap = Capture::start();
    let sluis = Sluis::prepare(config(&cap, None));
    // The default is the folder next to the config file, not the current directory.
    let expected = sluis.dir.path().join("policies");
    both_refuse(&sluis, &expected, "does not exist");
    assert!(!expected.exists(), "serve created {}", expected.display());
}

#[test]
fn an_empty_folder_stops_serve_and_check() {
    let cap = Capture::start();
    let sluis = Sluis::prepare(config(&cap, None));
    let dir = sluis.dir.path().join("policies");
    fs::create_dir(&dir).unwrap();
    both_refuse(&sluis, &dir, "has no rules");
}

#[test]
fn a_folder_with_only_word_lists_and_settings_stops_serve_and_check() {
    let cap = Capture::start();
    let dir = tempfile::tempdir().unwrap();
    let pol = dir.path().join("beleid");
    fs::create_dir_all(pol.join("words")).unwrap();
    fs::write(pol.join("words/gezondheid.txt"), "diagnose\n").unwrap();
    fs::write(pol.join("README.md"), "# rules go here\n").unwrap();
    fs::write(pol.join("settings.toml"), "[settings]\nexpiry = \"7d\"\n").unwrap();
    fs::write(pol.join("default.toml.bak"), "[[rules]]\nname = \"oud\"\n").unwrap();
    let sluis = Sluis::prepare(config(&cap, Some(&pol)));
    both_refuse(&sluis, &pol, "has no rules (1 policy file(s))");
}

#[test]
fn an_unreadable_folder_stops_serve_and_check() {
    let cap = Capture::start();
    let dir = tempfile::tempdir().unwrap();
    // A file where the folder should be: not readable as a folder, even for root.
    let pol = dir.path().join("policies");
    fs::write(&pol, "not a folder").unwrap();
    let sluis = Sluis::prepare(config(&cap, Some(&pol)));
    both_refuse(&sluis, &pol, "cannot read it: Not a directory");
}

#[test]
fn check_of_the_packaged_config_names_its_missing_folder() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("etc-sluis/policies");
    let packaged =
        fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/sluis.toml"))
            .unwrap();
    assert!(packaged.contains("dir = \"/etc/sluis/policies\""));
    let cfg = dir.path().join("sluis.toml");
    fs::write(
        &cfg,
        packaged.replace("/etc/sluis/policies", missing.to_str().unwrap()),
    )
    .unwrap();
    let out = run_in(dir.path(), &cfg, &["check"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(&format!(
            "policy folder {} does not exist",
            missing.display()
        )),
        "{text}"
    );
    assert!(!text.contains("OK"), "{text}");
    // With the shipped policy in place the same file passes.
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &missing,
    );
    let out = run_in(dir.path(), &cfg, &["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
}

fn bsn_mail(tag: &str) -> Vec<u8> {
    message(tag, "Het burgerservicenummer is 111222333.\r\n")
}

#[test]
fn allow_empty_policy_relays_as_sent_and_creates_no_folder() {
    let cap = Capture::start();
    let cfg = config(&cap, None).set("policy", "allow_empty_policy", "true");
    let mut sluis = Sluis::prepare(cfg);
    let out = sluis.cli(&["check"]);
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("0 rules"), "{text}");
    sluis.spawn();
    let tag = unique("relay");
    sluis
        .session()
        .send_mail("a@org.test", &["b@extern.test"], &bsn_mail(&tag));
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert!(
        contains(&m.data, "111222333"),
        "a plain relay sends as sent"
    );
    assert!(
        !sluis.dir.path().join("policies").exists(),
        "serve created a policies folder"
    );
}

/// sluis on a copy of the shipped policy, fail-closed.
fn with_shipped_policy(cap: &Capture) -> (Sluis, PathBuf) {
    let mut sluis = Sluis::prepare(config(cap, None));
    let dir = sluis.dir.path().join("policies");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("policies"),
        &dir,
    );
    sluis.spawn();
    (sluis, dir)
}

#[test]
fn the_policy_next_to_the_config_is_found_from_any_directory() {
    let cap = Capture::start();
    let (sluis, _) = with_shipped_policy(&cap);
    let tag = unique("found");
    sluis
        .session()
        .send_mail("a@org.test", &["b@extern.test"], &bsn_mail(&tag));
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert!(!contains(&m.data, "111222333"), "the BSN left in clear");
}

#[test]
fn a_change_that_leaves_no_rules_is_refused() {
    let cap = Capture::start();
    let (sluis, dir) = with_shipped_policy(&cap);
    // Every policy file moved away (as an admin emptying the folder would).
    let aside = sluis.dir.path().join("aside");
    fs::create_dir(&aside).unwrap();
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            fs::rename(&p, aside.join(p.file_name().unwrap())).unwrap();
        }
    }
    let out = sluis.cli(&["check"]);
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    // Well past the watcher's settling time, every message is still protected.
    let mut s = sluis.session();
    let until = Instant::now() + Duration::from_secs(3);
    let mut sent = 0;
    while Instant::now() < until {
        let tag = unique("after");
        s.send_mail("a@org.test", &["b@extern.test"], &bsn_mail(&tag));
        let m = cap.wait_for_containing(&tag, ARRIVAL);
        assert!(
            !contains(&m.data, "111222333"),
            "message {sent} after the folder was emptied left in clear"
        );
        sent += 1;
    }
    assert!(sent >= 2, "only {sent} message(s) in the window");
}

#[test]
fn without_a_config_the_shipped_policy_is_found_from_any_directory() {
    // README's first command runs the embedded default; from the repository or elsewhere it
    // finds the shipped policy (next to the program or in the repository it was built from).
    let elsewhere = tempfile::tempdir().unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    for cwd in [repo, elsewhere.path()] {
        let out = Command::new(sluis_bin())
            .arg("check")
            .current_dir(cwd)
            .output()
            .unwrap();
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(0), "from {}: {text}", cwd.display());
        assert!(
            text.contains(&format!("policies OK: {}", repo.join("policies").display())),
            "from {}: {text}",
            cwd.display()
        );
    }
    assert!(!elsewhere.path().join("policies").exists());
}
