//! Config loading: line numbers, overrides, validation.

use super::*;

fn load(text: &str, env: &[(&str, &str)]) -> Result<(Config, Resolved), ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("sluis.toml");
    std::fs::write(&p, text).unwrap();
    let env: Vec<_> = env
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    Config::load_with_env(Some(&p), &env)
}

#[test]
fn unknown_key_names_line() {
    let e = load("[smtp]\nlisten = \"127.0.0.1:25\"\nlsten = 1\n", &[]).unwrap_err();
    let s = e.to_string();
    assert!(s.contains(":3:"), "{s}");
    assert!(s.contains("lsten"), "{s}");
}

#[test]
fn env_overrides_keep_types() {
    let (c, r) = load(
        "[smtp]\nmax_recipients = 5\n",
        &[
            ("SLUIS_SMTP__LISTEN", "127.0.0.1:0"),
            ("SLUIS_SMTP__MAX_RECIPIENTS", "7"),
            ("SLUIS_RELAY__NEXT_HOP", "smtp://[::1]:2526"),
        ],
    )
    .unwrap();
    assert_eq!(c.smtp.listen, "127.0.0.1:0");
    assert_eq!(c.smtp.max_recipients, 7);
    assert_eq!(
        r.next_hop,
        NextHop::Smtp {
            host: "::1".into(),
            port: 2526
        }
    );
}

#[test]
fn unknown_env_key_is_refused() {
    let e = load("", &[("SLUIS_SMTP__NOPE", "1")]).unwrap_err();
    assert!(e.to_string().contains("SLUIS_SMTP__NOPE"), "{e}");
}

#[test]
fn bad_value_names_line() {
    let e = load("[relay]\n\nnext_hop = \"ftp://x\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains(":3:"), "{e}");
    let e = load("[smtp]\nmax_message_size = \"10 parsecs\"\n", &[]).unwrap_err();
    assert!(e.to_string().contains(":2:"), "{e}");
}

#[test]
fn next_hops() {
    assert_eq!(NextHop::parse("mx").unwrap(), NextHop::Mx);
    assert_eq!(
        NextHop::parse("smtp://mail.example:587").unwrap(),
        NextHop::Smtp {
            host: "mail.example".into(),
            port: 587
        }
    );
    assert!(NextHop::parse("smtp://").is_err());
    assert!(NextHop::parse("maildir:").is_err());
}

#[test]
fn trusted_proxies_are_networks() {
    let (_, r) = load("[web]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n", &[]).unwrap();
    assert_eq!(r.trusted_proxies.len(), 2);
    assert!(r.trusted_proxies[1].contains(&"::1".parse::<IpAddr>().unwrap()));
    let e = load("[web]\ntrusted_proxies = [\"proxy.lan\"]\n", &[]).unwrap_err();
    assert!(e.to_string().contains("proxy.lan"), "{e}");
    assert!(
        load("", &[]).unwrap().1.trusted_proxies.is_empty(),
        "none by default"
    );
}
