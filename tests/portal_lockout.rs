//! The portal's sign-in limits against the real binary, tried as an attacker would: a burst of
//! concurrent wrong logins with the right one among them, the lock climbing over rounds and
//! holding across restarts and a quiet hour (time moved with libfaketime, Debian package
//! `faketime`), sessions and pending codes across restarts, and the per-address limit behind
//! a trusted reverse proxy and not.

mod common;

use common::http::{Client, HttpResponse};
use common::portal::*;
use common::protect::*;
use common::*;
use std::thread;
use std::time::Duration;

const PASSWORD: &str = "Paard-Batterij-Nietje";

/// Sends one protected mail to `n` recipients (r0..@extern.test); returns their link paths.
fn links(p: &Portal, n: usize, extra_headers: &str) -> Vec<String> {
    let u = unique("lim");
    let rcpts: Vec<String> = (0..n).map(|i| format!("r{i}@extern.test")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    smtplib_send(
        &p.sluis,
        "arts@org.test",
        &refs,
        &mail(
            &format!(
                "To: {}\r\nSubject: [secure files] {u}\r\n{extra_headers}",
                refs.join(", ")
            ),
            "Tekst",
            &[("a.txt", b"inhoud".to_vec())],
        ),
    );
    rcpts.iter().map(|r| link_path(p, &u, r)).collect()
}

fn login(
    web: std::net::SocketAddr,
    link: &str,
    token: &str,
    secret: &str,
    hdr: &[(&str, &str)],
) -> HttpResponse {
    let mut c = Client::new(web);
    post_login(&mut c, link, token, secret, hdr)
}

fn post_login(
    c: &mut Client,
    link: &str,
    token: &str,
    secret: &str,
    hdr: &[(&str, &str)],
) -> HttpResponse {
    let body = format!("csrf={token}&secret={secret}");
    let origin = format!("http://{}", c.addr);
    let mut h = vec![
        ("Content-Type", "application/x-www-form-urlencoded"),
        ("Origin", origin.as_str()),
    ];
    h.extend_from_slice(hdr);
    c.request("POST", &format!("{link}/login"), &h, body.as_bytes())
}

/// Seconds in Retry-After; panics when it is missing.
fn retry_after(r: &HttpResponse) -> u64 {
    r.header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("{} without Retry-After: {:?}", r.status, r.headers))
}

