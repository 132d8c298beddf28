//! The `sluis` command line: check, queue list/retry/remove, environment overrides,
//! graceful shutdown.

mod common;

use common::*;
use std::fs;
use std::net::TcpListener;
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

#[test]
fn check_accepts_a_good_config() {
    let sluis = Sluis::prepare(
        Config::new("maildir:./outbox")
            .smtp("max_message_size", "\"10 MiB\"")
            .smtp("idle_timeout", "\"10m\"")
            .relay("retry_schedule", "[\"1m\", \"5m\", \"1h\"]")
            .relay("max_queue_lifetime", "\"5d\"")
            .set("organisation", "name", "\"Example\"")
            .set("organisation", "internal_domains", "[\"org.test\"]"),
    );
    let out = sluis.cli(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("config OK: {}", sluis.config_path.display())),
        "{text}"
    );
}

fn check_fails_at(config: &str, line: usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    fs::write(&path, config).unwrap();
    let out = std::process::Command::new(sluis_bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let want = format!("{}:{line}:", path.display());
    assert!(text.contains(&want), "expected {want:?} in: {text}");
    text
}

#[test]
fn check_rejects_unknown_key_with_file_and_line() {
    let text = check_fails_at(
        "[smtp]\nlisten = \"127.0.0.1:0\"\nlisten_adress = \"0.0.0.0:25\"\n\n[relay]\nnext_hop = \"mx\"\n",
        3,
    );
    assert!(
        text.contains("listen_adress"),
        "should name the key: {text}"
    );
}

#[test]
fn check_rejects_unknown_key_in_later_section() {
    check_fails_at(
        "[smtp]\nlisten = \"127.0.0.1:0\"\n\n[relay]\nnext_hop = \"mx\"\nretry_shedule = [\"1m\"]\n",
        6,
    );
}

#[test]
fn check_rejects_bad_size_value() {
    check_fails_at(
        "[smtp]\nlisten = \"127.0.0.1:0\"\nmax_message_size = \"lots\"\n",
        3,
    );
}

#[test]
fn env_overrides_config_listen() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = held.local_addr().unwrap().port();
    let cap = Capture::start();
    let cfg = Config::new(&cap.next_hop()).smtp("listen", &format!("\"127.0.0.1:{taken}\""));
    let sluis = Sluis::start_with_env(cfg, &[("SLUIS_SMTP__LISTEN", "127.0.0.1:0")]);
    assert_ne!(sluis.addr.port(), taken, "env override ignored");
    let mut s = sluis.session();
    s.expect("NOOP", "250 2.0.0");
    // an env override of the hostname shows in the greeting
    drop(s);
    drop(sluis);
    let cfg = Config::new(&cap.next_hop());
    let sluis = Sluis::start_with_env(cfg, &[("SLUIS_SMTP__HOSTNAME", "env.sluis.test")]);
    let s = sluis.connect();
    assert!(s.greeting.starts("220 env.sluis.test "), "{:?}", s.greeting);
}

#[test]
fn sigterm_shuts_down_gracefully() {
    let cap = Capture::start();
    let mut sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    s.expect("MAIL FROM:<a@org.test>", "250 2.1.0");
    sluis.signal(libc::SIGTERM);
    let r = s.read_reply();
    assert!(r.starts("421 4.3.2"), "{r:?}");
    assert!(s.closed_within(Duration::from_secs(10)));
    let status = sluis.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "exit status after SIGTERM");
    // no longer listening
    assert!(std::net::TcpStream::connect(sluis.addr).is_err());
}

