use anyhow::Result;
use clap::{Parser, Subcommand};
use sluis::config::Config;
use sluis::control;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "sluis", version, about = "Secure-mail gateway")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (the embedded default when no config is given).
    Serve {
        /// Config file (TOML), e.g. /etc/sluis/sluis.toml; without it the embedded default
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate the configuration; names file, line and problem.
    Check {
        /// Config file (TOML), e.g. /etc/sluis/sluis.toml; without it the embedded default
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Show what the policy finds in a message and decides, without sending anything.
    Explain {
        /// The message (RFC 5322, as it would arrive over SMTP).
        message: PathBuf,
        /// Envelope sender (default: the From header).
        #[arg(long)]
        from: Option<String>,
        /// Envelope recipients (default: the To and Cc headers).
        #[arg(long = "to")]
        to: Vec<String>,
        /// Config file (TOML), e.g. /etc/sluis/sluis.toml; without it the embedded default
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Inspect and steer the outbound queue.
    Queue {
        #[command(subcommand)]
        cmd: QueueCmd,
        /// Config file (TOML), e.g. /etc/sluis/sluis.toml; without it the embedded default
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Act on a protected message.
    Message {
        #[command(subcommand)]
        cmd: MessageCmd,
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
    /// Manage the master key.
    Key {
        #[command(subcommand)]
        cmd: KeyCmd,
        /// Config file (TOML), e.g. /etc/sluis/sluis.toml; without it the embedded default
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Add a new master key for everything sealed from now on and re-wrap every stored data
    /// key with it; older keys stay in the key file (remove them afterwards to retire them).
    Rotate,
}

#[derive(Subcommand)]
enum MessageCmd {
    /// Block a message (or one file): its links show the blocked page and open downloads stop.
    Block {
        /// A recipient's link (URL or token) or the message id.
        target: String,
        /// Block only this file (0 is the first).
        #[arg(long)]
        file: Option<u32>,
    },
}

#[derive(Subcommand)]
enum QueueCmd {
    /// List queued messages with per-recipient status.
    List,
    /// Attempt delivery now: one message, or all.
    Retry { id: Option<String> },
    /// Delete a message from the queue without delivering it.
    Remove { id: String },
}

fn main() -> ExitCode {
    sluis::tune_allocator();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluis: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(config: &Option<PathBuf>) -> Result<(Config, sluis::config::Resolved)> {
    Ok(Config::load(config.as_deref())?)
}

fn run(cli: Cli) -> Result<ExitCode> {
    // Inspection runs on blocking threads; parsers of hostile input get room to recurse.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(8 << 20)
        .build()?;
    match cli.cmd {
        Cmd::Serve { config } => {
            let (cfg, resolved) = load(&config)?;
            let name = config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "embedded default".into());
            rt.block_on(sluis::serve::run(cfg, resolved, &name))?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Check { config } => {
            let (cfg, _) = load(&config)?;
            let policy = sluis::policy::Policy::load_checked(
                &cfg.policy.dir,
                cfg.policy.allow_empty_policy,
            )?;
            println!(
                "policies OK: {} ({} files, {} detectors, {} rules)",
                cfg.policy.dir.display(),
                policy.files.len(),
                policy.detectors.len(),
                policy.rules.len()
            );
            let name = config
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "embedded default".into());
            println!("config OK: {name}");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Explain {
            message,
            from,
            to,
            config,
        } => {
            let (cfg, _) = load(&config)?;
            sluis::explain::run(&cfg, &message, from, to)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Key {
            cmd: KeyCmd::Rotate,
            config,
        } => {
            let (cfg, _) = load(&config)?;
            let dir = cfg.storage.data_dir.clone();
            let (id, n) = match rt.block_on(control::ask(&dir, "key-rotate")) {
                Some(a) => {
                    let Some(rest) = a.strip_prefix("ok ") else {
                        eprintln!("sluis: {}", a.trim_start_matches("error "));
                        return Ok(ExitCode::FAILURE);
                    };
                    let mut it = rest.split_whitespace().filter_map(|x| x.parse().ok());
                    (
                        it.next().unwrap_or_default() as u32,
                        it.next().unwrap_or_default(),
                    )
                }
                None => sluis::serve::rotate_offline(&cfg)?,
            };
            println!("new master key {id}; {n} data key(s) re-wrapped with it");
            println!("older keys can now be removed from the key file");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Message {
            cmd: MessageCmd::Block { target, file },
            config,
        } => {
            let (cfg, _) = load(&config)?;
            let dir = cfg.storage.data_dir.clone();
            let line = match file {
                Some(n) => format!("block {target} {n}"),
                None => format!("block {target}"),
            };
            match rt.block_on(control::ask(&dir, &line)) {
                Some(a) if a.starts_with("ok") => {}
                Some(a) => {
                    eprintln!("sluis: {}", a.trim_start_matches("error "));
                    return Ok(ExitCode::FAILURE);
                }
                None => {
                    let store = sluis::serve::open_vault_admin(&cfg)?;
                    control::block(&store, &target, file).map_err(anyhow::Error::msg)?;
                }
            }
            println!("blocked");
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Queue { cmd, config } => {
            let (cfg, _) = load(&config)?;
            let dir = cfg.storage.data_dir.clone();
            let store = sluis::serve::open_store_admin(&cfg)?;
            let online = |c: String| rt.block_on(control::ask(&dir, &c));
            let answer = |a: String| -> Result<ExitCode> {
                match a.strip_prefix("ok ") {
                    Some(n) => {
                        println!("{n} message(s)");
                        Ok(ExitCode::SUCCESS)
                    }
                    None => {
                        eprintln!("sluis: {}", a.trim_start_matches("error "));
                        Ok(ExitCode::FAILURE)
                    }
                }
            };
            match cmd {
                QueueCmd::List => {
                    let rows = control::list(&store).map_err(anyhow::Error::msg)?;
                    for r in &rows {
                        println!("{r}");
                    }
                    println!("{} message(s) in the queue", rows.len());
                    Ok(ExitCode::SUCCESS)
                }
                QueueCmd::Retry { id } => {
                    let cmd = format!("retry {}", id.as_deref().unwrap_or("all"));
                    match online(cmd) {
                        Some(a) => answer(a),
                        None => {
                            let n = control::retry_offline(&store, id.as_deref())
                                .map_err(anyhow::Error::msg)?;
                            println!("{n} message(s) due at the next start");
                            Ok(ExitCode::SUCCESS)
                        }
                    }
                }
                QueueCmd::Remove { id } => match online(format!("remove {id}")) {
                    Some(a) => answer(a),
                    None => {
                        control::remove_offline(&store, &id).map_err(anyhow::Error::msg)?;
                        println!("1 message(s)");
                        Ok(ExitCode::SUCCESS)
                    }
                },
            }
        }
    }
}
