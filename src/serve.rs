//! `sluis serve`: builds every part from the config, runs them, and shuts down cleanly.

use crate::config::{BeforeReply, Config, NextHop, Resolved};
use crate::marker::Marker;
use crate::pipeline::Pipeline;
use crate::policy::Policy;
use crate::policy::watch::PolicyHandle;
use crate::protect::Protector;
use crate::queue::QueueStore;
use crate::relay::Relay;
use crate::seal::Keyring;
use crate::smtp::{self, Shared};
use anyhow::{Context, Result};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};

/// The master keyring as the config says: an environment variable, a file, or the data dir.
pub fn keyring(cfg: &Config) -> Result<Keyring> {
    if let Some(var) = &cfg.storage.master_key_env {
        return Ok(Keyring::from_env(var)?);
    }
    Ok(Keyring::load_or_create(
        &key_file(cfg).map_err(anyhow::Error::msg)?,
    )?)
}

/// The master key file; an error when the key comes from an environment variable (one key,
/// nothing to append a new one to).
pub fn key_file(cfg: &Config) -> std::result::Result<std::path::PathBuf, String> {
    if let Some(var) = &cfg.storage.master_key_env {
        return Err(format!(
            "the master key comes from the environment variable {var}: move it to a key file \
             ([storage] master_key_file, lines 'ID HEXKEY') to rotate it"
        ));
    }
    Ok(cfg
        .storage
        .master_key_file
        .clone()
        .unwrap_or_else(|| cfg.storage.data_dir.join("master.key")))
}

/// `sluis key rotate` with the server stopped: the same steps on the files directly.
pub fn rotate_offline(cfg: &Config) -> Result<(u32, usize)> {
    let path = key_file(cfg).map_err(anyhow::Error::msg)?;
    let mut ring = Keyring::load_or_create(&path)?;
    let id = ring.rotate(&path)?;
    let vault = crate::store::Store::open_local(&cfg.storage.data_dir, Arc::new(ring))?;
    let n = vault.meta.rewrap_all()?;
    vault.meta.flush()?;
    Ok((id, n))
}

/// The queue for `sluis queue ...`, safe next to a running server (see `QueueStore::open_admin`).
pub fn open_store_admin(cfg: &Config) -> Result<QueueStore> {
    let keys = Arc::new(keyring(cfg)?);
    QueueStore::open_admin(&cfg.storage.data_dir, keys)
        .with_context(|| format!("opening the queue in {}", cfg.storage.data_dir.display()))
}

/// The message store for `sluis message ...` with the server stopped.
pub fn open_vault_admin(cfg: &Config) -> Result<crate::store::Store> {
    let keys = Arc::new(keyring(cfg)?);
    crate::store::Store::open_local(&cfg.storage.data_dir, keys).with_context(|| {
        format!(
            "opening the message store in {}",
            cfg.storage.data_dir.display()
        )
    })
}

pub fn open_store(cfg: &Config) -> Result<QueueStore> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&cfg.storage.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.storage.data_dir.display()))?;
    let keys = Arc::new(keyring(cfg)?);
    QueueStore::open(&cfg.storage.data_dir, keys)
        .with_context(|| format!("opening the queue in {}", cfg.storage.data_dir.display()))
}