#[test]
fn queue_list_retry_remove() {
    let cap = Capture::start_deferring();
    let sluis = Sluis::start(Config::new(&cap.next_hop()).relay("retry_schedule", "[\"1h\"]"));
    let mut s = sluis.session();
    let tag_a = unique("keep");
    let tag_b = unique("drop");
    let id_a = s.send_mail("a@org.test", &["ra@dest.test"], &message(&tag_a, "a"));
    let id_b = s.send_mail("b@org.test", &["rb@dest.test"], &message(&tag_b, "b"));
    s.expect("QUIT", "221 2.0.0");
    poll(ARRIVAL, "first (deferred) attempts", || {
        let log = cap.rcpt_log();
        (log.iter().any(|(_, a)| a == "ra@dest.test")
            && log.iter().any(|(_, a)| a == "rb@dest.test"))
        .then_some(())
    });
    let out = sluis.cli(&["queue", "list"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(list.contains(&id_a) && list.contains(&id_b), "{list}");

    let out = sluis.cli(&["queue", "remove", &id_b]);
    assert!(out.status.success(), "{}", output_text(&out));
    let out = sluis.cli(&["queue", "list"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(list.contains(&id_a), "{list}");
    assert!(
        !list.contains(&id_b),
        "removed message still listed: {list}"
    );

    // the retry schedule says 1h: only an explicit retry delivers now
    cap.set_defer_all(false);
    let out = sluis.cli(&["queue", "retry", &id_a]);
    assert!(out.status.success(), "{}", output_text(&out));
    let m = cap.wait_for_containing(&tag_a, ARRIVAL);
    assert_eq!(m.rcpt_tos, ["ra@dest.test"]);
    let out = sluis.cli(&["queue", "retry"]);
    assert!(out.status.success(), "{}", output_text(&out));
    poll(ARRIVAL, "queue to be empty", || {
        let out = sluis.cli(&["queue", "list"]);
        let l = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && !l.contains(&id_a)).then_some(())
    });
    assert!(!cap.messages().iter().any(|m| contains(&m.data, &tag_b)));
    assert!(
        !cap.rcpt_log()
            .iter()
            .any(|(c, a)| *c == 250 && a == "rb@dest.test"),
        "removed message was delivered"
    );
}

#[test]
fn sigint_exits_cleanly() {
    let cap = Capture::start();
    let mut sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    sluis.signal(libc::SIGINT);
    let r = s.read_reply();
    assert!(r.starts("421 4.3.2"), "{r:?}");
    let status = sluis.wait_exit(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0), "exit status after SIGINT");
}

/// `check` catches what `serve` would trip over; each error names file, line, section and key.
#[test]
fn check_rejects_ports_out_of_range() {
    let t = check_fails_at("[smtp]\nlisten = \"127.0.0.1:99999\"\n", 2);
    assert!(
        t.contains("[smtp] listen: port 99999 is out of range"),
        "{t}"
    );
    let t = check_fails_at(
        "[smtp]\nlisten = \"127.0.0.1:0\"\n[web]\nlisten = \":8025\"\n",
        4,
    );
    assert!(t.contains("[web] listen: ':8025' needs a host"), "{t}");
}

#[test]
fn check_rejects_missing_certificate_and_key_files() {
    let t = check_fails_at(
        "[smtp]\ntls_cert = \"/nonexistent/sluis.pem\"\ntls_key = \"/nonexistent/sluis.key\"\n",
        2,
    );
    assert!(
        t.contains(
            "[smtp] tls_cert: cannot read /nonexistent/sluis.pem: No such file or directory"
        ),
        "{t}"
    );
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("web.crt");
    fs::write(&cert, "-----BEGIN CERTIFICATE-----\n").unwrap();
    let t = check_fails_at(
        &format!("[web]\ntls_cert = {cert:?}\ntls_key = \"/nonexistent/web.key\"\n"),
        3,
    );
    assert!(
        t.contains("[web] tls_key: cannot read /nonexistent/web.key"),
        "{t}"
    );
}

#[test]
fn check_rejects_unknown_languages() {
    let t = check_fails_at("[organisation]\ndefault_language = \"de\"\n", 2);
    assert!(
        t.contains("[organisation] default_language: 'de' is not a language"),
        "{t}"
    );
}

#[test]
fn check_rejects_zero_durations() {
    for (cfg, line, key) in [
        ("[smtp]\nidle_timeout = \"0s\"\n", 2, "[smtp] idle_timeout"),
        (
            "[relay]\nretry_schedule = [\"1m\", 0]\n",
            2,
            "[relay] retry_schedule",
        ),
        (
            "[relay]\nconnect_timeout = 0\n",
            2,
            "[relay] connect_timeout",
        ),
        (
            "[storage]\nshred_interval = \"0m\"\n",
            2,
            "[storage] shred_interval",
        ),
    ] {
        let t = check_fails_at(cfg, line);
        assert!(t.contains(&format!("{key}: must be more than 0")), "{t}");
    }
}

#[test]
fn check_rejects_an_unreadable_logo() {
    let t = check_fails_at("[web]\nlogo = \"/nonexistent/logo.png\"\n", 2);
    assert!(
        t.contains("[web] logo: cannot read /nonexistent/logo.png"),
        "{t}"
    );
    let dir = tempfile::tempdir().unwrap();
    let t = check_fails_at(&format!("[web]\nlogo = {:?}\n", dir.path()), 2);
    assert!(t.contains("is not a file"), "{t}");
}

#[test]
fn check_names_the_key_of_a_bad_value() {
    let t = check_fails_at("[relay]\nretry_schedule = [\"soon\"]\n", 2);
    assert!(
        t.contains("retry_schedule: 'soon' does not start with a number"),
        "{t}"
    );
}

#[test]
fn check_of_a_missing_config_says_so_once() {
    let out = std::process::Command::new(sluis_bin())
        .args(["check", "--config", "/nonexistent/sluis.toml"])
        .output()
        .unwrap();
    let t = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains("/nonexistent/sluis.toml: cannot read: No such file or directory"),
        "{t}"
    );
    assert_eq!(t.matches("No such file").count(), 1, "{t}");
    assert!(!t.contains("os error"), "{t}");
}

#[test]
fn every_command_explains_config() {
    for cmd in [
        &["serve"][..],
        &["check"],
        &["explain"],
        &["queue", "list"],
        &["key", "rotate"],
    ] {
        let out = std::process::Command::new(sluis_bin())
            .args(cmd)
            .arg("--help")
            .output()
            .unwrap();
        let t = output_text(&out);
        let line = t.lines().find(|l| l.contains("--config")).unwrap_or("");
        assert!(line.contains("Config file (TOML)"), "{cmd:?}: {t}");
    }
}

/// The README's examples name files that exist, and `explain` on its example works from the
/// repository without a config (the shipped policy is found).
#[test]
fn readme_examples_name_files_that_exist() {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = fs::read_to_string(repo.join("README.md")).unwrap();
    let mut named = 0;
    for line in readme.lines().filter(|l| l.starts_with("sluis ")) {
        for w in line
            .split_whitespace()
            .filter(|w| w.contains('/') && !w.starts_with('-'))
        {
            if !w.starts_with('/') && !w.contains("...") {
                assert!(
                    repo.join(w).exists(),
                    "README names {w}, which does not exist"
                );
                named += 1;
            }
        }
    }
    assert!(named >= 2, "no example files found in README");
    let out = std::process::Command::new(sluis_bin())
        .args([
            "explain",
            "packaging/examples/bsn.eml",
            "--to",
            "patient@example.net",
        ])
        .current_dir(repo)
        .output()
        .unwrap();
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("decision:   protect: secure message"), "{t}");
}

