//! Shared fixtures of the API tests: a filled [`ApiState`] and a real server on an
//! ephemeral loopback port.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;

use backstop_api::{
    AdminCommand, ApiState, AttestationView, BreakerEffectView, BreakerKind, BreakerView,
    ChainView, EffectStatus, IncidentPhase, IncidentView, LegStatus, LegView, MemberView, Metrics,
    NodeInfo, PeerView, SignalKind, SignalView, TimelineEntry, VaultView,
};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// The admin token of the test servers.
pub const TOKEN: &str = "s3cret-token";

/// Member ids used in the fixture.
pub fn member_id(n: u8) -> String {
    format!("0x{}", format!("{n:02x}").repeat(32))
}

/// Subject of the contagion breaker of the fixture (chain 31337).
pub fn contagion_subject() -> String {
    format!("0x{}", "c5".repeat(32))
}

/// Breaker ids of the fixture: exploit of member 0x0a (active), contagion on chain 31337
/// (active), oracle 0x0c… (lifted).
pub fn breaker_ids() -> [String; 3] {
    [
        format!("exploit:{}", member_id(0x0a)),
        format!("contagion:{}", contagion_subject()),
        format!("oracle:{}", member_id(0x0c)),
    ]
}

/// An `ApiState` holding two peers, two chains, two members, two incidents, two signals and
/// three breakers (two active), ready.
pub fn filled_state() -> ApiState {
    let api = ApiState::new(NodeInfo {
        node_name: "alpha".into(),
        peer_id: "12D3KooWAlpha".into(),
        guardian_address: format!("0x{}", "a1".repeat(20)),
        version: "0.1.0-test".into(),
        n: 4,
        t: 3,
        p: 2,
    });
    api.set_peers(vec![
        PeerView {
            peer_id: "12D3KooWBeta".into(),
            name: "beta".into(),
            connected: true,
            address: "/ip4/127.0.0.1/tcp/4002".into(),
        },
        PeerView {
            peer_id: "12D3KooWGamma".into(),
            name: "gamma".into(),
            connected: false,
            address: String::new(),
        },
    ]);
    api.set_chains(vec![
        ChainView {
            chain_id: 31337,
            name: "home".into(),
            head_number: 120,
            head_hash: format!("0x{}", "11".repeat(32)),
            head_time: 1_767_225_600,
            confirmed_head: 118,
            halted: false,
            quarantined: false,
            deep_reorgs: 0,
            vault: Some(VaultView {
                address: format!("0x{}", "c1".repeat(20)),
                balance: "1000000000000000000000".into(),
                available_for_payout: "900000000000000000000".into(),
                bucket_available: "500000000000000000000".into(),
                reserve: "100000000000000000000".into(),
                paused: false,
                guardian_set_index: 1,
                threshold: 3,
                pause_threshold: 2,
            }),
        },
        ChainView {
            chain_id: 31338,
            name: "remote".into(),
            head_number: 50,
            head_hash: format!("0x{}", "22".repeat(32)),
            head_time: 1_767_225_000,
            confirmed_head: 48,
            halted: true,
            quarantined: true,
            deep_reorgs: 1,
            vault: None,
        },
    ]);
    api.set_members(vec![
        MemberView {
            id: member_id(0x0a),
            name: "perp-dex".into(),
            home_chain_id: 31337,
            frozen: false,
            next_seq: 2,
            assets: "100".into(),
            liabilities: "350".into(),
            gap: "250".into(),
            cap: "1000".into(),
            deductible: "10".into(),
            // Derived from the breakers below.
            breakers: Vec::new(),
        },
        MemberView {
            id: member_id(0x0b),
            name: "lender".into(),
            home_chain_id: 31338,
            frozen: true,
            next_seq: 0,
            assets: "500".into(),
            liabilities: "400".into(),
            gap: "0".into(),
            cap: "2000".into(),
            deductible: "0".into(),
            breakers: Vec::new(),
        },
    ]);
    api.set_incidents(vec![
        IncidentView {
            member: member_id(0x0a),
            seq: 0,
            phase: IncidentPhase::Closed,
            attempt: 1,
            gap: "120".into(),
            draw_amount: "110".into(),
            uncovered_amount: "0".into(),
            draw_hash: format!("0x{}", "d0".repeat(32)),
            legs: vec![
                LegView {
                    chain_id: 31337,
                    vault: format!("0x{}", "c1".repeat(20)),
                    amount: "60".into(),
                    status: LegStatus::Executed,
                    tx_hash: format!("0x{}", "e1".repeat(32)),
                    block_number: Some(101),
                },
                LegView {
                    chain_id: 31338,
                    vault: format!("0x{}", "c2".repeat(20)),
                    amount: "50".into(),
                    status: LegStatus::Expired,
                    tx_hash: String::new(),
                    block_number: None,
                },
            ],
            attestations: vec![AttestationView {
                signer: format!("0x{}", "a1".repeat(20)),
                digest: format!("0x{}", "d0".repeat(32)),
            }],
            tx_hashes: vec![format!("0x{}", "e1".repeat(32))],
            timeline: vec![
                TimelineEntry {
                    timestamp_ms: 1_767_225_600_000,
                    block_number: Some(100),
                    what: "gap observed".into(),
                },
                TimelineEntry {
                    timestamp_ms: 1_767_225_660_000,
                    block_number: None,
                    what: "closed".into(),
                },
            ],
            ..IncidentView::default()
        },
        IncidentView {
            member: member_id(0x0a),
            seq: 1,
            phase: IncidentPhase::Proposed,
            attempt: 0,
            gap: "250".into(),
            draw_amount: "240".into(),
            uncovered_amount: "0".into(),
            draw_hash: format!("0x{}", "d1".repeat(32)),
            ..IncidentView::default()
        },
    ]);
    api.set_signals(vec![
        SignalView {
            kind: SignalKind::OracleStale,
            subject: format!("0x{}", "5a".repeat(32)),
            raised_by: vec!["alpha".into(), "beta".into()],
            confirmed: true,
            first_seen_ms: 1_767_225_600_000,
            last_seen_ms: 1_767_225_610_000,
            expires_ms: Some(1_767_229_200_000),
            cleared: false,
        },
        SignalView {
            kind: SignalKind::Operator,
            subject: format!("0x{}", "5b".repeat(32)),
            raised_by: vec!["gamma".into()],
            confirmed: false,
            first_seen_ms: 1_767_225_000_000,
            last_seen_ms: 1_767_225_000_000,
            expires_ms: None,
            cleared: true,
        },
    ]);
    let [exploit, contagion, oracle] = breaker_ids();
    api.set_breakers(vec![
        BreakerView {
            id: exploit,
            kind: BreakerKind::Exploit,
            subject: member_id(0x0a),
            cause: "outflow of 35% within 50 blocks".into(),
            tripped_ms: 1_767_225_700_000,
            expires_ms: Some(1_767_247_300_000),
            members_blocked: vec![member_id(0x0a)],
            chains_quarantined: Vec::new(),
            effects: vec![
                BreakerEffectView {
                    chain_id: 31337,
                    action: "freeze member".into(),
                    subject: member_id(0x0a),
                    level: 0,
                    status: EffectStatus::Executed,
                    tx_hash: format!("0x{}", "f1".repeat(32)),
                },
                BreakerEffectView {
                    chain_id: 31338,
                    action: "freeze member".into(),
                    subject: member_id(0x0a),
                    level: 0,
                    status: EffectStatus::Pending,
                    tx_hash: String::new(),
                },
            ],
            active: true,
            lifted_by: String::new(),
        },
        BreakerView {
            id: contagion,
            kind: BreakerKind::Contagion,
            subject: contagion_subject(),
            cause: "2 members of chain 31337 in trouble within 300 s".into(),
            tripped_ms: 1_767_225_800_000,
            expires_ms: None,
            // Upper case: blocking compares ids without regard to case.
            members_blocked: vec![member_id(0x0a), member_id(0x0b).to_uppercase()],
            chains_quarantined: vec![31337],
            effects: vec![BreakerEffectView {
                chain_id: 31337,
                action: "raise alert".into(),
                subject: contagion_subject(),
                level: 2,
                status: EffectStatus::Executed,
                tx_hash: format!("0x{}", "f2".repeat(32)),
            }],
            active: true,
            lifted_by: String::new(),
        },
        BreakerView {
            id: oracle,
            kind: BreakerKind::Oracle,
            subject: member_id(0x0c),
            cause: "oracle deviates 9% from the median".into(),
            tripped_ms: 1_767_225_000_000,
            expires_ms: Some(1_767_226_000_000),
            members_blocked: vec![member_id(0x0b)],
            chains_quarantined: vec![31338],
            effects: vec![BreakerEffectView {
                chain_id: 31338,
                action: "pause".into(),
                subject: String::new(),
                level: 0,
                status: EffectStatus::Lifted,
                tx_hash: format!("0x{}", "f3".repeat(32)),
            }],
            active: false,
            lifted_by: format!("lifted on chain 31338 (tx 0x{})", "f4".repeat(32)),
        },
    ]);
    api.set_ready(true);
    api
}

