//! The `backstop` binary: runs a node, generates its keys, and queries a running node over
//! its gRPC API.

mod bin_governance;
mod bin_keys;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use backstop_api::{ApiState, Metrics, Query};
use backstop_config::{Config, LogFormat};
use backstop_node::bridge::{self, Facts};
use backstop_node::report::{self, Which};
use backstop_node::service::Reload;
use backstop_node::{params, runtime};
use clap::{Args, Parser, Subcommand};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Backstop: a node of a cross-chain shared insurance consortium.
#[derive(Parser, Debug)]
#[command(name = "backstop", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a node.
    Node {
        /// Configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: bin_keys::KeysCommand,
    },
    /// The node's status.
    Status(ApiArgs),
    /// The consortium's nodes and whether they are connected.
    Peers(ApiArgs),
    /// Chains: heads and vault state.
    Chains(ApiArgs),
    /// Members and their solvency.
    Members(ApiArgs),
    /// Incidents.
    Incidents(ApiArgs),
    /// One incident, by id (`0x<member>:<seq>`).
    Incident {
        /// Incident id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Signals.
    Signals(ApiArgs),
    /// Circuit breakers: active ones, then ended ones.
    Breakers {
        /// Only the active ones.
        #[arg(long)]
        active: bool,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// The latest stress test of the pool: coverage and shortfall per scenario, the
    /// members left uncovered, and the risk views refused.
    Stress(ApiArgs),
    /// Governance proposals: each one's status, approvals per vault and digest.
    Proposals(ApiArgs),
    /// Admin calls (they need the node's admin token).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
        /// File holding the admin bearer token (the node's `api.admin_token_file`).
        #[arg(long, global = true)]
        token_file: Option<PathBuf>,
        /// The node's gRPC API.
        #[arg(long, global = true, default_value = "http://127.0.0.1:7070")]
        api: String,
    },
    /// An incident report from one or more nodes (their timelines merged).
    Report {
        /// Incident id (`0x<member>:<seq>`); or give --since.
        id: Option<String>,
        /// Every incident first seen since: unix seconds, or an age (`90m`, `2h`, `7d`).
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        since: Option<String>,
        /// A node's gRPC API (repeat it to merge several nodes' accounts).
        #[arg(long = "api", default_value = "http://127.0.0.1:7070")]
        apis: Vec<String>,
        /// Output format.
        #[arg(long, value_enum, default_value = "md")]
        format: ReportFormat,
    },
    /// Checks a report (JSON) against the chains alone: exit 0 when every figure holds,
    /// 1 naming each mismatch, 2 on bad input or a failed RPC.
    VerifyReport {
        /// The report file (`backstop report <id> --format json`).
        file: PathBuf,
        /// `<chain id>=<url>`, for every chain the report names.
        #[arg(long = "rpc")]
        rpcs: Vec<String>,
    },
    /// Version of the binary and of the vault's signing domain.
    Version,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ReportFormat {
    Md,
    Json,
    Html,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Assert a signal as this node (gossiped; it acts only once p nodes assert it).
    RaiseSignal {
        /// oracle-deviation, oracle-stale, abnormal-outflow, depeg, chain-halt, operator.
        kind: String,
        /// bytes32 subject (member id, oracle subject, chain id as bytes32).
        subject: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Ask the consortium to lift a member freeze (t signatures).
    Unfreeze {
        /// bytes32 member id.
        member: String,
        /// One chain only (default: every chain).
        #[arg(long)]
        chain: Option<u64>,
    },
    /// Ask the consortium to lift a vault pause (t signatures).
    Unpause {
        /// Chain of the vault.
        chain: u64,
    },
    /// Ask the consortium to clear an alert on one vault (t signatures).
    ClearAlert {
        /// Chain of the vault.
        chain: u64,
        /// bytes32 alert subject.
        subject: String,
    },
    /// Propose a governance change; nothing is signed until operators approve it.
    Propose {
        #[command(subcommand)]
        change: bin_governance::ProposeCommand,
        /// One chain's vault only (default: every vault).
        #[arg(long)]
        chain: Option<u64>,
    },
    /// Approve a governance proposal by its digest (`backstop proposals` shows both):
    /// this node then signs it on every target vault.
    Approve {
        /// bytes32 proposal id.
        id: String,
        /// bytes32 proposal digest.
        digest: String,
    },
}

#[derive(Args, Debug)]
struct ApiArgs {
    /// The node's gRPC API.
    #[arg(long, default_value = "http://127.0.0.1:7070")]
    api: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::VerifyReport { file, rpcs } => return verify_report(&file, &rpcs),
        Command::Report {
            id,
            since,
            apis,
            format,
        } => make_report(id, since, &apis, format),
        Command::Version => {
            println!(
                "backstop {} (vault EIP-712 domain {} v{})",
                env!("CARGO_PKG_VERSION"),
                backstop_contracts::DOMAIN_NAME,
                backstop_contracts::DOMAIN_VERSION
            );
            Ok(())
        }
        Command::Keys { command } => bin_keys::run(command),
        Command::Node { config } => run_node(&config),
        Command::Status(a) => query(Query::Status, a),
        Command::Peers(a) => query(Query::Peers, a),
        Command::Chains(a) => query(Query::Chains, a),
        Command::Members(a) => query(Query::Members, a),
        Command::Incidents(a) => query(Query::Incidents, a),
        Command::Incident { id, api } => query(Query::Incident(id), api),
        Command::Signals(a) => query(Query::Signals, a),
        Command::Stress(a) => query(Query::Stress, a),
        Command::Proposals(a) => query(Query::Proposals, a),
        Command::Admin {
            command,
            token_file,
            api,
        } => admin(command, token_file, &api),
        Command::Breakers { active, api } => query(
            Query::Breakers {
                active_only: active,
            },
            api,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("backstop: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime_builder() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn query(q: Query, args: ApiArgs) -> anyhow::Result<()> {
    let rt = runtime_builder()?;
    let out = rt.block_on(backstop_api::client::query(&args.api, &q, args.json))?;
    println!("{out}");
    Ok(())
}

fn make_report(
    id: Option<String>,
    since: Option<String>,
    apis: &[String],
    format: ReportFormat,
) -> anyhow::Result<()> {
    let which = match (id, since) {
        (Some(id), _) => Which::Incident(id.parse()?),
        (None, Some(since)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            Which::Since(report::parse_since(&since, now)?)
        }
        (None, None) => anyhow::bail!("give an incident id or --since"),
    };
    let rt = runtime_builder()?;
    let reports = rt.block_on(report::from_nodes(apis, &which))?;
    let format = match format {
        ReportFormat::Md => report::Format::Markdown,
        ReportFormat::Json => report::Format::Json,
        ReportFormat::Html => report::Format::Html,
    };
    println!("{}", report::render(&reports, format)?);
    Ok(())
}

/// Exit 0: verified; 1: mismatches; 2: bad input or a failed RPC.
fn verify_report(file: &std::path::Path, rpcs: &[String]) -> ExitCode {
    let checked = report::read(file)
        .map_err(anyhow::Error::from)
        .and_then(|r| Ok((r, report::parse_rpcs(rpcs)?)))
        .and_then(|(r, rpcs)| {
            let rt = runtime_builder()?;
            Ok(rt.block_on(report::verify(&r, &rpcs))?)
        });
    match checked {
        Ok(v) if v.mismatches.is_empty() => {
            println!("verified: {} figures match the chains", v.checked);
            ExitCode::SUCCESS
        }
        Ok(v) => {
            for m in &v.mismatches {
                println!("mismatch: {m}");
            }
            println!(
                "{} of {} figures do not match the chains",
                v.mismatches.len(),
                v.checked
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("backstop: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn admin(command: AdminCommand, token_file: Option<PathBuf>, api: &str) -> anyhow::Result<()> {
    use backstop_api::AdminRequest;
    use backstop_api::model::parse_bytes32;
    let token = match (token_file, std::env::var("BACKSTOP_ADMIN_TOKEN")) {
        (Some(path), _) => std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .trim()
            .to_owned(),
        (None, Ok(token)) => token.trim().to_owned(),
        (None, Err(_)) => anyhow::bail!("give --token-file or set BACKSTOP_ADMIN_TOKEN"),
    };
    let request = match command {
        AdminCommand::RaiseSignal {
            kind,
            subject,
            reason,
        } => AdminRequest::RaiseSignal {
            kind: kind.parse()?,
            subject: parse_bytes32("subject", &subject)?,
            reason,
        },
        AdminCommand::Unfreeze { member, chain } => AdminRequest::Unfreeze {
            chain_id: chain,
            member: parse_bytes32("member", &member)?,
        },
        AdminCommand::Unpause { chain } => AdminRequest::Unpause { chain_id: chain },
        AdminCommand::ClearAlert { chain, subject } => AdminRequest::ClearAlert {
            chain_id: chain,
            subject: parse_bytes32("subject", &subject)?,
        },
        AdminCommand::Propose { change, chain } => AdminRequest::Propose {
            chain_id: chain,
            change: change.change()?,
        },
        AdminCommand::Approve { id, digest } => AdminRequest::Approve {
            id: parse_bytes32("id", &id)?,
            digest: parse_bytes32("digest", &digest)?,
        },
    };
    let rt = runtime_builder()?;
    let out = rt.block_on(backstop_api::client::admin(api, &token, &request))?;
    println!("{out}");
    Ok(())
}

fn init_logs(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .context("log filter")?;
    // Colours only on a terminal: a log file or journald gets plain lines.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let r = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    r.map_err(|e| anyhow::anyhow!("logging: {e}"))
}

fn run_node(path: &std::path::Path) -> anyhow::Result<()> {
    let config = Config::load(path)?;
    init_logs(config.node().log_format, &config.node().log_filter)?;
    let keys = config.load_keys()?;
    let params = params::params(&config, &keys)?;
    let facts = Facts::of(&params);
    let rt = runtime_builder()?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            info!("signal received; shutting down");
            let _ = stop_tx.send(true);
        });
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        tokio::spawn(reload_on_sighup(
            path.to_path_buf(),
            config.clone(),
            reload_tx,
        ));
        let info = backstop_api::model::NodeInfo {
            node_name: params.name.clone(),
            peer_id: keys.peer_id().to_string(),
            guardian_address: keys.signer().address().to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            n: config.nodes().len() as u32,
            t: config.threshold() as u32,
            p: config.pause_threshold() as u32,
        };
        let api = ApiState::new(info);
        let metrics = Arc::new(Metrics::new());
        let api_listener = match params.api_listen {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding the API on {a}"))?,
            ),
            None => None,
        };
        let metrics_listener = match params.metrics_listen {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .with_context(|| format!("binding metrics on {a}"))?,
            ),
            None => None,
        };
        let token = params.admin_token.clone();
        let shutdown = stop_rx.clone();
        let serve =
            move |obs: runtime::Observers,
                  tasks: &mut tokio::task::JoinSet<(String, Result<(), String>)>| {
                let (admin_tx, admin_rx) = backstop_api::admin::channel(16);
                let s = shutdown.clone();
                tasks.spawn(
                    bridge::run(obs, facts, api.clone(), metrics.clone(), admin_rx, s)
                        .then_named("operator bridge"),
                );
                if let Some(l) = api_listener {
                    let mut s = shutdown.clone();
                    let api = api.clone();
                    tasks.spawn(async move {
                        let r = backstop_api::serve(l, api, admin_tx, token, async move {
                            let _ = s.changed().await;
                        })
                        .await
                        .map_err(|e| e.to_string());
                        ("gRPC API".to_string(), r)
                    });
                }
                if let Some(l) = metrics_listener {
                    let mut s = shutdown.clone();
                    tasks.spawn(async move {
                        let r = backstop_api::serve_metrics(l, metrics, api, async move {
                            let _ = s.changed().await;
                        })
                        .await
                        .map_err(|e| e.to_string());
                        ("metrics".to_string(), r)
                    });
                }
            };
        match runtime::run(params, reload_rx, stop_rx, serve).await {
            Ok(()) => Ok(()),
            Err(e) => {
                error!(error = %e, "node stopped");
                Err(e.into())
            }
        }
    })
}

trait ThenNamed: std::future::Future<Output = ()> + Sized {
    fn then_named(
        self,
        name: &'static str,
    ) -> impl std::future::Future<Output = (String, Result<(), String>)> {
        async move {
            self.await;
            (name.to_string(), Ok(()))
        }
    }
}

impl<F: std::future::Future<Output = ()>> ThenNamed for F {}

/// On every SIGHUP: reads the configuration file again and hands the core its chains' RPC
/// URLs, the other nodes' addresses and its guardian key (taken if it holds this node's
/// guardian on the vaults); names what else changed and needs a restart. A file that does
/// not load is reported and changes nothing.
async fn reload_on_sighup(
    path: std::path::PathBuf,
    mut running: Config,
    reloads: tokio::sync::mpsc::Sender<Reload>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => {
                warn!(error = %e, "no SIGHUP handler: the configuration is not reloaded");
                return;
            }
        };
        while hangups.recv().await.is_some() {
            info!(file = %path.display(), "SIGHUP: reloading the configuration");
            // Opening a token or decrypting a keystore blocks: off the runtime's threads.
            let file = path.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                Config::load(&file).and_then(|c| c.load_keys().map(|k| (c, k)))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()));
            let reloaded = loaded.and_then(|(c, k)| {
                let p = params::params(&c, &k).map_err(|e| e.to_string())?;
                let peers = runtime::peer_addrs(&p).map_err(|e| e.to_string())?;
                Ok((c, k, peers))
            });
            let (config, keys, peers) = match reloaded {
                Ok(x) => x,
                Err(e) => {
                    error!(error = %e, "reload refused; the node runs on as it was");
                    continue;
                }
            };
            let restart = running.restart_needed(&config);
            if !restart.is_empty() {
                warn!(sections = ?restart, "changed in the file; taken at the next restart");
            }
            let reload = Reload {
                signer: keys.signer().clone(),
                rpc_urls: config
                    .chains()
                    .iter()
                    .map(|c| (c.chain_id, c.rpc_url_strings()))
                    .collect(),
                peers,
            };
            if reloads.send(reload).await.is_err() {
                return;
            }
            running = config;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, running, reloads);
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut i), Ok(mut t)) => {
                tokio::select! {
                    _ = i.recv() => {}
                    _ = t.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