/// The process's peak resident memory in kB (VmHWM).
fn peak_kb(pid: i32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let l = s.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Every request at once, each on its own connection; the statuses in request order.
fn burst(web: std::net::SocketAddr, reqs: Vec<(String, String, String)>) -> Vec<HttpResponse> {
    let handles: Vec<_> = reqs
        .into_iter()
        .map(|(link, token, secret)| {
            let h = thread::spawn(move || login(web, &link, &token, &secret, &[]));
            // Sent in order, not waited for.
            thread::sleep(Duration::from_millis(2));
            h
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_burst_of_logins_gets_no_more_checks_than_the_allowance() {
    let p = portal(|c| c);
    let links = links(&p, 8, &format!("X-Sluis-Password: {PASSWORD}\r\n"));
    let mut c = Client::new(p.web);
    let tokens: Vec<String> = links.iter().map(|l| csrf(&c.get(l))).collect();
    let before = peak_kb(p.sluis.pid());
    for _ in 0..4 {
        assert_eq!(
            post_login(&mut c, &links[0], &tokens[0], "fout", &[]).status,
            401
        );
    }
    // One try left on link 0: 39 wrong ones at once, and the right one as soon as the first
    // of them is refused, that is once the last try is taken and while it is being checked.
    let (tx, rx) = std::sync::mpsc::channel();
    let web = p.web;
    let wrong: Vec<_> = (0..39)
        .map(|i| {
            let (link, token, tx) = (links[0].clone(), tokens[0].clone(), tx.clone());
            thread::spawn(move || {
                let r = login(web, &link, &token, &format!("fout{i}"), &[]);
                let _ = tx.send(r.status);
                r
            })
        })
        .collect();
    drop(tx);
    let first_refusal = std::time::Instant::now() + ARRIVAL;
    while let Ok(status) =
        rx.recv_timeout(first_refusal.saturating_duration_since(std::time::Instant::now()))
    {
        if status != 401 {
            break;
        }
    }
    let right = login(web, &links[0], &tokens[0], PASSWORD, &[]);
    let mut answers: Vec<HttpResponse> = wrong.into_iter().map(|h| h.join().unwrap()).collect();
    answers.push(right);
    let checked = answers.iter().filter(|r| r.status == 401).count();
    assert!(answers.iter().all(|r| r.status != 303), "nothing signs in");
    assert!(checked <= 1, "{checked} checked with one try left");
    for r in answers.iter().filter(|r| r.status != 401) {
        assert!(matches!(r.status, 429 | 503), "{}", r.status);
        assert!(retry_after(r) >= 1);
    }
    // Many links at once: every attempt would cost ~19 MiB of argon2 if nothing bounded them.
    let reqs: Vec<_> = (1..8)
        .flat_map(|l| (0..5).map(move |i| (l, i)))
        .map(|(l, i)| (links[l].clone(), tokens[l].clone(), format!("fout{i}")))
        .collect();
    let answers = burst(p.web, reqs);
    let checked = answers.iter().filter(|r| r.status == 401).count();
    assert!(
        checked >= 1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    // The address had 30 in its bucket and spent 5 on link 0.
    assert!(checked <= 26, "{checked} checked");
    assert!(answers.iter().all(|r| matches!(r.status, 401 | 429 | 503)));
    // More rounds hold no more memory: checks run on their own threads, which give it back.
    let reqs: Vec<_> = (1..8)
        .flat_map(|l| (0..5).map(move |i| (l, i)))
        .map(|(l, i)| (links[l].clone(), tokens[l].clone(), format!("fout{i}")))
        .collect();
    let _ = burst(p.web, reqs.clone());
    let _ = burst(p.web, reqs);
    // Two checks at once at about 19 MiB each; unbounded, 40 at once took 800 MB.
    let grown = peak_kb(p.sluis.pid()) - before;
    assert!(grown < 80 * 1024, "peak RSS grew by {grown} kB");
    // Still serving.
    assert_eq!(c.get("/healthz").status, 200);
}

/// libfaketime, so that a restarted sluis lives `offset` seconds ahead.
fn ahead(p: &mut Portal, offset: u64) {
    // /usr/lib/<multiarch triplet>/faketime/libfaketime.so.1
    let lib = std::fs::read_dir("/usr/lib")
        .unwrap()
        .map(|e| e.unwrap().path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists())
        .expect("libfaketime (Debian package faketime)");
    let lib = lib.to_str().unwrap().to_string();
    p.sluis.terminate(Duration::from_secs(30));
    p.sluis.env = vec![
        ("LD_PRELOAD".into(), lib),
        ("FAKETIME".into(), format!("+{offset}")),
        ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    p.sluis.spawn();
}

#[test]
fn the_lock_climbs_and_holds_across_restarts_and_a_quiet_hour() {
    let mut p = portal(|c| c);
    let link = links(&p, 1, &format!("X-Sluis-Password: {PASSWORD}\r\n")).remove(0);
    let mut c = Client::new(p.web);
    let token = csrf(&c.get(&link));
    for _ in 0..5 {
        assert_eq!(post_login(&mut c, &link, &token, "fout", &[]).status, 401);
    }
    let r = post_login(&mut c, &link, &token, PASSWORD, &[]);
    assert_eq!(r.status, 429);
    assert!((50..=60).contains(&retry_after(&r)), "{}", retry_after(&r));
    // A crash keeps the lock.
    p.sluis.crash_restart();
    let r = post_login(&mut c, &link, &token, PASSWORD, &[]);
    assert_eq!(r.status, 429, "still locked after a restart");
    // Two minutes on: the first lock is over, and one more failure locks twice as long.
    ahead(&mut p, 120);
    assert_eq!(post_login(&mut c, &link, &token, "fout", &[]).status, 401);
    let r = post_login(&mut c, &link, &token, PASSWORD, &[]);
    assert_eq!(r.status, 429);
    assert!(
        (110..=120).contains(&retry_after(&r)),
        "{}",
        retry_after(&r)
    );
    // A quiet hour after that lock forgives nothing: the next failure locks for four minutes.
    ahead(&mut p, 120 + 120 + 3600);
    assert_eq!(post_login(&mut c, &link, &token, "fout", &[]).status, 401);
    let r = post_login(&mut c, &link, &token, PASSWORD, &[]);
    assert_eq!(r.status, 429);
    assert!(
        (230..=240).contains(&retry_after(&r)),
        "{}",
        retry_after(&r)
    );
    // When that lock is over the right password signs in, and that forgives every failure.
    ahead(&mut p, 120 + 120 + 3600 + 240 + 30);
    assert_eq!(post_login(&mut c, &link, &token, PASSWORD, &[]).status, 303);
    assert_eq!(c.get(&format!("{link}/f/0")).body, b"inhoud");
    let mut other = Client::new(p.web);
    for _ in 0..4 {
        assert_eq!(
            post_login(&mut other, &link, &token, "fout", &[]).status,
            401
        );
    }
}

#[test]
fn a_session_a_pending_code_and_the_resend_count_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.txt");
    let mut p = sms_portal(&outbox);
    let link = send_sms_message(&p, "smsrestart");
    let mut c = Client::new(p.web);
    let token = csrf(&c.get(&link));
    let send = |c: &mut Client| c.post_form(&format!("{link}/send"), &[("csrf", &token)]);
    assert_eq!(send(&mut c).status, 303);
    let code = code_in(last_sms(&outbox)["text"].as_str().unwrap());
    // The code was on its way when sluis died: it still opens the message.
    p.sluis.crash_restart();
    assert_eq!(post_login(&mut c, &link, &token, &code, &[]).status, 303);
    p.sluis.terminate(Duration::from_secs(30));
    p.sluis.spawn();
    let r = c.get(&format!("{link}/f/0"));
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"inhoud"[..]),
        "signed in still"
    );
    // Two more sends, a restart, and the fourth in ten minutes is refused.
    assert_eq!(send(&mut c).status, 303);
    assert_eq!(send(&mut c).status, 303);
    p.sluis.crash_restart();
    let r = send(&mut c);
    assert_eq!(r.status, 429);
    assert!((1..=600).contains(&retry_after(&r)));
}

/// A message to twelve recipients signing in with SMS codes (cheap to check, so the address
/// limit is what is tried); returns the links and one CSRF token per link.
/// 40 wrong codes from one client, in two waves at once (30, then 10: each fits the portal's
/// 34 places), spread so that no link gets the 5 that lock it; attempt `i` carries header
/// `hdr(i)`. The first wave fills the client's bucket, the second is slowed down: 429 with a
/// Retry-After of at most one drain period (30 s). The bucket drains one attempt per 30
/// seconds, so a slow machine may see a few more checked.
fn slowed_down(
    web: std::net::SocketAddr,
    links: &[(String, String)],
    hdr: fn(usize) -> (&'static str, String),
) {
    let wave = |range: std::ops::Range<usize>| -> Vec<HttpResponse> {
        let handles: Vec<_> = range
            .map(|i| {
                let (link, token) = links[i % links.len()].clone();
                thread::spawn(move || {
                    let (name, value) = hdr(i);
                    login(web, &link, &token, "00000000", &[(name, &value)])
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    };
    let first = wave(0..30);
    assert!(
        first.iter().all(|r| r.status == 401),
        "{:?}",
        first.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    let second = wave(30..40);
    let checked = second.iter().filter(|r| r.status == 401).count();
    assert!(checked <= 4, "{checked} of 10 checked past the bucket");
    for r in second.iter().filter(|r| r.status != 401) {
        assert_eq!(r.status, 429);
        assert!((1..=30).contains(&retry_after(r)), "{}", retry_after(r));
    }
}

fn sms_links(p: &Portal) -> Vec<(String, String)> {
    let links = links(p, 12, "X-Sluis-Phone: 06-12345678\r\n");
    let mut c = Client::new(p.web);
    links
        .into_iter()
        .map(|l| {
            let t = csrf(&c.get(&l));
            (l, t)
        })
        .collect()
}

#[test]
fn behind_a_trusted_proxy_each_client_is_slowed_down_on_its_own() {
    let p = portal(|c| c.set("web", "trusted_proxies", "[\"127.0.0.1/32\"]"));
    let links = sms_links(&p);
    // Client A, each attempt with a different forged hop on the left that the proxy passed
    // on: only the hop the proxy saw counts.
    let web = p.web;
    slowed_down(web, &links, |i| {
        ("X-Forwarded-For", format!("10.9.8.{i}, 203.0.113.5"))
    });
    let a = [("X-Forwarded-For", "203.0.113.5")];
    // Others behind the same proxy are not held up by A, by either header.
    let b = [("X-Forwarded-For", "198.51.100.7")];
    assert_eq!(
        login(web, &links[7].0, &links[7].1, "00000000", &b).status,
        401
    );
    let f = [("Forwarded", "for=\"[2001:db8::7]:4711\";proto=https")];
    assert_eq!(
        login(web, &links[6].0, &links[6].1, "00000000", &f).status,
        401
    );
    // A is slowed down, not locked out: within one drain period it gets a try again.
    poll(Duration::from_secs(45), "A to be let through again", || {
        thread::sleep(Duration::from_secs(1));
        let r = login(web, &links[5].0, &links[5].1, "00000000", &a);
        (r.status == 401).then_some(())
    });
}

#[test]
fn an_untrusted_peer_cannot_choose_its_address() {
    // The proxy is elsewhere: the test's connections come from 127.0.0.1, not trusted, and a
    // header naming another client on every attempt changes nothing.
    let p = portal(|c| c.set("web", "trusted_proxies", "[\"192.0.2.0/24\"]"));
    let links = sms_links(&p);
    let web = p.web;
    slowed_down(web, &links, |i| {
        ("X-Forwarded-For", format!("198.51.100.{i}"))
    });
}
