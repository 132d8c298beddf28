//! Outbound STARTTLS (`[relay] require_tls`, `tls_ca_file`), AUTH PLAIN to the next hop
//! (`username`/`password`, only over TLS), and the master key from the environment
//! (`[storage] master_key_env`). Next hops are capture_smtp.py with `--tls`/`--auth`.

mod common;

use common::nexthop::CaptureOpts;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ARRIVAL: Duration = Duration::from_secs(30);

/// Runs `openssl` in `dir` with the white-space separated arguments of `cmd`.
fn openssl(dir: &Path, cmd: &str) {
    let out = Command::new("openssl")
        .args(cmd.split_whitespace())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {cmd}: {}", output_text(&out));
}

/// `openssl req -x509` (CA:TRUE by OpenSSL's default config) for CN `cn` and `san`;
/// returns (dir/NAME.crt, dir/NAME.key).
fn self_signed(dir: &Path, name: &str, cn: &str, san: &str) -> (PathBuf, PathBuf) {
    openssl(
        dir,
        &format!(
            "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN={cn} \
             -addext subjectAltName={san} -keyout {name}.key -out {name}.crt"
        ),
    );
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

/// A server certificate (CA:FALSE) for `san` issued by the CA `dir/CA.crt` (made by
/// `self_signed`); returns (certificate, key).
fn issued(dir: &Path, ca: &str, name: &str, san: &str) -> (PathBuf, PathBuf) {
    let ext = format!("subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n");
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &format!("req -newkey rsa:2048 -nodes -subj /CN={name} -keyout {name}.key -out {name}.csr"),
    );
    openssl(
        dir,
        &format!(
            "x509 -req -in {name}.csr -CA {ca}.crt -CAkey {ca}.key -set_serial 2 -days 2 \
             -extfile {name}.ext -out {name}.crt"
        ),
    );
    (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    )
}

/// A test CA `dir/ca.crt` and a certificate it issued for localhost and 127.0.0.1.
fn pki(dir: &Path) -> (PathBuf, (PathBuf, PathBuf)) {
    let (ca, _) = self_signed(dir, "ca", "SluisTestCA", "DNS:ca.sluis.test");
    (ca, issued(dir, "ca", "hop", LOCALHOST))
}

const LOCALHOST: &str = "DNS:localhost,IP:127.0.0.1";

fn tls_server(cert: &(PathBuf, PathBuf), port: Option<u16>) -> Capture {
    Capture::start_with(&CaptureOpts {
        port,
        tls: Some(cert.clone()),
        ..CaptureOpts::default()
    })
}

fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

/// `smtp://localhost:PORT`, `require_tls = true`, `tls_ca_file = CA`; retries only on request.
fn tls_config(port: u16, ca: &Path) -> Config {
    Config::new(&format!("smtp://localhost:{port}"))
        .relay("require_tls", "true")
        .relay("tls_ca_file", &toml_str(ca.to_str().unwrap()))
        .relay("retry_schedule", "[\"1h\"]")
}

/// The `sluis queue list` entry (first line and its indented lines) for `id`, if listed.
fn queue_entry(sluis: &Sluis, id: &str) -> Option<String> {
    let out = sluis.cli(&["queue", "list"]);
    assert!(out.status.success(), "queue list: {}", output_text(&out));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut entry: Option<String> = None;
    for line in text.lines() {
        if !line.starts_with(char::is_whitespace) {
            if entry.is_some() {
                break;
            }
            if line.contains(id) {
                entry = Some(String::new());
            }
        }
        if let Some(e) = entry.as_mut() {
            e.push_str(line);
            e.push('\n');
        }
    }
    entry
}

/// Waits until the queued message `id` shows a failed attempt; returns its queue entry.
fn wait_deferred(sluis: &Sluis, id: &str) -> String {
    poll(
        ARRIVAL,
        &format!("{id} to be deferred in the queue"),
        || {
            let e = queue_entry(sluis, id)
                .unwrap_or_else(|| panic!("{id} is no longer queued (delivered or bounced?)"));
            e.contains("last error:").then_some(e)
        },
    )
}

fn last_error(entry: &str) -> String {
    entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("last error:"))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// Sends one message to `rcpt@dest.test` and returns (queue id, tag, message).
fn send(sluis: &Sluis, tag: &str) -> (String, String, Vec<u8>) {
    let tag = unique(tag);
    let msg = message(&tag, "over an encrypted hop");
    let mut s = sluis.session();
    let id = s.send_mail("sender@org.test", &["rcpt@dest.test"], &msg);
    s.expect("QUIT", "221 2.0.0");
    (id, tag, msg)
}

