//! Durability and storage: the queue survives restarts and SIGKILL at random moments,
//! nothing in the data dir is plaintext, the master key file is private.

mod common;

use common::*;
use std::collections::HashSet;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const ARRIVAL: Duration = Duration::from_secs(30);

#[test]
fn queued_message_survives_graceful_restart() {
    let cap = Capture::start_deferring();
    let mut sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let tag = unique("restart");
    let msg = message(&tag, "survive a restart");
    s.send_mail("sender@org.test", &["r@dest.test"], &msg);
    s.expect("QUIT", "221 2.0.0");
    poll(ARRIVAL, "a deferred attempt", || {
        (!cap.rcpt_log().is_empty()).then_some(())
    });
    let status = sluis.terminate(Duration::from_secs(30));
    assert_eq!(status.code(), Some(0));
    sluis.spawn();
    cap.set_defer_all(false);
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_relayed_exactly(&m.data, &msg);
}

#[test]
fn acknowledged_message_survives_sigkill() {
    let cap = Capture::start_deferring();
    let mut sluis = Sluis::start(Config::new(&cap.next_hop()));
    let mut s = sluis.session();
    let tag = unique("killed");
    let msg = message(&tag, "survive SIGKILL right after 250");
    s.send_mail("sender@org.test", &["r@dest.test"], &msg);
    sluis.crash_restart();
    cap.set_defer_all(false);
    let m = cap.wait_for_containing(&tag, ARRIVAL);
    assert_relayed_exactly(&m.data, &msg);
}

fn grep_finds(dir: &std::path::Path, word: &str) -> bool {
    let st = Command::new("grep")
        .args(["-r", "-a", "-F", "-i", "-l", word])
        .arg(dir)
        .status()
        .expect("run grep");
    assert!(st.code() == Some(0) || st.code() == Some(1), "grep: {st:?}");
    st.code() == Some(0)
}

