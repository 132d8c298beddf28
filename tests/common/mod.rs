//! Shared helpers for sluis's black-box integration tests: run the real binary with a
//! temporary config, talk raw SMTP to it, and run real next hops on 127.0.0.1.
#![allow(dead_code, unused_imports)]

pub mod docs;
pub mod http;
pub mod nexthop;
pub mod portal;
pub mod protect;
pub mod raw;
pub mod smtp;
pub mod webdriver;

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use nexthop::{Capture, Captured, Dns, SmtpSink};
pub use smtp::{Reply, Smtp, dot_stuff};

/// How long sluis may take to print `ready`.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The binary under test: `SLUIS_BIN` when set (a copy pinned while a shared target directory
/// is rebuilt by others), else the one cargo built.
pub fn sluis_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("SLUIS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sluis").to_string())
    })
}

pub fn support(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(name)
}

/// Polls `f` every 50 ms until it returns `Some`, panicking after `timeout`.
pub fn poll<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// A 127.0.0.1 port that nothing listens on at the moment of the call.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A word that appears nowhere else (for grep checks and message matching).
pub fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}{}x{}",
        std::process::id(),
        nanos % 1_000_000_000_000
    )
}

/// sluis configuration built from TOML snippets; `key` set twice keeps the last value.
#[derive(Clone, Debug)]
pub struct Config {
    sections: Vec<(String, Vec<(String, String)>)>,
}

impl Config {
    /// Test defaults: ephemeral ports, hostname `sluis.test`, loopback may relay,
    /// one-second retries, the given next hop, and no policy (a plain relay: tests of the
    /// policy set `[policy] dir`).
    pub fn new(next_hop: &str) -> Config {
        Config { sections: vec![] }
            .set("smtp", "listen", "\"127.0.0.1:0\"")
            .set("smtp", "hostname", "\"sluis.test\"")
            .set("smtp", "relay_networks", "[\"127.0.0.0/8\"]")
            .set("smtp", "min_free_space", "\"1 MiB\"")
            .set("relay", "next_hop", &format!("{next_hop:?}"))
            .set("relay", "retry_schedule", "[\"1s\"]")
            .set("web", "listen", "\"127.0.0.1:0\"")
            .set("policy", "allow_empty_policy", "true")
    }

    /// Sets `[section] key = value` (`value` is raw TOML, quote strings yourself).
    pub fn set(mut self, section: &str, key: &str, value: &str) -> Config {
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), vec![]));
                self.sections.len() - 1
            }
        };
        let keys = &mut self.sections[idx].1;
        keys.retain(|(k, _)| k != key);
        keys.push((key.to_string(), value.to_string()));
        self
    }

    pub fn smtp(self, key: &str, value: &str) -> Config {
        self.set("smtp", key, value)
    }

    pub fn relay(self, key: &str, value: &str) -> Config {
        self.set("relay", key, value)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (section, keys) in &self.sections {
            out.push_str(&format!("[{section}]\n"));
            for (k, v) in keys {
                out.push_str(&format!("{k} = {v}\n"));
            }
            out.push('\n');
        }
        out
    }
}

/// A running (or stopped) `sluis serve` with its own temporary directory.
pub struct Sluis {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    /// Where the portal listens (from `web listening on`).
    pub web_addr: Option<SocketAddr>,
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    /// Lines printed on stdout after `ready` by the current process.
    stdout: Option<Receiver<String>>,
    /// The start-up banner of the current process (stdout up to `ready`).
    pub banner: Vec<String>,
}

impl Sluis {
    /// Writes the config (data dir inside a fresh temp dir) and starts sluis.
    pub fn start(config: Config) -> Sluis {
        Sluis::start_with_env(config, &[])
    }

    pub fn start_with_env(config: Config, env: &[(&str, &str)]) -> Sluis {
        let mut s = Sluis::prepare(config);
        s.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        s.spawn();
        s
    }

