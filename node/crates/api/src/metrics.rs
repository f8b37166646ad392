//! Prometheus metrics of the node and the HTTP endpoint that exposes them.
//!
//! [`Metrics`] holds every metric in one `prometheus-client` registry (prefix
//! `backstop_`); the runtime updates it through the methods below, from any thread.
//! [`serve_metrics`] answers `GET /metrics` with the text exposition (OpenMetrics 1.0,
//! which Prometheus scrapes natively), serves the operator dashboard's page and JSON on the
//! same port (`/`, see [`crate::dashboard`]) and answers 404 on every other path.
//!
//! Invariants kept here:
//! - label values are chain ids, phases, signal and breaker kinds and states, the short
//!   reason or kind names the runtime passes, and stress scenario names (from the
//!   configuration, which allows at most 32): callers must pass values from a small fixed
//!   set, never free text or ids, so the series count stays bounded; the series of a
//!   scenario no longer reported are removed;
//! - the endpoint is read-only and bounded: HTTP/1 only, headers must arrive within
//!   [`HEADER_TIMEOUT`], request bodies are ignored; on shutdown it stops accepting and
//!   gives open connections [`SHUTDOWN_GRACE`] to finish.

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use backstop_stress::{BPS, MAX_COVERAGE_BPS, StressReport};
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::dashboard::{self, Page};
use crate::model::{ApiState, BreakerKind, ChainView, IncidentPhase, Model, SignalKind};

/// Histogram buckets for protocol latencies, in seconds: 10 ms … 120 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0,
];

/// Time a client has to send its request headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// At most one log line per interval for failed accepts on the metrics port.
pub const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Time open connections get to finish after shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Error of the metrics module.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Encoding the registry failed.
    #[error("encoding metrics: {0}")]
    Encode(#[from] std::fmt::Error),
}

/// Label `chain` (chain id).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChainLabel {
    chain: String,
}

/// Name and help of the vault gauges, in [`Metrics::set_vault`]'s order.
const VAULT_GAUGES: [(&str, &str); 3] = [
    (
        "vault_balance",
        "The vault's pool-token balance at the confirmed head (base units)",
    ),
    (
        "vault_reserve_floor",
        "The vault's reserve floor (base units): it pays nothing below it",
    ),
    (
        "vault_available_for_payout",
        "What the vault can pay now: its bucket, above its reserve floor (base units)",
    ),
];

/// Labels `chain` and `kind`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChainKindLabels {
    chain: String,
    kind: String,
}

/// Label `phase`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabel {
    phase: String,
}

/// Label `reason`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Label `kind`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// Label `chain_id`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChainIdLabel {
    chain_id: String,
}

/// Labels `kind` and `state`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindStateLabels {
    kind: String,
    state: String,
}

/// Labels `scenario` and `horizon` (`next_block` or `day`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScenarioHorizonLabels {
    scenario: String,
    horizon: String,
}

/// Label `scenario`.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScenarioLabel {
    scenario: String,
}

/// The horizons of `backstop_stress_coverage_ratio`.
const HORIZONS: [&str; 2] = ["next_block", "day"];

/// A coverage in basis points as a ratio (1.0 covers the need), capped as in the report.
fn coverage_ratio(bps: u64) -> f64 {
    bps.min(MAX_COVERAGE_BPS) as f64 / BPS as f64
}

/// State label of a signal: `raised`, `confirmed` or `cleared`.
fn signal_state(confirmed: bool, cleared: bool) -> &'static str {
    if cleared {
        "cleared"
    } else if confirmed {
        "confirmed"
    } else {
        "raised"
    }
}

/// Saturating u64 → i64 for gauges.
fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Reasons an admin call is refused, as in `backstop_api_admin_refused_total{reason}`.
pub const ADMIN_REFUSED_REASONS: [&str; 4] = [
    "disabled",
    "missing_token",
    "malformed_token",
    "wrong_token",
];

/// Reasons the API server closes a connection, as in
/// `backstop_api_connections_closed_total{reason}`.
pub const CONNECTION_CLOSE_REASONS: [&str; 4] =
    ["over_cap", "evicted", "handshake_timeout", "idle_timeout"];