/// The banner names the master key with a line on backing it up, says "generated" only on the
/// start that generated something, and warns while the organisation is not described.
#[test]
fn banner_names_the_master_key_and_warns_about_unset_organisation() {
    let cap = Capture::start();
    let mut sluis = Sluis::start(Config::new(&cap.next_hop()));
    let key = sluis.data_dir.join("master.key");
    let first = sluis.banner.join("\n");
    let key_line = format!(
        "master key: {} (generated now)",
        fs::canonicalize(&key).unwrap().display()
    );
    assert!(first.contains(&key_line), "{first}");
    assert!(first.contains("back it up"), "{first}");
    assert!(first.contains("(self-signed, generated now)"), "{first}");
    assert!(
        first.contains("warning: [organisation] name is not set"),
        "{first}"
    );
    assert!(
        first.contains("warning: [organisation] internal_domains is empty"),
        "{first}"
    );
    sluis.terminate(Duration::from_secs(30));
    sluis.spawn();
    let again = sluis.banner.join("\n");
    assert!(!again.contains("generated"), "{again}");
    assert!(again.contains("master key: "), "{again}");
    drop(sluis);

    let described = Config::new(&cap.next_hop())
        .set("organisation", "name", "\"Zorggroep\"")
        .set("organisation", "internal_domains", "[\"org.test\"]");
    let sluis = Sluis::start(described);
    let b = sluis.banner.join("\n");
    assert!(!b.contains("warning:"), "{b}");
}
