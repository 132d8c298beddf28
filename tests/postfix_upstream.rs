//! Postfix as the organisation's mail server, sluis as its relayhost:
//!
//!   swaks -> private Postfix (relayhost = [127.0.0.1]:SLUIS) -> sluis -> smtp-sink (dumps to files)
//!
//! Real processes only, all on 127.0.0.1. Needs root (Postfix's master runs as root) and the
//! Debian packages `postfix` (smtp-sink, postconf) and `swaks`. A missing tool fails the test
//! with a message saying what to install; nothing is skipped.
//!
//! The Postfix side is started by `tests/support/postfix_instance.sh`; the main.cf lines it
//! writes are documented in `packaging/docs/postfix.md`.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const POSTFIX: &str = "/usr/sbin/postfix";
const SMTP_SINK: &str = "/usr/sbin/smtp-sink";
const SLUIS_HOSTNAME: &str = "sluis.test";
const POSTFIX_HOSTNAME: &str = "postfix-test.localdomain"; // set by postfix_instance.sh
const SENDER: &str = "alice@example.org";
const RECIPIENT: &str = "bob@example.net";

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/postfix_instance.sh")
}

fn require_tools() {
    let mut missing = Vec::new();
    for (path, what) in [
        (
            POSTFIX,
            "Debian package 'postfix' (preseed postfix/main_mailer_type='No configuration')",
        ),
        (SMTP_SINK, "Debian package 'postfix' (provides smtp-sink)"),
    ] {
        if !Path::new(path).exists() {
            missing.push(format!("{path}: install {what}"));
        }
    }
    let swaks = Command::new("swaks")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !matches!(swaks, Ok(s) if s.success()) {
        missing.push("swaks: install Debian package 'swaks'".to_string());
    }
    assert!(
        missing.is_empty(),
        "postfix_upstream test needs these tools:\n  {}",
        missing.join("\n  ")
    );
    let uid = Command::new("id").arg("-u").output().expect("run id -u");
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "postfix_upstream test must run as root: a private Postfix master needs root"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on 127.0.0.1:{port} within {timeout:?}");
}

fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
}

/// Everything started by the test; stopped in Drop, also when an assertion fails.
struct Rig {
    dir: tempfile::TempDir,
    sink: Option<Child>,
    sluis: Option<Child>,
    postfix_dir: Option<PathBuf>,
}

impl Rig {
    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn diagnostics(&self) -> String {
        let mut s = String::new();
        for name in ["sluis.stderr", "sluis.stdout", "postfix/maillog"] {
            let p = self.path().join(name);
            let text = read_lossy(&p);
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            s.push_str(&format!("\n--- {} (last 40 lines) ---\n", p.display()));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(dir) = self.postfix_dir.take() {
            let _ = Command::new("bash")
                .arg(script())
                .arg("stop")
                .arg(&dir)
                .status();
        }
        for child in [self.sluis.take(), self.sink.take()].into_iter().flatten() {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Lines sluis prints on stdout, forwarded by a reader thread (which also copies them to a file).
fn spawn_stdout_reader(child: &mut Child, copy: PathBuf) -> mpsc::Receiver<String> {
    let out = child.stdout.take().expect("sluis stdout piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut file = fs::File::create(copy).ok();
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(f) = file.as_mut() {
                use std::io::Write;
                let _ = writeln!(f, "{line}");
            }
            if tx.send(line).is_err() {
                // Nobody listens any more: keep draining so sluis never blocks on stdout.
                continue;
            }
        }
    });
    rx
}

fn wait_for_listen_line(rx: &mpsc::Receiver<String>, rig: &Rig) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut port = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(addr) = line.trim().strip_prefix("smtp listening on ") {
                    let p = addr
                        .rsplit_once(':')
                        .and_then(|(_, p)| p.parse::<u16>().ok())
                        .unwrap_or_else(|| panic!("cannot parse address in {line:?}"));
                    assert_ne!(
                        p, 0,
                        "sluis reported port 0 instead of the bound port: {line:?}"
                    );
                    port = Some(p);
                } else if let (Some(p), "ready") = (port, line.trim()) {
                    return p;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => panic!(
                "sluis did not print `smtp listening on IP:PORT` and `ready` within 60 s{}",
                rig.diagnostics()
            ),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!(
                "sluis exited (closed its stdout) before printing `smtp listening on IP:PORT` \
                 and `ready`{}",
                rig.diagnostics()
            ),
        }
    }
}