/// Counters kept by the gRPC server itself. They are process-wide (every server of the
/// process counts into them) and every [`Metrics`] registers them, so the node exposes
/// them without wiring.
#[derive(Debug)]
pub(crate) struct ApiServerMetrics {
    /// Admin calls refused, by reason ([`ADMIN_REFUSED_REASONS`]).
    admin_refused: Family<ReasonLabel, Counter>,
    /// Connections closed by the server's limits, by reason ([`CONNECTION_CLOSE_REASONS`]).
    connections_closed: Family<ReasonLabel, Counter>,
    /// Connections admitted and still open.
    pub(crate) connections_open: Gauge,
    /// Failed accepts.
    pub(crate) accept_errors: Counter,
    /// Requests refused before the service because their message was malformed.
    pub(crate) invalid_requests: Counter,
}

impl ApiServerMetrics {
    fn new() -> Self {
        let m = Self {
            admin_refused: Family::default(),
            connections_closed: Family::default(),
            connections_open: Gauge::default(),
            accept_errors: Counter::default(),
            invalid_requests: Counter::default(),
        };
        for reason in ADMIN_REFUSED_REASONS {
            let _ = m.admin_refused.get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            });
        }
        for reason in CONNECTION_CLOSE_REASONS {
            let _ = m.connections_closed.get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            });
        }
        m
    }

    /// Counts a refused admin call (`reason` from [`ADMIN_REFUSED_REASONS`]).
    pub(crate) fn admin_refused(&self, reason: &'static str) {
        self.admin_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts a connection closed by a limit (`reason` from [`CONNECTION_CLOSE_REASONS`]).
    pub(crate) fn connection_closed(&self, reason: &'static str) {
        self.connections_closed
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "api_admin_refused",
            "Admin calls refused by the operator API, by reason",
            self.admin_refused.clone(),
        );
        registry.register(
            "api_connections_closed",
            "Operator API connections closed by its limits, by reason",
            self.connections_closed.clone(),
        );
        registry.register(
            "api_connections_open",
            "Operator API connections open",
            self.connections_open.clone(),
        );
        registry.register(
            "api_accept_errors",
            "Failed accepts on the operator API port",
            self.accept_errors.clone(),
        );
        registry.register(
            "api_invalid_requests",
            "Operator API requests refused because their message was malformed",
            self.invalid_requests.clone(),
        );
    }
}

/// The process-wide counters of the gRPC server.
pub(crate) static API_SERVER: LazyLock<ApiServerMetrics> = LazyLock::new(ApiServerMetrics::new);

/// Adds `n` to the counter of `reason` (no series is created for 0).
fn add_by_reason(family: &Family<ReasonLabel, Counter>, reason: &str, n: u64) {
    if n > 0 {
        family
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc_by(n);
    }
}

