//! `/metrics` after a scripted day, parsed by the reference OpenMetrics parser, and the
//! liveness and readiness probes, against the real binary.

mod common;

use common::http::Client;
use common::portal::*;
use common::protect::*;
use common::*;
use std::collections::HashMap;
use std::time::Duration;

/// Every sample on /metrics, as parsed by prometheus_client (Python): "name{k=v,...}" → value.
fn scrape(p: &Portal) -> HashMap<String, f64> {
    let r = Client::new(p.web).get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .starts_with("application/openmetrics-text"),
        "{}",
        r.header("content-type")
    );
    let path = p.sluis.dir.path().join("metrics.txt");
    std::fs::write(&path, r.text()).unwrap();
    let (ok, out) = python("metrics_parse.py", &[path.to_str().unwrap()]);
    assert!(ok, "the exposition does not parse: {out}\n{}", r.text());
    serde_json::from_str(out.trim()).expect("json from the parser")
}

fn val(m: &HashMap<String, f64>, key: &str) -> f64 {
    *m.get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {m:#?}"))
}

fn delta(a: &HashMap<String, f64>, b: &HashMap<String, f64>, key: &str) -> f64 {
    val(b, key) - a.get(key).copied().unwrap_or(0.0)
}

#[test]
fn metrics_count_a_scripted_day() {
    let p = portal(|c| c);
    let before = scrape(&p);
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        val(&before, &format!("sluis_build_info{{version={version}}}")),
        1.0
    );

    let u = unique("obs");
    // Clear, notify (files going out unprotected), protected, and one refused at MAIL FROM.
    let clear = message(&format!("Agenda {u}"), "Tot morgen.");
    smtplib_send(&p.sluis, "arts@org.test", &["kees@extern.test"], &clear);
    let notify = mail(
        &format!("To: jan@extern.test\r\nSubject: Notulen {u}\r\n"),
        "Zie bijlage.",
        &[("notulen.txt", b"vergadering".to_vec())],
    );
    smtplib_send(&p.sluis, "arts@org.test", &["jan@extern.test"], &notify);
    let protected = html_mail(
        &format!("To: piet@extern.test\r\nSubject: [beveiligd] {u}\r\n"),
        &[("uitslag.pdf", b"%PDF-1.4 uitslag".to_vec())],
    );
    smtplib_send(&p.sluis, "arts@org.test", &["piet@extern.test"], &protected);
    let mut s = p.sluis.session();
    let r = s
        .try_cmd("MAIL FROM:<arts@org.test> SIZE=999999999999")
        .unwrap();
    assert!(r.starts("552"), "{r:?}");
    drop(s);

    // The recipient: a wrong password, then the right one, a view and a download.
    let link = link_path(&p, &u, "piet@extern.test");
    let mut c = Client::new(p.web);
    c.origin = Some(format!("http://{}", p.web));
    let token = csrf(&c.get(&link));
    let wrong = [("csrf", token.as_str()), ("secret", "raden")];
    assert_eq!(c.post_form(&format!("{link}/login"), &wrong).status, 401);
    assert_eq!(
        c.post_form(&format!("{link}/send"), &[("csrf", &token)])
            .status,
        303
    );
    let pw = password_from_mail(&p, "piet@extern.test", 0);
    let right = [("csrf", token.as_str()), ("secret", pw.as_str())];
    assert_eq!(c.post_form(&format!("{link}/login"), &right).status, 303);
    assert_eq!(c.get(&link).status, 200);
    let f = c.get(&format!("{link}/f/0"));
    assert_eq!(f.status, 200);
    poll(ARRIVAL, "the clear and the notified mail", || {
        let m = p.cap.messages();
        let n = m.iter().filter(|m| m.text().contains(&u)).count();
        (n >= 3).then_some(())
    });

    let after = scrape(&p);
    let d = |k: &str| delta(&before, &after, k);
    assert_eq!(
        d("sluis_messages_total{protection=none,verdict=deliver}"),
        1.0
    );
    assert_eq!(
        d("sluis_messages_total{protection=none,verdict=notify}"),
        1.0
    );
    let protect: f64 = ["public_files", "secure_files", "secure_message"]
        .iter()
        .map(|p| {
            d(&format!(
                "sluis_messages_total{{protection={p},verdict=protect}}"
            ))
        })
        .sum();
    assert_eq!(protect, 1.0);
    assert_eq!(d("sluis_portal_events_total{event=signin_failure}"), 1.0);
    assert_eq!(d("sluis_portal_events_total{event=view}"), 1.0);
    assert_eq!(d("sluis_portal_events_total{event=download}"), 1.0);
    assert_eq!(d("sluis_portal_events_total{event=lockout}"), 0.0);
    // Four SMTP clients; the only refusal is the oversized MAIL FROM.
    assert_eq!(d("sluis_smtp_sessions_total{}"), 4.0);
    assert_eq!(d("sluis_smtp_replies_total{class=5xx}"), 1.0);
    assert_eq!(d("sluis_smtp_replies_total{class=4xx}"), 0.0);
    assert!(d("sluis_smtp_replies_total{class=2xx}") >= 4.0 * 5.0);
    assert!(d("sluis_relay_attempts_total{result=delivered}") >= 3.0);
    assert_eq!(d("sluis_relay_attempts_total{result=failed}"), 0.0);
    assert!(d("sluis_inspection_duration_seconds_count{}") >= 3.0);
    assert_eq!(d("sluis_sealing_duration_seconds_count{}"), 1.0);
    assert!(after.contains_key("sluis_queue_messages{}"));
    assert!(
        after.keys().all(|k| !k.contains('@')),
        "no label carries an address"
    );
    // Through a reverse proxy the public would see them: not there.
    let proxied = Client::new(p.web).request(
        "GET",
        "/metrics",
        &[("X-Forwarded-For", "203.0.113.9")],
        b"",
    );
    assert_eq!(proxied.status, 404);
}