pub async fn run(cfg: Config, resolved: Resolved, config_name: &str) -> Result<()> {
    let cfg = Arc::new(cfg);
    // First: without rules nothing is created, bound or relayed (fail closed).
    let policy = Policy::load_checked(&cfg.policy.dir, cfg.policy.allow_empty_policy)?;
    let policy_rules = policy.rules.len();
    // Whether the key file is there before the store opens (and creates it when it is not).
    let key = key_file(&cfg).map(|p| {
        let existed = p.exists();
        (p, existed)
    });
    let store = open_store(&cfg)?;
    // A loop comes back within the upstream's queue lifetime; the relay's own, and a day more,
    // is the bound a marker is believed for.
    let marker = Marker::new(
        store.keys().derive("x-sluis-processed"),
        cfg.relay.max_queue_lifetime.get() + std::time::Duration::from_secs(86_400),
    );
    let tls_files = smtp::tls::ensure_files(
        cfg.smtp.tls_cert.as_deref(),
        cfg.smtp.tls_key.as_deref(),
        &cfg.storage.data_dir,
        &cfg.smtp.hostname,
    )?;
    let tls = smtp::tls::server_config(&tls_files)?;

    let listener = TcpListener::bind(&cfg.smtp.listen)
        .await
        .with_context(|| format!("binding SMTP listener {}", cfg.smtp.listen))?;
    let addr = listener.local_addr()?;

    let policy = PolicyHandle::new(&cfg.policy.dir, policy, cfg.policy.allow_empty_policy);
    // A plain relay (allow_empty_policy) may have no folder at all: nothing to watch.
    if cfg.policy.dir.is_dir()
        && let Err(e) = policy.watch()
    {
        tracing::warn!(error = %e, "cannot watch the policy folder; changes need a restart");
    }
    let pipeline = Arc::new(Pipeline {
        policy,
        internal_domains: cfg.organisation.internal_domains.clone(),
        limits: crate::inspect::Limits::default(),
    });

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (queued_tx, queued_rx) = mpsc::unbounded_channel();
    let vault = crate::store::Store::open_local(&cfg.storage.data_dir, store.keys().clone())
        .with_context(|| {
            format!(
                "opening the message store in {}",
                cfg.storage.data_dir.display()
            )
        })?;
    let dkim = match &cfg.dkim {
        Some(d) => Some(crate::dkim::Signer::load(d)?),
        None => None,
    };
    let mut protector = Protector::new(
        vault.clone(),
        &resolved.public_url,
        &cfg.organisation.name,
        &cfg.organisation.default_language,
        dkim,
    )
    .with_formal_address(cfg.organisation.address_form == crate::config::AddressForm::U);
    // Checksums that a crash kept from being stored are computed first, before new messages.
    match crate::protect::checksums::Checksums::start(vault.clone()) {
        Ok(c) => {
            match c.resume(&vault) {
                Ok(0) => {}
                Ok(n) => tracing::info!(messages = n, "computing file checksums left by a stop"),
                Err(e) => tracing::warn!(error = %e, "cannot list messages without checksums"),
            }
            protector = protector.with_checksums(c);
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot start the checksum helper; files are hashed at once")
        }
    }
    let protector = Arc::new(protector);
    let admit = (cfg.policy.examine_before_reply != BeforeReply::Never).then(|| {
        Arc::new(crate::admit::Admit::new(
            pipeline.clone(),
            protector.clone(),
            store.clone(),
            queued_tx.clone(),
            &cfg.smtp.hostname,
            &cfg.policy,
            marker.clone(),
        ))
    });
    let relay = Arc::new(
        Relay::new(
            store.clone(),
            cfg.clone(),
            &resolved,
            pipeline,
            protector,
            marker.clone(),
        )
        .map_err(anyhow::Error::msg)?,
    );
    tokio::spawn(shredder(
        vault.clone(),
        cfg.storage.shred_interval.get(),
        shutdown_rx.clone(),
    ));
    let relay_task = tokio::spawn(relay.clone().run(queued_rx, shutdown_rx.clone()));
    let control_dir = cfg.storage.data_dir.clone();
    let control_relay = relay.clone();
    let control_store = vault.clone();
    tokio::spawn(async move {
        if let Err(e) = crate::control::serve(&control_dir, control_relay, control_store).await {
            tracing::error!(error = %e, "control socket failed; `sluis queue` works offline only");
        }
    });

    let web_listener = TcpListener::bind(&cfg.web.listen)
        .await
        .with_context(|| format!("binding web listener {}", cfg.web.listen))?;
    let web_addr = web_listener.local_addr()?;
    let web_tls = match (&cfg.web.tls_cert, &cfg.web.tls_key) {
        (Some(cert), Some(key)) => {
            let files = smtp::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                self_signed: false,
                generated: false,
            };
            let mut c = (*smtp::tls::server_config(&files)?).clone();
            c.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(c)))
        }
        _ => None,
    };
    let web = Arc::new(
        crate::web::Web::new(
            vault.clone(),
            store.clone(),
            queued_tx.clone(),
            cfg.clone(),
            &resolved,
        )
        .map_err(anyhow::Error::msg)?,
    );
    let web_task = tokio::spawn(crate::web::serve(
        web_listener,
        web,
        web_tls.clone(),
        shutdown_rx.clone(),
    ));

    let mut shared = Shared::new(
        cfg.clone(),
        resolved.relay_networks.clone(),
        store,
        marker,
        Some(tls),
        queued_tx,
        shutdown_rx,
    );
    shared.admit = admit;
    let shared = Arc::new(shared);
    let smtp_task = tokio::spawn(smtp::run(listener, shared));

    // Handlers first: a signal right after "ready" must already mean a graceful stop.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    describe(
        &cfg,
        &resolved,
        config_name,
        addr,
        &tls_files,
        key.as_ref().map(|(p, existed)| (p.as_path(), !existed)),
    );
    println!(
        "  policies: {} ({policy_rules} rules, reloaded on change)",
        std::fs::canonicalize(&cfg.policy.dir)
            .unwrap_or_else(|_| cfg.policy.dir.clone())
            .display()
    );
    println!(
        "  links in mail: {}/l/... (web portal: [web] listen {})",
        resolved.public_url, cfg.web.listen
    );
    if let Some(d) = &cfg.dkim {
        println!(
            "  DKIM: signing rewritten mail as {} (selector {})",
            d.domain, d.selector
        );
    }
    println!("smtp listening on {addr}");
    println!(
        "web listening on {}://{web_addr}",
        if web_tls.is_some() { "https" } else { "http" }
    );
    println!("ready");

    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tracing::info!("shutting down: no new connections, finishing sessions");
    let _ = shutdown_tx.send(true);
    let _ = smtp_task.await;
    let _ = web_task.await;
    let _ = relay_task.await;
    let _ = std::fs::remove_file(crate::control::socket_path(&cfg.storage.data_dir));
    tracing::info!("stopped");
    Ok(())
}

