//! Real next hops for sluis on 127.0.0.1: the capturing aiosmtpd server
//! (tests/support/capture_smtp.py), Postfix's smtp-sink, and a tiny MX-answering DNS
//! server (tests/support/dns_mx.py). Every child process is killed on Drop.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::channel;
use std::thread;
use std::time::Duration;

use super::{poll, support};

/// Spawns `python3 SCRIPT ARGS` and waits for its `PORT n` line.
fn spawn_python(script: &str, args: &[&str], log: &Path) -> (Child, u16) {
    let mut child = Command::new("python3")
        .arg(support(script))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(fs::File::create(log).unwrap()))
        .spawn()
        .expect("spawn python3");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = channel();
    thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(line) if line.starts_with("PORT ") => {
            let port = line[5..].trim().parse().unwrap();
            (child, port)
        }
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{script} did not report its port ({other:?}); stderr: {}",
                fs::read_to_string(log).unwrap_or_default()
            );
        }
    }
}

/// One message captured by capture_smtp.py.
#[derive(Debug, Clone)]
pub struct Captured {
    pub name: String,
    pub data: Vec<u8>,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    pub mail_options: Vec<String>,
    /// The session was encrypted with STARTTLS.
    pub tls: bool,
    /// The user the client authenticated as (AUTH), if any.
    pub auth_user: Option<String>,
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

/// Optional capture_smtp.py features; `Default` is the plain server of `Capture::start`.
#[derive(Debug, Clone, Default)]
pub struct CaptureOpts {
    /// Listen on this port instead of an ephemeral one.
    pub port: Option<u16>,
    /// Offer STARTTLS with (certificate, key) and refuse MAIL before it.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Require AUTH (PLAIN/LOGIN) with (user, password) before MAIL.
    pub auth: Option<(String, String)>,
    /// Offer and accept AUTH without TLS too (default: only after STARTTLS).
    pub auth_without_tls: bool,
}

/// The capturing SMTP next hop.
pub struct Capture {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Capture {
    pub fn start() -> Capture {
        Capture::start_with(&CaptureOpts::default())
    }