/// A running server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The admin queue's receiving end (the "runtime").
    pub admin_rx: mpsc::Receiver<AdminCommand>,
    /// Fire to shut it down.
    pub shutdown: Option<oneshot::Sender<()>>,
    /// The `serve` task.
    pub task: JoinHandle<Result<(), backstop_api::ApiError>>,
}

impl Running {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Shuts down and waits for `serve` to return (at most 10 s).
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .expect("serve did not return within 10 s of shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Starts the real server on 127.0.0.1:0.
pub async fn start(api: ApiState, token: Option<&str>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (admin_tx, admin_rx) = backstop_api::admin::channel(4);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(backstop_api::serve(
        listener,
        api,
        admin_tx,
        token.map(str::to_owned),
        async move {
            let _ = shutdown_rx.await;
        },
    ));
    Running {
        addr,
        admin_rx,
        shutdown: Some(shutdown_tx),
        task,
    }
}

/// A running metrics and dashboard endpoint.
pub struct RunningMetrics {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<Result<(), backstop_api::MetricsError>>,
}

impl RunningMetrics {
    /// Shuts down and waits for `serve_metrics` to return (at most 10 s).
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .expect("serve_metrics did not return within 10 s of shutdown")
            .unwrap()
            .unwrap();
    }
}

/// Starts the real metrics and dashboard endpoint on 127.0.0.1:0.
pub async fn start_metrics(metrics: Arc<Metrics>, api: ApiState) -> RunningMetrics {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(backstop_api::serve_metrics(
        listener,
        metrics,
        api,
        async move {
            let _ = stopped.await;
        },
    ));
    RunningMetrics {
        addr,
        shutdown,
        task,
    }
}

/// A connected channel to `addr`.
pub async fn channel(addr: SocketAddr) -> tonic::transport::Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// Starts the real server on 127.0.0.1:0 with `options`.
pub async fn start_with(
    api: ApiState,
    token: Option<&str>,
    options: backstop_api::ServerOptions,
) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (admin_tx, admin_rx) = backstop_api::admin::channel(4);
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(backstop_api::serve_with(
        listener,
        api,
        admin_tx,
        token.map(str::to_owned),
        options,
        async move {
            let _ = shutdown_rx.await;
        },
    ));
    Running {
        addr,
        admin_rx,
        shutdown: Some(shutdown_tx),
        task,
    }
}