/// Blob files no message names are removed once this old (and looked for this often).
const UNNAMED_BLOB_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// Crypto-shreds expired protected messages, and finishes blob deletions a failure left, on a
/// fixed interval (and once at start-up); removes blob files no message names at start-up
/// and hourly.
async fn shredder(
    vault: crate::store::Store,
    every: std::time::Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last_sweep: Option<std::time::Instant> = None;
    loop {
        let v = vault.clone();
        let sweep = last_sweep.is_none_or(|t| t.elapsed() >= UNNAMED_BLOB_GRACE);
        if sweep {
            last_sweep = Some(std::time::Instant::now());
        }
        let r = tokio::task::spawn_blocking(move || {
            let now = crate::queue::now();
            let done = v.shred_expired(now)?;
            v.retry_blob_deletions()?;
            if sweep {
                let n = v.sweep_unnamed(UNNAMED_BLOB_GRACE)?;
                if n > 0 {
                    tracing::warn!(
                        removed = n,
                        "removed blob files that no stored message names (left by a crash)"
                    );
                }
            }
            Ok::<_, crate::store::StoreError>(done)
        })
        .await;
        match r {
            Ok(Ok(done)) => {
                for id in done {
                    tracing::info!(message = %id, "expired: crypto-shredded");
                }
            }
            Ok(Err(e)) => tracing::error!(error = %e, "shredding expired messages failed"),
            Err(e) => tracing::error!(error = %e, "shredding task failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

/// The start-up banner: where everything is, what to back up, what is not set yet.
/// `key`: the master key file and whether it was generated now; Err: where it comes from.
fn describe(
    cfg: &Config,
    r: &Resolved,
    name: &str,
    addr: std::net::SocketAddr,
    tls: &smtp::tls::TlsFiles,
    key: std::result::Result<(&Path, bool), &String>,
) {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    println!("sluis {} — config: {name}", env!("CARGO_PKG_VERSION"));
    println!(
        "  data directory: {} (encrypted at rest)",
        abs(&cfg.storage.data_dir).display()
    );
    match (key, &cfg.storage.master_key_env) {
        (Ok((path, generated)), _) => {
            println!(
                "  master key: {}{}",
                abs(path).display(),
                if generated { " (generated now)" } else { "" }
            );
            println!(
                "    back it up, apart from the data directory: without it nothing stored can be read"
            );
        }
        (Err(_), Some(var)) => println!("  master key: from the environment variable {var}"),
        (Err(e), None) => println!("  master key: {e}"),
    }
    let hop = match &r.next_hop {
        NextHop::Maildir(p) => format!("Maildir {} (new mail lands in new/)", abs(p).display()),
        NextHop::Smtp { host, port } => format!("smarthost {host}:{port}"),
        NextHop::Mx => "the recipients' MX hosts".to_string(),
    };
    println!("  next hop: {hop}");
    println!(
        "  STARTTLS certificate: {}{}",
        abs(&tls.cert).display(),
        match (tls.self_signed, tls.generated) {
            (true, true) => " (self-signed, generated now)",
            (true, false) => " (self-signed, made by sluis)",
            _ => "",
        }
    );
    println!(
        "  relay allowed from: {}",
        cfg.smtp.relay_networks.join(", ")
    );
    if cfg.organisation.name == crate::config::OrganisationConfig::default().name {
        println!(
            "  warning: [organisation] name is not set: pages and mail say \"Beveiligd door sluis via sluis\""
        );
    }
    if cfg.organisation.internal_domains.is_empty() {
        println!(
            "  warning: [organisation] internal_domains is empty: every recipient counts as external"
        );
    }
    println!(
        "  try it: swaks --server {} --port {} --from you@example.org --to someone@example.net",
        addr.ip(),
        addr.port()
    );
}