#[test]
fn require_tls_delivers_over_verified_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert) = pki(dir.path());
    let cap = tls_server(&cert, None);
    let sluis = Sluis::start(tls_config(cap.port, &ca));
    let (_, tag, msg) = send(&sluis, "tls");
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert!(m.tls, "the next hop session was not encrypted: {m:?}");
    assert_eq!(m.auth_user, None);
    assert_eq!(m.mail_from, "sender@org.test");
    assert_eq!(m.rcpt_tos, ["rcpt@dest.test"]);
    assert_relayed_exactly(&m.data, &msg);
    assert!(cap.auth_log().is_empty(), "{:?}", cap.auth_log());
}

#[test]
fn require_tls_defers_when_starttls_missing_then_delivers_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert) = pki(dir.path());
    let plain = Capture::start();
    let port = plain.port;
    let sluis = Sluis::start(tls_config(port, &ca));
    let (id, tag, msg) = send(&sluis, "notls");
    let entry = wait_deferred(&sluis, &id);
    assert!(entry.contains("pending"), "{entry}");
    let err = last_error(&entry);
    assert!(err.contains("STARTTLS"), "last error: {err:?}\n{entry}");
    // nothing went out in the clear, and a temporary failure produces no DSN
    assert!(plain.messages().is_empty(), "{:?}", plain.messages());
    assert!(plain.rcpt_log().is_empty(), "{:?}", plain.rcpt_log());
    drop(plain);

    // the same port now offers STARTTLS: an explicit retry delivers, encrypted
    let tls = tls_server(&cert, Some(port));
    let out = sluis.cli(&["queue", "retry", &id]);
    assert!(out.status.success(), "{}", output_text(&out));
    let m = tls.wait_for_containing(&tag, ARRIVAL);
    assert!(m.tls, "{m:?}");
    assert_relayed_exactly(&m.data, &msg);
    poll(ARRIVAL, "the queue to forget the message", || {
        queue_entry(&sluis, &id).is_none().then_some(())
    });
    let all = tls.messages();
    assert_eq!(all.len(), 1, "expected only the message, no DSN: {all:?}");
}

fn assert_stays_queued_untrusted(sluis: &Sluis, cap: &Capture, id: &str) {
    let entry = wait_deferred(sluis, id);
    assert!(entry.contains("pending"), "{entry}");
    let err = last_error(&entry).to_ascii_lowercase();
    assert!(
        err.contains("certificate") || err.contains("tls"),
        "last error should name the TLS/certificate failure: {err:?}"
    );
    assert!(cap.messages().is_empty(), "{:?}", cap.messages());
    assert!(cap.rcpt_log().is_empty(), "{:?}", cap.rcpt_log());
}

#[test]
fn require_tls_refuses_certificate_from_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (_, served) = pki(dir.path());
    // a different CA with the very same name: only the signature tells them apart
    let (other_ca, _) = self_signed(dir.path(), "other", "SluisTestCA", "DNS:ca.sluis.test");
    let cap = tls_server(&served, None);
    let sluis = Sluis::start(tls_config(cap.port, &other_ca));
    let (id, _, _) = send(&sluis, "wrongca");
    assert_stays_queued_untrusted(&sluis, &cap, &id);
}

#[test]
fn require_tls_refuses_certificate_for_another_name() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, _) = pki(dir.path());
    let served = issued(dir.path(), "ca", "elsewhere", "DNS:mail.elsewhere.test");
    let cap = tls_server(&served, None);
    let sluis = Sluis::start(tls_config(cap.port, &ca));
    let (id, _, _) = send(&sluis, "wrongname");
    assert_stays_queued_untrusted(&sluis, &cap, &id);
}

/// An admin pins a smarthost's self-signed certificate (`openssl req -x509`, which marks
/// it CA:TRUE) by naming it as `tls_ca_file`; OpenSSL-based MTAs accept this.
#[test]
fn require_tls_accepts_pinned_self_signed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "pinned", "localhost", LOCALHOST);
    let cap = tls_server(&cert, None);
    let sluis = Sluis::start(tls_config(cap.port, &cert.0));
    let (id, tag, _) = send(&sluis, "pinned");
    let m = poll(ARRIVAL, "delivery to the pinned host", || {
        if let Some(e) = queue_entry(&sluis, &id) {
            assert!(!e.contains("last error:"), "delivery failed: {e}");
        }
        cap.messages().into_iter().find(|m| contains(&m.data, &tag))
    });
    assert!(m.tls, "{m:?}");
}

fn auth_server(cert: &(PathBuf, PathBuf)) -> Capture {
    Capture::start_with(&CaptureOpts {
        tls: Some(cert.clone()),
        auth: Some(("relayuser".into(), "s3cret-pw".into())),
        ..CaptureOpts::default()
    })
}

fn with_credentials(cfg: Config, password: &str) -> Config {
    cfg.relay("username", "\"relayuser\"")
        .relay("password", &toml_str(password))
}