    pub fn start_with(opts: &CaptureOpts) -> Capture {
        let dir = tempfile::Builder::new()
            .prefix("sluis-capture-")
            .tempdir()
            .unwrap();
        let out = dir.path().join("out");
        fs::create_dir(&out).unwrap();
        let mut args = vec![out.to_str().unwrap().to_string()];
        if let Some(port) = opts.port {
            args.extend(["--port".to_string(), port.to_string()]);
        }
        if let Some((cert, key)) = &opts.tls {
            args.push("--tls".into());
            args.push(cert.to_str().unwrap().into());
            args.push(key.to_str().unwrap().into());
        }
        if let Some((user, pass)) = &opts.auth {
            args.extend(["--auth".to_string(), format!("{user}:{pass}")]);
        }
        if opts.auth_without_tls {
            args.push("--auth-without-tls".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (child, port) = spawn_python("capture_smtp.py", &args, &dir.path().join("capture.log"));
        Capture { child, port, dir }
    }

    /// Starts with every recipient deferred (451) until `set_defer_all(false)`.
    pub fn start_deferring() -> Capture {
        let c = Capture::start();
        c.set_defer_all(true);
        c
    }

    pub fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }

    pub fn next_hop(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn set_defer_all(&self, on: bool) {
        let flag = self.out().join("DEFER_ALL");
        if on {
            fs::write(flag, b"").unwrap();
        } else {
            let _ = fs::remove_file(flag);
        }
    }

    pub fn set_reject_all(&self, on: bool) {
        let flag = self.out().join("REJECT_ALL");
        if on {
            fs::write(flag, b"").unwrap();
        } else {
            let _ = fs::remove_file(flag);
        }
    }

    /// RCPT outcomes so far: (code, address).
    pub fn rcpt_log(&self) -> Vec<(u16, String)> {
        fs::read_to_string(self.out().join("rcpt.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (c, a) = l.split_once(' ')?;
                Some((c.parse().ok()?, a.to_string()))
            })
            .collect()
    }

    /// AUTH lines seen (`AUTH tls=0|1 ARGS`, sent before any check) and credential checks
    /// (`OK USER` / `FAIL USER`), in order.
    pub fn auth_log(&self) -> Vec<String> {
        fs::read_to_string(self.out().join("auth.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// All complete messages so far, in arrival order.
    pub fn messages(&self) -> Vec<Captured> {
        let mut names: Vec<String> = fs::read_dir(self.out())
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|n| {
                let base = n.trim_end_matches(".json").to_string();
                let meta: serde_json::Value =
                    serde_json::from_slice(&fs::read(self.out().join(&n)).unwrap()).unwrap();
                let data = fs::read(self.out().join(format!("{base}.eml"))).unwrap();
                let strings = |v: &serde_json::Value| -> Vec<String> {
                    v.as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|x| x.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default()
                };
                Captured {
                    name: base,
                    data,
                    mail_from: meta["mail_from"].as_str().unwrap_or("").to_string(),
                    rcpt_tos: strings(&meta["rcpt_tos"]),
                    mail_options: strings(&meta["mail_options"]),
                    tls: meta["tls"].as_bool().unwrap_or(false),
                    auth_user: meta["auth_user"].as_str().map(str::to_string),
                }
            })
            .collect()
    }

    /// Waits until at least `n` messages arrived; returns all of them.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Captured> {
        poll(timeout, &format!("{n} message(s) at the next hop"), || {
            let m = self.messages();
            (m.len() >= n).then_some(m)
        })
    }

    /// Waits for a message whose bytes contain `needle`.
    pub fn wait_for_containing(&self, needle: &str, timeout: Duration) -> Captured {
        poll(
            timeout,
            &format!("a message containing {needle:?} at the next hop"),
            || {
                self.messages()
                    .into_iter()
                    .find(|m| super::contains(&m.data, needle))
            },
        )
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Postfix's smtp-sink, dumping each transaction to a file in `dir`.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl SmtpSink {
    pub fn start() -> SmtpSink {
        let dir = tempfile::Builder::new()
            .prefix("sluis-sink-")
            .tempdir()
            .unwrap();
        // smtp-sink drops privileges to `postfix` when run as root.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let root = unsafe { libc::geteuid() } == 0;
        for _attempt in 0..20 {
            let port = super::free_port();
            let mut cmd = Command::new("/usr/sbin/smtp-sink");
            if root {
                cmd.args(["-u", "postfix"]);
            }
            let template = format!("{}/%H%M%S.", dir.path().display());
            let mut child = cmd
                .args(["-4", "-d", &template, &format!("127.0.0.1:{port}"), "100"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn /usr/sbin/smtp-sink (apt package postfix)");
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let ready = poll(Duration::from_secs(10), "smtp-sink to listen", || {
                if let Ok(Some(_)) = child.try_wait() {
                    return Some(false);
                }
                let mut s = TcpStream::connect(addr).ok()?;
                s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
                let mut buf = [0u8; 256];
                let n = s.read(&mut buf).ok()?;
                let _ = s.write_all(b"QUIT\r\n");
                Some(String::from_utf8_lossy(&buf[..n]).contains("smtp-sink"))
            });
            if ready {
                return SmtpSink { child, port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start smtp-sink");
    }

    pub fn next_hop(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Contents of every dump file (one per transaction).
    pub fn dumps(&self) -> Vec<Vec<u8>> {
        fs::read_dir(self.dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            .filter_map(|e| fs::read(e.path()).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// dns_mx.py: MX for each domain -> mx1.DOMAIN -> A 127.0.0.1.
pub struct Dns {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Dns {
    pub fn start(domains: &[&str]) -> Dns {
        let dir = tempfile::Builder::new()
            .prefix("sluis-dns-")
            .tempdir()
            .unwrap();
        let (child, port) = spawn_python("dns_mx.py", domains, &dir.path().join("dns.log"));
        Dns { child, port, dir }
    }

    /// The queries received so far (`QUERY name type` lines).
    pub fn queries(&self) -> String {
        fs::read_to_string(self.dir.path().join("dns.log")).unwrap_or_default()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
