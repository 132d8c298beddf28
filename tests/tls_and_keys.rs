//! Inbound STARTTLS with the admin's own certificate, and the master key from a file of the
//! admin's choosing.

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn configured_certificate_is_the_one_presented() {
    let cap = Capture::start();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=gateway.sluis.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl runs");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let sluis = Sluis::start(
        Config::new(&cap.next_hop())
            .smtp("tls_cert", &format!("{:?}", cert.to_str().unwrap()))
            .smtp("tls_key", &format!("{:?}", key.to_str().unwrap())),
    );
    let out = Command::new("openssl")
        .args(["s_client", "-starttls", "smtp", "-connect"])
        .arg(sluis.addr.to_string())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CN = gateway.sluis.test") || text.contains("CN=gateway.sluis.test"),
        "{text}"
    );
    assert!(
        !sluis.data_dir.join("tls").exists(),
        "no certificate generated when one is configured"
    );
    // And mail still flows over it.
    let tag = unique("owncert");
    let (ok, log) = swaks(
        sluis.addr,
        &[
            "-tls",
            "--from",
            "a@org.test",
            "--to",
            "b@dest.test",
            "--header",
            &format!("Subject: {tag}"),
        ],
    );
    assert!(ok, "{log}");
    cap.wait_for_containing(&tag, Duration::from_secs(30));
}

#[test]
fn master_key_file_elsewhere_is_created_private_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let cap = Capture::start();
    let keys = tempfile::tempdir().unwrap();
    let keyfile = keys.path().join("sluis-master.key");
    let mut sluis = Sluis::start(
        Config::new(&cap.next_hop())
            .relay("next_hop", "\"smtp://127.0.0.1:9\"")
            .set(
                "storage",
                "master_key_file",
                &format!("{:?}", keyfile.to_str().unwrap()),
            ),
    );
    assert!(keyfile.exists());
    assert_eq!(
        keyfile.metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!sluis.data_dir.join("master.key").exists());
    let first = std::fs::read(&keyfile).unwrap();
    // A queued message written with it opens again after a restart.
    let tag = unique("keyfile");
    sluis
        .session()
        .send_mail("a@org.test", &["b@dest.test"], &message(&tag, "x"));
    sluis.terminate(Duration::from_secs(10));
    sluis.spawn();
    assert_eq!(
        std::fs::read(&keyfile).unwrap(),
        first,
        "the key is reused, not replaced"
    );
    let out = sluis.cli(&["queue", "list"]);
    assert!(
        output_text(&out).contains("b@dest.test"),
        "{}",
        output_text(&out)
    );
}