#[test]
fn auth_plain_over_tls_delivers_as_the_configured_user() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert) = pki(dir.path());
    let cap = auth_server(&cert);
    let sluis = Sluis::start(with_credentials(tls_config(cap.port, &ca), "s3cret-pw"));
    let (_, tag, msg) = send(&sluis, "auth");
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert!(m.tls, "{m:?}");
    assert_eq!(m.auth_user.as_deref(), Some("relayuser"), "{m:?}");
    assert_relayed_exactly(&m.data, &msg);
    let log = cap.auth_log();
    assert!(log.iter().any(|l| l == "OK relayuser"), "{log:?}");
    assert!(
        log.iter()
            .filter(|l| l.starts_with("AUTH "))
            .all(|l| l.starts_with("AUTH tls=1 PLAIN ")),
        "AUTH must be PLAIN and only after STARTTLS: {log:?}"
    );
}

#[test]
fn auth_wrong_password_keeps_message_queued_without_dsn() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert) = pki(dir.path());
    let cap = auth_server(&cert);
    let cfg = tls_config(cap.port, &ca).relay("retry_schedule", "[\"1s\"]");
    let sluis = Sluis::start(with_credentials(cfg, "not-the-pw"));
    let (id, _, _) = send(&sluis, "badauth");
    // several attempts, each refused: the failure stays temporary
    poll(ARRIVAL, "two refused AUTH attempts", || {
        let fails = cap
            .auth_log()
            .iter()
            .filter(|l| *l == "FAIL relayuser")
            .count();
        (fails >= 2).then_some(())
    });
    let entry = wait_deferred(&sluis, &id);
    assert!(entry.contains("rcpt@dest.test  pending"), "{entry}");
    assert!(last_error(&entry).contains("535"), "{entry}");
    let msgs = cap.messages();
    assert!(msgs.is_empty(), "nothing delivered, no DSN: {msgs:?}");
    assert!(cap.rcpt_log().is_empty(), "{:?}", cap.rcpt_log());
}

#[test]
fn credentials_are_never_sent_without_tls() {
    // a next hop that offers AUTH in the clear and no STARTTLS
    let cap = Capture::start_with(&CaptureOpts {
        auth: Some(("relayuser".into(), "s3cret-pw".into())),
        auth_without_tls: true,
        ..CaptureOpts::default()
    });
    let sluis = Sluis::start(
        with_credentials(Config::new(&cap.next_hop()), "s3cret-pw")
            .relay("retry_schedule", "[\"1h\"]"),
    );
    let (id, _, _) = send(&sluis, "noauthclear");
    let entry = wait_deferred(&sluis, &id);
    assert!(entry.contains("pending"), "{entry}");
    let log = cap.auth_log();
    assert!(log.is_empty(), "credentials sent without TLS: {log:?}");
    assert!(cap.messages().is_empty(), "{:?}", cap.messages());
}

const KEY_VAR: &str = "SLUIS_TEST_KEY";

fn env_key_config(next_hop: &str) -> Config {
    Config::new(next_hop).set("storage", "master_key_env", &toml_str(KEY_VAR))
}

fn files_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(files_named(&p, name));
        } else if e.file_name() == name {
            found.push(p);
        }
    }
    found
}

#[test]
fn master_key_from_environment() {
    let key = "00112233445566778899aabbccddeeff0123456789ABCDEF0f1e2d3c4b5a6978";
    let cap = Capture::start();
    let sluis = Sluis::start_with_env(env_key_config(&cap.next_hop()), &[(KEY_VAR, key)]);
    let (_, tag, msg) = send(&sluis, "envkey");
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_relayed_exactly(&m.data, &msg);
    let out = sluis.cli(&["queue", "list"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let keys = files_named(sluis.dir.path(), "master.key");
    assert!(
        keys.is_empty(),
        "master.key written despite master_key_env: {keys:?}"
    );
}

#[test]
fn master_key_env_unset_or_invalid_is_fatal() {
    let not_hex = "g".repeat(64);
    for value in [None, Some("0123abcd"), Some(not_hex.as_str())] {
        let sluis = Sluis::prepare(env_key_config("maildir:./outbox"));
        let mut cmd = Command::new(sluis_bin());
        cmd.args(["serve", "--config"])
            .arg(&sluis.config_path)
            .current_dir(sluis.dir.path())
            .env_remove(KEY_VAR)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(v) = value {
            cmd.env(KEY_VAR, v);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill(); // no-op once it has exited
        let out = child.wait_with_output().unwrap();
        let status = out.status;
        let text = output_text(&out);
        assert!(
            !status.success(),
            "{KEY_VAR}={value:?}: serve exited {status}: {text}"
        );
        assert!(
            text.contains(KEY_VAR),
            "{KEY_VAR}={value:?}: error does not name it: {text}"
        );
        assert!(!text.lines().any(|l| l.trim() == "ready"), "{text}");
        let keys = files_named(sluis.dir.path(), "master.key");
        assert!(keys.is_empty(), "{keys:?}");
    }
}