/// Header block and body of an smtp-sink dump file (smtp-sink writes LF line endings and
/// puts its own X-* envelope lines and Received header first).
fn split_message(text: &str) -> (&str, &str) {
    match text.find("\n\n") {
        Some(i) => (&text[..i + 1], &text[i + 2..]),
        None => (text, ""),
    }
}

/// Header fields, unfolded, in order: (name, value).
fn header_fields(head: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.to_string(), value.trim().to_string()));
        }
    }
    out
}

#[test]
fn postfix_relays_through_sluis_to_the_next_hop() {
    require_tools();

    let dir = tempfile::Builder::new()
        .prefix("sluis-postfix-")
        .tempdir()
        .expect("tempdir");
    // Postfix's unprivileged daemons and smtp-sink (running as nobody) must reach into it.
    fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let mut rig = Rig {
        dir,
        sink: None,
        sluis: None,
        postfix_dir: None,
    };

    // 1. The next hop: smtp-sink dumping each message into its own file.
    let sink_dir = rig.path().join("sink");
    fs::create_dir(&sink_dir).unwrap();
    let st = Command::new("chown")
        .arg("nobody")
        .arg(&sink_dir)
        .status()
        .expect("chown");
    assert!(st.success(), "chown nobody {}", sink_dir.display());
    let sink_port = free_port();
    let sink = Command::new(SMTP_SINK)
        .arg("-u")
        .arg("nobody")
        .arg("-d")
        .arg(format!("{}/%H%M%S.", sink_dir.display()))
        .arg(format!("127.0.0.1:{sink_port}"))
        .arg("100")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            fs::File::create(rig.path().join("sink.stderr")).unwrap(),
        ))
        .spawn()
        .expect("start smtp-sink");
    rig.sink = Some(sink);
    wait_for_port(sink_port, "smtp-sink", Duration::from_secs(10));

    // 2. sluis, relaying to smtp-sink.
    let data_dir = rig.path().join("sluis-data");
    let config = rig.path().join("sluis.toml");
    fs::write(
        &config,
        format!(
            r#"[smtp]
listen = "127.0.0.1:0"
hostname = "{SLUIS_HOSTNAME}"
relay_networks = ["127.0.0.0/8"]

[relay]
next_hop = "smtp://127.0.0.1:{sink_port}"
retry_schedule = ["1s"]

[storage]
data_dir = "{}"

[organisation]
name = "Postfix upstream test"
internal_domains = ["example.org"]

[web]
listen = "127.0.0.1:0"

# A plain relay: this test is about the SMTP hops, not the policy.
[policy]
allow_empty_policy = true
"#,
            data_dir.display()
        ),
    )
    .unwrap();
    // `SLUIS_BIN` as in tests/common: a pinned copy while a shared target dir is rebuilt.
    let bin = std::env::var("SLUIS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sluis").into());
    let mut sluis = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .current_dir(rig.path())
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            fs::File::create(rig.path().join("sluis.stderr")).unwrap(),
        ))
        .spawn()
        .expect("start sluis");
    let lines = spawn_stdout_reader(&mut sluis, rig.path().join("sluis.stdout"));
    rig.sluis = Some(sluis);
    let sluis_port = wait_for_listen_line(&lines, &rig);

    // 3. The private Postfix instance with relayhost = [127.0.0.1]:sluis_port.
    let postfix_dir = rig.path().join("postfix");
    let postfix_port = free_port();
    let out = Command::new("bash")
        .arg(script())
        .arg("start")
        .arg(&postfix_dir)
        .arg(postfix_port.to_string())
        .arg(sluis_port.to_string())
        // Opportunistic STARTTLS to sluis, as in packaging/docs/postfix.md.
        .arg("smtp_tls_security_level=may")
        .output()
        .expect("run postfix_instance.sh");
    rig.postfix_dir = Some(postfix_dir.clone());
    assert!(
        out.status.success(),
        "postfix_instance.sh start failed:\n{}{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        rig.diagnostics()
    );

    // 4. The message, submitted to Postfix with swaks. A forged sluis marker must not survive,
    //    a line starting with a dot tests dot-stuffing over both hops, and 8-bit text 8BITMIME.
    let token = format!("postfix-upstream-{}-{}", std::process::id(), sluis_port);
    let body = format!(
        "Hello Bob,\n\
         \n\
         this message travels Postfix -> sluis -> smtp-sink ({token}).\n\
         .a line that starts with a dot\n\
         ..and one with two dots\n\
         Groeten uit Zwolle, met een \u{e9}\u{e9}n-twee-drie en caf\u{e9}.\n\
         \n\
         -- \n\
         Alice\n"
    );
    let headers = format!(
        "From: Alice <{SENDER}>\n\
         To: Bob <{RECIPIENT}>\n\
         Subject: Postfix upstream {token}\n\
         Message-ID: <{token}@example.org>\n\
         Date: Wed, 25 Nov 2026 12:00:00 +0000\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         X-Sluis-Processed: v1; forged-by-the-test\n"
    );
    // CRLF on the wire; no final line break, swaks adds it before the terminating dot.
    let message = format!("{headers}\n{body}")
        .trim_end_matches('\n')
        .replace('\n', "\r\n");
    let msg_file = rig.path().join("message.eml");
    fs::write(&msg_file, &message).unwrap();
    let swaks = Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{postfix_port}")])
        .args(["--helo", "client.example.org"])
        .args(["--from", SENDER, "--to", RECIPIENT])
        .arg("--data")
        .arg(&msg_file)
        .args(["--timeout", "30"])
        .output()
        .expect("run swaks");
    let swaks_out = String::from_utf8_lossy(&swaks.stdout).into_owned();
    assert!(
        swaks.status.success() && swaks_out.contains("250 2.0.0 Ok: queued as"),
        "Postfix did not accept the message from swaks:\n{swaks_out}{}",
        String::from_utf8_lossy(&swaks.stderr)
    );

    // 5. Wait for the message at smtp-sink (Postfix -> sluis -> sink).
    let deadline = Instant::now() + Duration::from_secs(90);
    let dumped = loop {
        let files: Vec<PathBuf> = fs::read_dir(&sink_dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        let mut found = None;
        for f in &files {
            let text = read_lossy(f);
            // smtp-sink writes the file while receiving; take it once the body end is there.
            if text.contains(&token) && text.contains("\nAlice\n") {
                found = Some((f.clone(), text, files.len()));
            }
        }
        if let Some(found) = found {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the message did not arrive at smtp-sink within 90 s; sink dir has {} file(s){}",
            files.len(),
            rig.diagnostics()
        );
        thread::sleep(Duration::from_millis(200));
    };
    let (dump_path, dump, _) = dumped;
    // Give a duplicate delivery a moment to show up, then count.
    thread::sleep(Duration::from_secs(2));
    let copies = fs::read_dir(&sink_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| read_lossy(&e.path()).contains(&token))
        .count();
    assert_eq!(
        copies,
        1,
        "expected exactly one delivery at smtp-sink{}",
        rig.diagnostics()
    );

    // Shown with `cargo test -- --nocapture`.
    println!("--- message as received by smtp-sink ---\n{dump}");
    let (head, dumped_body) = split_message(&dump);
    let fields = header_fields(head);
    let ctx = format!("\n--- dump {} ---\n{dump}", dump_path.display());

    // Envelope unchanged (smtp-sink records MAIL FROM and RCPT TO arguments).
    let field = |name: &str| -> Vec<&str> {
        fields
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let mail_args = field("X-Mail-Args");
    assert!(
        mail_args.len() == 1 && mail_args[0].starts_with(&format!("<{SENDER}>")),
        "envelope sender changed: {mail_args:?}{ctx}"
    );
    let rcpt_args = field("X-Rcpt-Args");
    assert!(
        rcpt_args.len() == 1 && rcpt_args[0].starts_with(&format!("<{RECIPIENT}>")),
        "envelope recipient changed: {rcpt_args:?}{ctx}"
    );
    // smtp-sink's own view of the client: sluis connected to it with ESMTP.
    assert_eq!(field("X-Client-Addr"), ["127.0.0.1"], "{ctx}");

    // Received headers, top to bottom: smtp-sink's, sluis's, Postfix's.
    let received: Vec<&str> = field("Received");
    assert_eq!(
        received.len(),
        3,
        "expected the Received headers of smtp-sink, sluis and Postfix, got {received:#?}{ctx}"
    );
    assert!(received[0].contains("by smtp-sink"), "{received:#?}{ctx}");
    let sluis_rcvd = received[1];
    assert!(
        head.contains("\nReceived: from ") || head.starts_with("Received: from "),
        "no header line starts with `Received: from `{ctx}"
    );
    assert!(
        sluis_rcvd.starts_with(&format!("from {POSTFIX_HOSTNAME} ")),
        "sluis Received header should start `from HELO` with Postfix's EHLO name \
         {POSTFIX_HOSTNAME}: {sluis_rcvd:?}{ctx}"
    );
    for needle in [
        "[127.0.0.1]".to_string(),
        format!("by {SLUIS_HOSTNAME} (sluis)"),
        // Postfix uses STARTTLS when offered (smtp_tls_security_level = may).
        "with ESMTPS id ".to_string(),
        format!("for <{RECIPIENT}>;"),
    ] {
        assert!(
            sluis_rcvd.contains(&needle),
            "sluis Received header lacks {needle:?}: {sluis_rcvd:?}{ctx}"
        );
    }
    let postfix_rcvd = received[2];
    assert!(
        postfix_rcvd.starts_with("from client.example.org ")
            && postfix_rcvd.contains(&format!("by {POSTFIX_HOSTNAME} (Postfix)")),
        "Postfix's Received header missing or changed: {postfix_rcvd:?}{ctx}"
    );

    // sluis's own marker, and the forged one removed.
    let markers = field("X-Sluis-Processed");
    assert_eq!(
        markers.len(),
        1,
        "expected exactly one X-Sluis-Processed (sluis's own): {markers:?}{ctx}"
    );
    assert!(
        markers[0].starts_with("v2;") && !markers[0].contains("forged-by-the-test"),
        "the forged X-Sluis-Processed header was passed on: {markers:?}{ctx}"
    );
    // The marker sits directly below sluis's Received header.
    let pos = |name: &str| {
        fields
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let sluis_rcvd_pos = fields
        .iter()
        .position(|(n, v)| n == "Received" && v == sluis_rcvd)
        .unwrap();
    assert_eq!(
        pos("X-Sluis-Processed"),
        Some(sluis_rcvd_pos + 1),
        "X-Sluis-Processed should follow sluis's Received header{ctx}"
    );

    // The original header fields, unchanged.
    for (name, value) in [
        ("Subject", format!("Postfix upstream {token}")),
        ("Message-ID", format!("<{token}@example.org>")),
        ("From", format!("Alice <{SENDER}>")),
        ("To", format!("Bob <{RECIPIENT}>")),
        ("Content-Transfer-Encoding", "8bit".to_string()),
    ] {
        assert_eq!(field(name), [value.as_str()], "header {name}{ctx}");
    }

    // The body, byte for byte (smtp-sink stores LF line ends and adds one final empty line).
    assert_eq!(
        dumped_body.trim_end_matches('\n'),
        body.trim_end_matches('\n'),
        "body changed on the way{ctx}"
    );

    // Postfix logged the delivery to sluis.
    let maillog = read_lossy(&postfix_dir.join("maillog"));
    assert!(
        maillog.contains(&format!("relay=127.0.0.1[127.0.0.1]:{sluis_port}"))
            && maillog.contains("status=sent (250 2.0.0 OK queued as"),
        "Postfix's log does not show the delivery to sluis with `250 2.0.0 OK queued as`:\n{maillog}"
    );

    // 6. Graceful shutdown: SIGTERM -> exit 0.
    let mut sluis = rig.sluis.take().unwrap();
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(sluis.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = sluis.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = sluis.kill();
            let _ = sluis.wait();
            panic!(
                "sluis did not exit within 20 s of SIGTERM{}",
                rig.diagnostics()
            );
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "sluis exited with {status} after SIGTERM (expected 0){}",
        rig.diagnostics()
    );
    drop(lines);
}