#[test]
fn data_dir_holds_no_plaintext_and_key_is_private() {
    let cap = Capture::start_deferring();
    let mut sluis = Sluis::start(Config::new(&cap.next_hop()));
    let body_word = unique("geheimwoord");
    let subject_word = unique("onderwerp");
    let rcpt = format!("{}@ontvanger.test", unique("rcpt"));
    let sender = format!("{}@afzender.test", unique("from"));
    let msg = format!(
        "From: <{sender}>\r\nTo: <{rcpt}>\r\nSubject: {subject_word}\r\nMessage-ID: <{subject_word}@x.test>\r\n\r\n\
         Het {body_word} staat hier.\r\n"
    );
    let mut s = sluis.session();
    s.send_mail(&sender, &[&rcpt], msg.as_bytes());
    s.expect("QUIT", "221 2.0.0");
    // it was tried and is now sitting in the queue
    poll(ARRIVAL, "a deferred attempt", || {
        cap.rcpt_log().iter().any(|(_, a)| *a == rcpt).then_some(())
    });
    assert!(sluis.data_dir.is_dir());
    for w in [&body_word, &subject_word, &rcpt, &sender] {
        assert!(
            !grep_finds(&sluis.data_dir, w),
            "{w:?} found in plaintext in the data dir"
        );
    }
    // also after a graceful shutdown (everything flushed)
    sluis.terminate(Duration::from_secs(30));
    for w in [&body_word, &subject_word, &rcpt, &sender] {
        assert!(
            !grep_finds(&sluis.data_dir, w),
            "{w:?} found after shutdown"
        );
    }
    let key = sluis.data_dir.join("master.key");
    let mode = std::fs::metadata(&key)
        .unwrap_or_else(|e| panic!("{}: {e}", key.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "master key mode {:o}", mode & 0o777);
    // and the message really was in there
    sluis.spawn();
    cap.set_defer_all(false);
    let m = cap.wait_for_containing(&body_word, ARRIVAL);
    assert_eq!(m.rcpt_tos, [rcpt]);
}

/// Tries to send one message; Ok(true) when acknowledged with 250.
fn try_send(s: &mut Smtp, id: &str, run: &str) -> std::io::Result<bool> {
    let r = s.try_cmd("MAIL FROM:<crash@org.test>")?;
    if !r.starts("250") {
        return Ok(false);
    }
    let r = s.try_cmd("RCPT TO:<sink@dest.test>")?;
    if !r.starts("250") {
        return Ok(false);
    }
    let r = s.try_cmd("DATA")?;
    if !r.starts("354") {
        return Ok(false);
    }
    let body = format!(
        "From: crash@org.test\r\nTo: sink@dest.test\r\nSubject: {run} {id} end\r\n\r\npayload {id}\r\n{}\r\n",
        format!("{}\r\n", "filler ".repeat(10)).repeat(150)
    );
    s.try_send(dot_stuff(body.as_bytes()))?;
    Ok(s.try_reply()?.starts("250 2.0.0"))
}

#[test]
fn every_acknowledged_message_survives_random_sigkills() {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 75;
    let sink = SmtpSink::start();
    let mut sluis = Sluis::start(Config::new(&sink.next_hop()));
    let run = unique("crashrun");
    let addr = Arc::new(Mutex::new(sluis.addr));
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut handles = Vec::new();
    for t in 0..SENDERS {
        let (addr, acked, stop, run) = (addr.clone(), acked.clone(), stop.clone(), run.clone());
        handles.push(thread::spawn(move || {
            let mut todo: Vec<String> = (0..PER_SENDER).map(|n| format!("{t:02}-{n:03}")).collect();
            todo.reverse();
            while !todo.is_empty() && !stop.load(Ordering::Relaxed) {
                let a = *addr.lock().unwrap();
                let Ok(mut s) = Smtp::try_connect(a, Duration::from_secs(10)) else {
                    thread::sleep(Duration::from_millis(50));
                    continue;
                };
                if !s.greeting.starts("220") || s.try_cmd("EHLO crash.test").is_err() {
                    continue;
                }
                for _ in 0..20 {
                    let Some(id) = todo.last().cloned() else {
                        break;
                    };
                    match try_send(&mut s, &id, &run) {
                        Ok(true) => {
                            acked.lock().unwrap().insert(id);
                            todo.pop();
                        }
                        Ok(false) => thread::sleep(Duration::from_millis(20)),
                        Err(_) => break,
                    }
                }
                let _ = s.try_cmd("QUIT");
            }
            todo.len()
        }));
    }
    // kill sluis at random moments while the senders are busy: after random shares
    // (between 10% and 90%) of the messages were acknowledged, plus random jitter
    let mut seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("crash test seed {seed}");
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let total = SENDERS * PER_SENDER;
    let mut thresholds: Vec<usize> = (0..4)
        .map(|_| total / 10 + (next() as usize) % (total * 8 / 10))
        .collect();
    thresholds.sort();
    for (k, threshold) in thresholds.into_iter().enumerate() {
        poll(Duration::from_secs(120), "senders to make progress", || {
            (acked.lock().unwrap().len() >= threshold).then_some(())
        });
        thread::sleep(Duration::from_millis(next() % 40));
        let before = acked.lock().unwrap().len();
        sluis.crash_restart();
        *addr.lock().unwrap() = sluis.addr;
        eprintln!("kill {k} at {before} acknowledged (threshold {threshold})");
    }
    for h in handles {
        while !h.is_finished() {
            assert!(Instant::now() < deadline, "senders did not finish in time");
            thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(h.join().unwrap(), 0, "a sender could not send everything");
    }
    stop.store(true, Ordering::Relaxed);
    let acked = acked.lock().unwrap().clone();
    assert_eq!(acked.len(), SENDERS * PER_SENDER);
    let prefix = format!("Subject: {run} ");
    let wait_deadline = Instant::now() + Duration::from_secs(120);
    let missing = loop {
        let mut seen = HashSet::new();
        for d in sink.dumps() {
            let text = String::from_utf8_lossy(&d);
            for line in text.lines() {
                if let Some(id) = line
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(" end"))
                {
                    seen.insert(id.to_string());
                }
            }
        }
        let mut missing: Vec<String> = acked.difference(&seen).cloned().collect();
        missing.sort();
        if missing.is_empty() || Instant::now() > wait_deadline {
            break missing;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages lost: {missing:?}",
        missing.len(),
        acked.len()
    );
}