    /// Writes the config but does not start anything.
    pub fn prepare(config: Config) -> Sluis {
        let dir = tempfile::Builder::new()
            .prefix("sluis-test-")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().join("data");
        let config = config.set(
            "storage",
            "data_dir",
            &format!("{:?}", data_dir.to_str().unwrap()),
        );
        let config_path = dir.path().join("sluis.toml");
        fs::write(&config_path, config.render()).unwrap();
        Sluis {
            dir,
            config_path,
            data_dir,
            addr: "127.0.0.1:0".parse().unwrap(),
            web_addr: None,
            env: vec![],
            child: None,
            stdout: None,
            banner: vec![],
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("sluis.log")
    }

    /// sluis's stderr so far (all runs).
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Starts `sluis serve` on the existing config and waits for `ready`.
    pub fn spawn(&mut self) {
        assert!(self.child.is_none(), "sluis is already running");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let mut cmd = Command::new(sluis_bin());
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sluis serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        let mut addr = None;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.trim().strip_prefix("smtp listening on ") {
                        addr = Some(
                            rest.trim()
                                .parse::<SocketAddr>()
                                .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}")),
                        );
                    } else if let Some(rest) = line.trim().strip_prefix("web listening on ") {
                        let a = rest
                            .trim()
                            .split_once("://")
                            .map_or(rest.trim(), |(_, a)| a);
                        self.web_addr = a.parse().ok();
                    } else if line.trim() == "ready" {
                        break;
                    }
                    seen.push(line);
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.as_mut().unwrap().try_wait().ok().flatten();
                    self.kill();
                    panic!(
                        "sluis did not print `ready` (exit: {status:?}); stdout: {seen:?}\nstderr:\n{}",
                        self.log()
                    );
                }
            }
        }
        self.addr = addr.unwrap_or_else(|| {
            panic!("no `smtp listening on` line before `ready`; stdout: {seen:?}")
        });
        self.banner = seen;
        self.stdout = Some(rx);
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("sluis not running").id() as i32
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Sends a signal to the running process.
    pub fn signal(&self, sig: i32) {
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// SIGTERM, then waits (up to `timeout`) for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout)
    }

    /// Waits (up to `timeout`) for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("sluis not running");
        let status = poll(timeout, "sluis to exit", || child.try_wait().unwrap());
        self.child = None;
        self.stdout = None;
        status
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.stdout = None;
    }

    /// SIGKILL then start again on the same config and data dir.
    pub fn crash_restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn connect(&self) -> Smtp {
        Smtp::connect(self.addr)
    }

    /// Connected, greeted (220 checked) and EHLO done.
    pub fn session(&self) -> Smtp {
        Smtp::connect_ehlo(self.addr)
    }

    /// Runs `sluis ARGS... --config FILE` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        let out = Command::new(sluis_bin())
            .args(args)
            .arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run sluis");
        eprintln!(
            "sluis {args:?} -> {:?}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Drop for Sluis {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("---- sluis stderr ----\n{}", self.log());
        }
    }
}

/// Combined stdout and stderr of a command.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A simple test message with CRLF line endings.
pub fn message(subject: &str, body: &str) -> Vec<u8> {
    format!(
        "From: Sender <sender@org.test>\r\nTo: rcpt@dest.test\r\nSubject: {subject}\r\n\
         Message-ID: <{subject}@org.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
    .into_bytes()
}

/// Splits what a next hop received into (Received header, optional sluis marker, rest).
/// Panics unless the data starts with a (possibly folded) `Received: from ` field.
pub fn split_trace(data: &[u8]) -> (String, Option<String>, &[u8]) {
    fn field_end(data: &[u8]) -> usize {
        let mut i = 0;
        loop {
            let nl = data[i..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|p| i + p + 1)
                .unwrap_or_else(|| panic!("unterminated header field"));
            if matches!(data.get(nl), Some(b' ') | Some(b'\t')) {
                i = nl;
            } else {
                return nl;
            }
        }
    }
    assert!(
        data.starts_with(b"Received: from "),
        "next hop data does not start with `Received: from `: {:?}",
        String::from_utf8_lossy(&data[..data.len().min(200)])
    );
    let end = field_end(data);
    let received = String::from_utf8_lossy(&data[..end]).into_owned();
    assert!(
        received.ends_with("\r\n"),
        "Received field not CRLF-terminated"
    );
    let rest = &data[end..];
    if rest
        .get(..18)
        .is_some_and(|h| h.eq_ignore_ascii_case(b"X-Sluis-Processed:"))
    {
        let end2 = field_end(rest);
        let marker = String::from_utf8_lossy(&rest[..end2]).into_owned();
        (received, Some(marker), &rest[end2..])
    } else {
        (received, None, rest)
    }
}

/// Asserts the next hop got exactly `original` after sluis's trace fields, and returns
/// the Received field (unfolded, see `unfold`). Every relayed message carries sluis's marker.
pub fn assert_relayed_exactly(arrived: &[u8], original: &[u8]) -> String {
    let (received, marker, rest) = split_trace(arrived);
    if rest != original {
        let at = rest
            .iter()
            .zip(original)
            .position(|(a, b)| a != b)
            .unwrap_or(rest.len().min(original.len()));
        let lo = at.saturating_sub(40);
        panic!(
            "relayed bytes differ from the original at offset {at} (lengths {} vs {}):\n got: {:?}\nwant: {:?}",
            rest.len(),
            original.len(),
            String::from_utf8_lossy(&rest[lo..(at + 40).min(rest.len())]),
            String::from_utf8_lossy(&original[lo..(at + 40).min(original.len())]),
        );
    }
    let m = marker.expect("relayed message without an X-Sluis-Processed marker");
    assert!(m.starts_with("X-Sluis-Processed: v2;"), "marker: {m:?}");
    unfold(&received)
}

/// A header field unfolded, with runs of white space collapsed to one space.
pub fn unfold(field: &str) -> String {
    field.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The header block of a message (up to the first empty line), lossy UTF-8.
pub fn header_block(msg: &[u8]) -> String {
    let end = msg
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(msg.len());
    String::from_utf8_lossy(&msg[..end]).into_owned()
}

/// Occurrences of `needle` in `hay`.
pub fn count(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    count(hay, needle.as_bytes()) > 0
}

/// Runs swaks against sluis; returns its output (stdout+stderr) and success flag.
pub fn swaks(addr: SocketAddr, args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .arg("--server")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run swaks (apt package swaks)");
    let text = output_text(&out);
    (out.status.success(), text)
}

/// Runs python3 with a support script; returns (success, combined output).
pub fn python(script: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("python3")
        .arg(support(script))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run python3");
    (out.status.success(), output_text(&out))
}