/// Live stays 200; ready turns 503 with a reason while a folder of the data directory cannot
/// be written (a file where the spool folder was: root is refused too), 200 once it is back.
#[test]
fn readiness_follows_the_data_directory() {
    let p = portal(|c| c);
    let mut c = Client::new(p.web);
    assert_eq!(c.get("/healthz").status, 200);
    assert_eq!(c.get("/healthz/live").status, 200);
    assert_eq!(c.get("/healthz/ready").status, 200);
    let spool = p.sluis.data_dir.join("spool");
    let aside = p.sluis.data_dir.join("spool.aside");
    std::fs::rename(&spool, &aside).unwrap();
    std::fs::write(&spool, b"not a folder").unwrap();
    let r = c.get("/healthz/ready");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("spool"), "{}", r.text());
    assert_eq!(c.get("/healthz/live").status, 200);
    assert_eq!(c.get("/healthz").status, 200);
    std::fs::remove_file(&spool).unwrap();
    std::fs::rename(&aside, &spool).unwrap();
    poll(Duration::from_secs(10), "ready again", || {
        (Client::new(p.web).get("/healthz/ready").status == 200).then_some(())
    });
    // Without the master key file or the policy folder a restart could not come back.
    for (what, path) in [
        ("keys", p.sluis.data_dir.join("master.key")),
        ("policies", p.sluis.dir.path().join("policies")),
    ] {
        let aside = path.with_extension("aside");
        std::fs::rename(&path, &aside).unwrap();
        let r = c.get("/healthz/ready");
        assert_eq!(r.status, 503, "{what}");
        assert!(r.text().contains(what), "{}", r.text());
        std::fs::rename(&aside, &path).unwrap();
        assert_eq!(c.get("/healthz/ready").status, 200, "{what} back");
    }
}

/// A disk with less free space than `[smtp] min_free_space` is not ready.
#[test]
fn readiness_fails_below_min_free_space() {
    let p = portal(|c| c.smtp("min_free_space", "\"1000 TiB\""));
    let r = Client::new(p.web).get("/healthz/ready");
    assert_eq!(r.status, 503);
    assert!(r.text().contains("min_free_space"), "{}", r.text());
}

/// SMS handed to the outbox, one that cannot be written, and a lockout after wrong codes.
#[test]
fn metrics_count_sms_and_lockouts() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("sms.txt");
    let ob = outbox.to_str().unwrap().to_string();
    let p = portal(|c| {
        c.set("sms", "provider", "\"outbox\"")
            .set("sms", "path", &format!("{ob:?}"))
    });
    let before = scrape(&p);
    let u = unique("obssms");
    let msg = mail(
        &format!(
            "To: piet@extern.test\r\nSubject: [secure] [sms] {u}\r\n\
             X-Sluis-Phone: piet@extern.test=06-12345678\r\n"
        ),
        "Tekst",
        &[("a.txt", b"inhoud".to_vec())],
    );
    smtplib_send(&p.sluis, "arts@org.test", &["piet@extern.test"], &msg);
    let link = link_path(&p, &u, "piet@extern.test");
    let mut c = Client::new(p.web);
    let token = csrf(&c.get(&link));
    let send = format!("{link}/send");
    assert_eq!(c.post_form(&send, &[("csrf", &token)]).status, 303);
    // A folder where the outbox file was: the next text cannot be written (root included).
    std::fs::remove_file(&outbox).unwrap();
    std::fs::create_dir(&outbox).unwrap();
    c.post_form(&send, &[("csrf", &token)]);
    let mut failures = 0.0;
    let mut status = 0;
    for _ in 0..10 {
        let wrong = [("csrf", token.as_str()), ("secret", "00000000")];
        status = c.post_form(&format!("{link}/login"), &wrong).status;
        if status != 401 {
            break;
        }
        failures += 1.0;
    }
    assert_eq!(status, 429, "locked out after {failures} wrong codes");
    let after = scrape(&p);
    let d = |k: &str| delta(&before, &after, k);
    assert_eq!(d("sluis_sms_total{result=sent}"), 1.0);
    assert_eq!(d("sluis_sms_total{result=failed}"), 1.0);
    assert_eq!(
        d("sluis_portal_events_total{event=signin_failure}"),
        failures
    );
    assert_eq!(d("sluis_portal_events_total{event=lockout}"), 1.0);
}