/// Every metric of the node, registered under the prefix `backstop_`.
///
/// Names as exposed: `backstop_peers_connected`, `backstop_chain_head{chain}`,
/// `backstop_chain_confirmed_head{chain}`, `backstop_incidents{phase}`,
/// `backstop_proposal_to_certificate_seconds`, `backstop_gap_to_closed_seconds`,
/// `backstop_submissions_total{chain,kind}`, `backstop_submission_failures_total{chain,kind}`,
/// `backstop_gossip_rejects_total{reason}`, `backstop_refusals_total{reason}`,
/// `backstop_signals{kind,state}`,
/// `backstop_breakers_active{kind}`, `backstop_chain_quarantined{chain_id}`,
/// `backstop_chain_deep_reorgs{chain_id}`, the vault of each chain at the confirmed head
/// (`backstop_vault_balance{chain}`, `backstop_vault_reserve_floor{chain}`,
/// `backstop_vault_available_for_payout{chain}`, pool-token base units),
/// `backstop_incident_oldest_open_timestamp_seconds` (0 when none is open),
/// `backstop_sign_guard_conflicts_total`, `backstop_process_start_time_seconds`,
/// `backstop_clock_offset_seconds`, `backstop_clock_skewed`, the latest stress report
/// (`backstop_stress_coverage_ratio{scenario,horizon}` with horizon `next_block` or `day`,
/// `backstop_stress_shortfall{scenario}` in pool-token base units, and
/// `backstop_stress_evaluated_timestamp_seconds`, 0 before the first), and the
/// operator API server's own `backstop_api_admin_refused_total{reason}`,
/// `backstop_api_connections_closed_total{reason}`, `backstop_api_connections_open`,
/// `backstop_api_accept_errors_total` and `backstop_api_invalid_requests_total`
/// (process-wide).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    peers_connected: Gauge,
    chain_head: Family<ChainLabel, Gauge>,
    chain_confirmed_head: Family<ChainLabel, Gauge>,
    incidents: Family<PhaseLabel, Gauge>,
    proposal_to_certificate: Histogram,
    gap_to_closed: Histogram,
    submissions: Family<ChainKindLabels, Counter>,
    submission_failures: Family<ChainKindLabels, Counter>,
    gossip_rejects: Family<ReasonLabel, Counter>,
    refusals: Family<ReasonLabel, Counter>,
    signals: Family<KindStateLabels, Gauge>,
    breakers_active: Family<KindLabel, Gauge>,
    chain_quarantined: Family<ChainIdLabel, Gauge>,
    chain_deep_reorgs: Family<ChainIdLabel, Gauge>,
    vault: [Family<ChainLabel, Gauge<f64, AtomicU64>>; 3],
    oldest_open: Gauge<f64, AtomicU64>,
    sign_guard_conflicts: Counter,
    clock_offset: Gauge<f64, AtomicU64>,
    clock_skewed: Gauge,
    stress_coverage: Family<ScenarioHorizonLabels, Gauge<f64, AtomicU64>>,
    stress_shortfall: Family<ScenarioLabel, Gauge<f64, AtomicU64>>,
    stress_evaluated: Gauge<f64, AtomicU64>,
    /// The scenarios of the stress series now exposed (to remove those no longer reported).
    stress_scenarios: Mutex<Vec<String>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero (phases and breaker kinds all present at 0).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("backstop");
        let peers_connected = Gauge::default();
        let chain_head = Family::<ChainLabel, Gauge>::default();
        let chain_confirmed_head = Family::<ChainLabel, Gauge>::default();
        let incidents = Family::<PhaseLabel, Gauge>::default();
        let proposal_to_certificate = Histogram::new(LATENCY_BUCKETS);
        let gap_to_closed = Histogram::new(LATENCY_BUCKETS);
        let submissions = Family::<ChainKindLabels, Counter>::default();
        let submission_failures = Family::<ChainKindLabels, Counter>::default();
        let gossip_rejects = Family::<ReasonLabel, Counter>::default();
        let refusals = Family::<ReasonLabel, Counter>::default();
        let signals = Family::<KindStateLabels, Gauge>::default();
        let breakers_active = Family::<KindLabel, Gauge>::default();
        let chain_quarantined = Family::<ChainIdLabel, Gauge>::default();
        let chain_deep_reorgs = Family::<ChainIdLabel, Gauge>::default();
        let vault: [Family<ChainLabel, Gauge<f64, AtomicU64>>; 3] = Default::default();
        let oldest_open = Gauge::<f64, AtomicU64>::default();
        let sign_guard_conflicts = Counter::default();
        let start_time = Gauge::<f64, AtomicU64>::default();
        start_time.set(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
        );
        registry.register(
            "process_start_time_seconds",
            "When the node process started, seconds since the Unix epoch",
            start_time,
        );
        for (family, (name, help)) in vault.iter().zip(VAULT_GAUGES) {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "incident_oldest_open_timestamp_seconds",
            "When the oldest incident not closed was first seen, seconds since the Unix epoch; 0 when none is open",
            oldest_open.clone(),
        );
        registry.register(
            "sign_guard_conflicts",
            "Signatures the sign-guard refused: another digest is recorded for the same key",
            sign_guard_conflicts.clone(),
        );
        let clock_offset = Gauge::<f64, AtomicU64>::default();
        let clock_skewed = Gauge::default();
        registry.register(
            "clock_offset_seconds",
            "This node's clock minus the timestamp of the freshest confirmed block over the chains",
            clock_offset.clone(),
        );
        registry.register(
            "clock_skewed",
            "1 while the node's clock disagrees with the chains (see GetStatus clock_warning)",
            clock_skewed.clone(),
        );
        registry.register(
            "peers_connected",
            "Consortium peers with an open connection",
            peers_connected.clone(),
        );
        registry.register(
            "chain_head",
            "Latest head number seen per chain",
            chain_head.clone(),
        );
        registry.register(
            "chain_confirmed_head",
            "Latest confirmed head number per chain",
            chain_confirmed_head.clone(),
        );
        registry.register(
            "incidents",
            "Incidents known to the node by phase",
            incidents.clone(),
        );
        registry.register(
            "proposal_to_certificate_seconds",
            "Time from a draw proposal to holding its certificate",
            proposal_to_certificate.clone(),
        );
        registry.register(
            "gap_to_closed_seconds",
            "Time from observing a gap to closing its incident",
            gap_to_closed.clone(),
        );
        registry.register(
            "submissions",
            "Transactions submitted by chain and kind",
            submissions.clone(),
        );
        registry.register(
            "submission_failures",
            "Transaction submissions that failed by chain and kind",
            submission_failures.clone(),
        );
        registry.register(
            "gossip_rejects",
            "Gossip messages rejected by reason",
            gossip_rejects.clone(),
        );
        registry.register(
            "refusals",
            "Draw proposals and threshold actions this node refused to sign, by the rule that refused",
            refusals.clone(),
        );
        registry.register(
            "signals",
            "Signals known to the node by kind and state",
            signals.clone(),
        );
        registry.register(
            "breakers_active",
            "Circuit breakers active (neither lifted nor expired) by kind",
            breakers_active.clone(),
        );
        registry.register(
            "chain_quarantined",
            "1 while a chain is quarantined (allocations skip its vault), else 0",
            chain_quarantined.clone(),
        );
        registry.register(
            "chain_deep_reorgs",
            "Reorgs deeper than the confirmation depth seen on a chain since the node started",
            chain_deep_reorgs.clone(),
        );
        let stress_coverage = Family::<ScenarioHorizonLabels, Gauge<f64, AtomicU64>>::default();
        let stress_shortfall = Family::<ScenarioLabel, Gauge<f64, AtomicU64>>::default();
        let stress_evaluated = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "stress_coverage_ratio",
            "What the vaults can pay within the horizon (next_block or day) over what the pool promised, per stress scenario; 1 covers it, capped at 100 (also when nothing is needed)",
            stress_coverage.clone(),
        );
        registry.register(
            "stress_shortfall",
            "What the members would not get under the stress scenario (pool-token base units)",
            stress_shortfall.clone(),
        );
        registry.register(
            "stress_evaluated_timestamp_seconds",
            "When the latest stress report was evaluated, seconds since the Unix epoch; 0 before the first",
            stress_evaluated.clone(),
        );
        API_SERVER.register(&mut registry);
        for kind in BreakerKind::ALL {
            breakers_active
                .get_or_create(&KindLabel {
                    kind: kind.as_str().to_owned(),
                })
                .set(0);
        }
        for phase in IncidentPhase::ALL {
            incidents
                .get_or_create(&PhaseLabel {
                    phase: phase.as_str().to_ascii_lowercase(),
                })
                .set(0);
        }
        Self {
            registry,
            peers_connected,
            chain_head,
            chain_confirmed_head,
            incidents,
            proposal_to_certificate,
            gap_to_closed,
            submissions,
            submission_failures,
            gossip_rejects,
            refusals,
            signals,
            breakers_active,
            chain_quarantined,
            chain_deep_reorgs,
            vault,
            oldest_open,
            sign_guard_conflicts,
            clock_offset,
            clock_skewed,
            stress_coverage,
            stress_shortfall,
            stress_evaluated,
            stress_scenarios: Mutex::new(Vec::new()),
        }
    }

    /// Sets the number of connected peers.
    pub fn set_peers_connected(&self, n: u64) {
        self.peers_connected.set(gauge_value(n));
    }

    /// Sets a chain's latest and confirmed head numbers.
    pub fn set_chain_heads(&self, chain_id: u64, head: u64, confirmed: u64) {
        let label = ChainLabel {
            chain: chain_id.to_string(),
        };
        self.chain_head.get_or_create(&label).set(gauge_value(head));
        self.chain_confirmed_head
            .get_or_create(&label)
            .set(gauge_value(confirmed));
    }

    /// Sets the number of incidents in `phase`.
    pub fn set_incidents(&self, phase: IncidentPhase, n: u64) {
        self.incidents
            .get_or_create(&PhaseLabel {
                phase: phase.as_str().to_ascii_lowercase(),
            })
            .set(gauge_value(n));
    }

    /// Records the time from a draw proposal to its certificate.
    pub fn observe_proposal_to_certificate(&self, elapsed: Duration) {
        self.proposal_to_certificate.observe(elapsed.as_secs_f64());
    }

    /// Records the time from a gap observation to its incident's close.
    pub fn observe_gap_to_closed(&self, elapsed: Duration) {
        self.gap_to_closed.observe(elapsed.as_secs_f64());
    }

    /// Counts a transaction submitted on `chain_id`; `kind` is a short fixed name such as
    /// `register_draw` or `release_leg`.
    pub fn inc_submission(&self, chain_id: u64, kind: &str) {
        self.submissions
            .get_or_create(&ChainKindLabels {
                chain: chain_id.to_string(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a failed submission on `chain_id` (same `kind` names as
    /// [`Metrics::inc_submission`]).
    pub fn inc_submission_failure(&self, chain_id: u64, kind: &str) {
        self.submission_failures
            .get_or_create(&ChainKindLabels {
                chain: chain_id.to_string(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a rejected gossip message; `reason` is a short fixed name.
    pub fn inc_gossip_reject(&self, reason: &str) {
        self.gossip_rejects
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// Counts `n` rejected gossip messages at once (for callers that poll cumulative
    /// counters and add the difference).
    pub fn add_gossip_rejects(&self, reason: &str, n: u64) {
        add_by_reason(&self.gossip_rejects, reason, n);
    }

    /// Counts `n` refusals to sign by the rule `reason` (a fixed name: the agreement core's
    /// `Refusal::kind`), for callers that poll cumulative counters and add the difference.
    pub fn add_refusals(&self, reason: &str, n: u64) {
        add_by_reason(&self.refusals, reason, n);
    }

    /// Sets the number of signals of `kind` in a state (`raised`, `confirmed`, `cleared`).
    pub fn set_signals(&self, kind: SignalKind, confirmed: bool, cleared: bool, n: u64) {
        self.signals
            .get_or_create(&KindStateLabels {
                kind: kind.as_str().to_owned(),
                state: signal_state(confirmed, cleared).to_owned(),
            })
            .set(gauge_value(n));
    }

    /// Sets the number of active breakers of `kind`.
    pub fn set_breakers_active(&self, kind: BreakerKind, n: u64) {
        self.breakers_active
            .get_or_create(&KindLabel {
                kind: kind.as_str().to_owned(),
            })
            .set(gauge_value(n));
    }

    /// Sets whether chain `chain_id` is quarantined.
    pub fn set_chain_quarantined(&self, chain_id: u64, quarantined: bool) {
        self.chain_quarantined
            .get_or_create(&ChainIdLabel {
                chain_id: chain_id.to_string(),
            })
            .set(i64::from(quarantined));
    }

    /// Sets every gauge derivable from the API model: peers connected, chain heads,
    /// incidents by phase, signals by kind and state (every kind × state, zeros included),
    /// active breakers by kind (every kind, zeros included) and, for every chain of the
    /// model, whether it is quarantined (its view says so or an active breaker lists it),
    /// its vault, and the gauges of the latest stress report.
    pub fn refresh_from(&self, model: &Model) {
        let connected = model.peers.iter().filter(|p| p.connected).count();
        self.set_peers_connected(u64::try_from(connected).unwrap_or(u64::MAX));
        if let Some(ms) = model.clock.clock_offset_ms {
            self.clock_offset.set(ms as f64 / 1000.0);
        }
        self.clock_skewed
            .set(i64::from(!model.clock.clock_warning.is_empty()));
        for chain in &model.chains {
            self.set_chain_heads(chain.chain_id, chain.head_number, chain.confirmed_head);
        }
        for phase in IncidentPhase::ALL {
            let n = model.incidents.iter().filter(|i| i.phase == phase).count();
            self.set_incidents(phase, u64::try_from(n).unwrap_or(u64::MAX));
        }
        for kind in SignalKind::ALL {
            for (confirmed, cleared) in [(false, false), (true, false), (false, true)] {
                let state = signal_state(confirmed, cleared);
                let n = model
                    .signals
                    .iter()
                    .filter(|s| s.kind == kind && signal_state(s.confirmed, s.cleared) == state)
                    .count();
                self.set_signals(
                    kind,
                    confirmed,
                    cleared,
                    u64::try_from(n).unwrap_or(u64::MAX),
                );
            }
        }
        for kind in BreakerKind::ALL {
            let n = model
                .breakers
                .iter()
                .filter(|b| b.active && b.kind == kind)
                .count();
            self.set_breakers_active(kind, u64::try_from(n).unwrap_or(u64::MAX));
        }
        for chain in &model.chains {
            self.set_chain_quarantined(chain.chain_id, model.chain_quarantined(chain.chain_id));
            self.chain_deep_reorgs
                .get_or_create(&ChainIdLabel {
                    chain_id: chain.chain_id.to_string(),
                })
                .set(i64::try_from(chain.deep_reorgs).unwrap_or(i64::MAX));
            self.set_vault(chain);
        }
        let oldest = model
            .incidents
            .iter()
            .filter(|i| i.phase != IncidentPhase::Closed)
            .filter_map(|i| i.timeline.first().map(|e| e.timestamp_ms))
            .min();
        self.oldest_open
            .set(oldest.map_or(0.0, |ms| ms as f64 / 1000.0));
        self.set_stress(model.stress.as_deref());
    }

    /// The stress gauges of `report` (none without one): each scenario's coverage ratios
    /// and shortfall, and when it was evaluated. The series of scenarios it does not list
    /// are removed.
    fn set_stress(&self, report: Option<&StressReport>) {
        let scenarios = report.map_or(&[][..], |r| r.scenarios.as_slice());
        let mut exposed = self
            .stress_scenarios
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for gone in exposed
            .iter()
            .filter(|name| !scenarios.iter().any(|s| &s.name == *name))
        {
            for horizon in HORIZONS {
                self.stress_coverage.remove(&ScenarioHorizonLabels {
                    scenario: gone.clone(),
                    horizon: horizon.to_owned(),
                });
            }
            self.stress_shortfall.remove(&ScenarioLabel {
                scenario: gone.clone(),
            });
        }
        for s in scenarios {
            for (horizon, bps) in HORIZONS
                .into_iter()
                .zip([s.coverage_next_block_bps, s.coverage_day_bps])
            {
                self.stress_coverage
                    .get_or_create(&ScenarioHorizonLabels {
                        scenario: s.name.clone(),
                        horizon: horizon.to_owned(),
                    })
                    .set(coverage_ratio(bps));
            }
            self.stress_shortfall
                .get_or_create(&ScenarioLabel {
                    scenario: s.name.clone(),
                })
                .set(f64::from(s.shortfall));
        }
        *exposed = scenarios.iter().map(|s| s.name.clone()).collect();
        self.stress_evaluated
            .set(report.map_or(0.0, |r| r.evaluated_ms as f64 / 1000.0));
    }

    /// The vault gauges of `chain` (absent until its vault was read; a figure that is not a
    /// decimal number is left as it was).
    fn set_vault(&self, chain: &ChainView) {
        let Some(v) = &chain.vault else {
            return;
        };
        let label = ChainLabel {
            chain: chain.chain_id.to_string(),
        };
        for (family, figure) in
            self.vault
                .iter()
                .zip([&v.balance, &v.reserve, &v.available_for_payout])
        {
            if let Ok(x) = figure.parse::<f64>() {
                family.get_or_create(&label).set(x);
            }
        }
    }

    /// Counts `n` more signatures refused by the sign-guard.
    pub fn add_sign_guard_conflicts(&self, n: u64) {
        self.sign_guard_conflicts.inc_by(n);
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// What a path serves.
enum Route {
    Metrics,
    Dashboard(Page),
}

/// Answers one HTTP request.
fn respond(
    metrics: &Metrics,
    api: &ApiState,
    request: &Request<Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, content_type: &str, body: String| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        if let Ok(value) = header::HeaderValue::from_str(content_type) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    };
    let path = request.uri().path();
    let route = match Page::of(path) {
        Some(page) => Route::Dashboard(page),
        None if path == "/metrics" => Route::Metrics,
        None => {
            return reply(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found: metrics are at /metrics, the dashboard at /\n".to_owned(),
            );
        }
    };
    if request.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain; charset=utf-8",
            "only GET is supported\n".to_owned(),
        );
    }
    if let Route::Dashboard(page) = route {
        return dashboard::respond(api, page);
    }
    match metrics.encode() {
        Ok(body) => reply(StatusCode::OK, CONTENT_TYPE, body),
        Err(e) => {
            tracing::error!(error = %e, "metrics encoding failed");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("{e}\n"),
            )
        }
    }
}

/// Serves `GET /metrics`, and the dashboard of `api` (see [`crate::dashboard`]), on
/// `listener` until `shutdown` completes. Accept errors (such as running out of file
/// descriptors) are retried after a short pause and logged at most once per
/// [`ACCEPT_ERROR_LOG_INTERVAL`].
pub async fn serve_metrics(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    api: ApiState,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MetricsError> {
    let local = listener.local_addr().ok();
    tracing::info!(addr = ?local, "metrics endpoint listening");
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let accept_errors = crate::logsafe::LogLimiter::new(ACCEPT_ERROR_LOG_INTERVAL);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    if let Some(suppressed) = accept_errors.check() {
                        tracing::warn!(error = %e, suppressed, "metrics endpoint: accept failed; pausing");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let metrics = Arc::clone(&metrics);
        let api = api.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let response = respond(&metrics, &api, &request);
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(?peer, error = %e, "metrics connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(SHUTDOWN_GRACE) => {
            tracing::warn!("metrics endpoint: connections still open after the grace period");
        }
    }
    tracing::info!(addr = ?local, "metrics endpoint stopped");
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_and_labels() {
        let m = Metrics::new();
        m.set_chain_heads(31337, 12, 10);
        m.inc_submission(31337, "register_draw");
        m.inc_gossip_reject("bad_signature");
        m.add_refusals("not_booked", 2);
        m.add_refusals("no_gap", 0);
        m.observe_gap_to_closed(Duration::from_millis(1500));
        let text = m.encode().unwrap();
        assert!(
            text.contains("backstop_chain_head{chain=\"31337\"} 12"),
            "{text}"
        );
        assert!(text.contains("backstop_chain_confirmed_head{chain=\"31337\"} 10"));
        assert!(
            text.contains("backstop_submissions_total{chain=\"31337\",kind=\"register_draw\"} 1")
        );
        assert!(text.contains("backstop_gossip_rejects_total{reason=\"bad_signature\"} 1"));
        assert!(text.contains("backstop_refusals_total{reason=\"not_booked\"} 2"));
        assert!(!text.contains("reason=\"no_gap\""), "{text}");
        assert!(text.contains("backstop_incidents{phase=\"open\"} 0"));
        assert!(text.contains("backstop_breakers_active{kind=\"contagion\"} 0"));
        assert!(text.contains("backstop_gap_to_closed_seconds_bucket{le=\"2.5\"} 1"));
        assert!(text.ends_with("# EOF\n"));
    }
}