/// Records the events of target `backstop_api` as lines `LEVEL message field=value…`,
/// formatting fields the way `tracing-subscriber`'s fmt layer does (`%` fields with
/// `Display`, strings with `Debug`).
#[derive(Debug, Clone, Default)]
pub struct Capture(pub std::sync::Arc<std::sync::Mutex<Vec<String>>>);

impl Capture {
    /// The lines recorded so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// The lines containing `needle`.
    pub fn matching(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        metadata.target().starts_with("backstop_api")
    }

    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        struct Line(String);
        impl tracing::field::Visit for Line {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                if field.name() == "message" {
                    let _ = write!(self.0, " {value:?}");
                } else {
                    let _ = write!(self.0, " {}={value:?}", field.name());
                }
            }
        }
        let mut line = Line(event.metadata().level().to_string());
        event.record(&mut line);
        self.0.lock().unwrap().push(line.0);
    }

    fn enter(&self, _: &tracing::span::Id) {}

    fn exit(&self, _: &tracing::span::Id) {}
}

/// The soft and hard limits on open files of this process (Linux).
pub fn nofile_limits() -> (u64, u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .take(2)
        .map(|x| x.parse().unwrap_or(u64::MAX))
        .collect();
    (v[0], v[1])
}

/// Sets the soft limit on open files of this process with prlimit(1) (the crate forbids
/// the unsafe code a direct setrlimit would take); returns the soft limit now in force.
pub fn set_nofile_soft(soft: u64) -> u64 {
    let (_, hard) = nofile_limits();
    let soft = soft.min(hard);
    let hard = if hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let _ = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={soft}:{hard}"))
        .status();
    nofile_limits().0
}

/// Descriptors open in this process (Linux).
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// One HTTP/1.1 request; returns the status line, the headers (names lower-cased) and the
/// body.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
) -> (String, Vec<(String, String)>, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        s.read_to_string(&mut raw),
    )
    .await
    .unwrap()
    .unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_owned();
    let headers = lines
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    (status, headers, body.to_owned())
}
