//! Client side of the operator API, for the `backstop` CLI: one call per query, answers
//! rendered for printing as aligned plain-text tables or as JSON.
//!
//! Invariants kept here:
//! - every function connects, makes its call and returns; nothing is cached or retried;
//! - connection failures say which URL and why (the whole error chain, e.g. "tcp connect
//!   error: Connection refused"); RPC failures carry the gRPC code and the server's
//!   message unchanged;
//! - JSON output is the model's serde form (ids, hashes and amounts as strings), one
//!   pretty-printed document per call, so scripts can rely on it; the stress report, which
//!   has no model form, is the protobuf answer's fields (see [`stress_json`]);
//! - an answer with an enum value this build does not know is reported as an error,
//!   never shown as something else.

use std::fmt::Write as _;
use std::time::Duration;

use backstop_proto::v1 as pb;
use backstop_proto::v1::backstop_client::BackstopClient;
use backstop_stress::BasisKind;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};

use crate::admin::{AdminRequest, GovernanceChange};
use crate::convert::{self, UnknownEnum};
use crate::logsafe::Escaped;
use crate::model::{
    BreakerView, ChainView, ClockView, EffectStatus, IncidentView, MemberView, NodeEvent,
    NodeStatus, PeerView, ProposalView, SignalView, to_hex,
};

/// Time allowed to open the connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Time allowed for a unary call.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(35);

/// A read query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `GetStatus`.
    Status,
    /// `ListPeers`.
    Peers,
    /// `ListChains`.
    Chains,
    /// `ListMembers`.
    Members,
    /// `ListIncidents` (all, oldest first).
    Incidents,
    /// `GetIncident` with this id (`0x<member>:<seq>`).
    Incident(String),
    /// `ListSignals`.
    Signals,
    /// `ListBreakers`; with `active_only`, only breakers neither lifted nor expired.
    Breakers {
        /// Only active breakers.
        active_only: bool,
    },
    /// `GetStressReport`, with the members' names from `ListMembers`; JSON as
    /// [`stress_json`] documents.
    Stress,
    /// `ListProposals`: a table of the governance proposals, then each one's full id,
    /// digest (to copy into an approval), parameters and per-chain state.
    Proposals,
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL cannot be used.
    #[error("invalid node URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why it is unusable.
        reason: String,
    },
    /// No connection could be made.
    #[error("cannot reach the node at {url}: {reason}")]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The error chain.
        reason: String,
    },
    /// The node answered with an error status.
    #[error("the node at {url} answered {code:?}: {message}")]
    Rpc {
        /// The URL called.
        url: String,
        /// gRPC status code.
        code: tonic::Code,
        /// The server's message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("unexpected answer from the node at {url}: {reason}")]
    BadResponse {
        /// The URL called.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The admin token cannot be sent as metadata.
    #[error("the admin token must be printable ASCII")]
    InvalidToken,
    /// JSON rendering failed.
    #[error("rendering JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// `url` with `http://` added when it has no scheme (`127.0.0.1:7700` works).
pub fn normalize_url(url: &str) -> String {
    let url = url.trim();
    if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    }
}

/// The error and its sources, joined by `: `, without repeats.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// A generated client connected to the node at `url` (requests time out).
pub async fn client(url: &str) -> Result<BackstopClient<Channel>, ClientError> {
    Ok(connect(url, true).await?.1)
}

/// Connects to the node at `url`.
async fn connect(url: &str, unary: bool) -> Result<(String, BackstopClient<Channel>), ClientError> {
    let url = normalize_url(url);
    let endpoint = Endpoint::from_shared(url.clone()).map_err(|e| ClientError::InvalidUrl {
        url: url.clone(),
        reason: error_chain(&e),
    })?;
    let endpoint = endpoint.connect_timeout(CONNECT_TIMEOUT);
    let endpoint = if unary {
        endpoint.timeout(REQUEST_TIMEOUT)
    } else {
        endpoint
    };
    let channel = endpoint
        .connect()
        .await
        .map_err(|e| ClientError::Unreachable {
            url: url.clone(),
            reason: error_chain(&e),
        })?;
    Ok((url, BackstopClient::new(channel)))
}

/// Maps an RPC status to an error.
fn rpc(url: &str, status: tonic::Status) -> ClientError {
    if status.code() == tonic::Code::Unavailable && status.message().contains("transport") {
        return ClientError::Unreachable {
            url: url.to_owned(),
            reason: error_chain(&status),
        };
    }
    ClientError::Rpc {
        url: url.to_owned(),
        code: status.code(),
        message: status.message().to_owned(),
    }
}

/// Error for a bad answer.
fn bad(url: &str, reason: impl std::fmt::Display) -> ClientError {
    ClientError::BadResponse {
        url: url.to_owned(),
        reason: reason.to_string(),
    }
}

/// Runs `q` against the node at `url` and renders the answer: JSON when `json`, tables
/// otherwise.
pub async fn query(url: &str, q: &Query, json: bool) -> Result<String, ClientError> {
    let (url, mut client) = connect(url, true).await?;
    let url = url.as_str();
    match q {
        Query::Status => {
            let status = client
                .get_status(pb::GetStatusRequest {})
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .status
                .ok_or_else(|| bad(url, "GetStatus answered without a status"))?;
            let status = convert::status_from_pb(status);
            if json {
                Ok(pretty(&status)?)
            } else {
                Ok(render_status(&status))
            }
        }
        Query::Peers => {
            let peers: Vec<PeerView> = client
                .list_peers(pb::ListPeersRequest {})
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .peers
                .into_iter()
                .map(convert::peer_from_pb)
                .collect();
            if json {
                Ok(pretty(&peers)?)
            } else {
                Ok(render_peers(&peers))
            }
        }
        Query::Chains => {
            let chains: Vec<ChainView> = client
                .list_chains(pb::ListChainsRequest {})
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .chains
                .into_iter()
                .map(convert::chain_from_pb)
                .collect();
            if json {
                Ok(pretty(&chains)?)
            } else {
                Ok(render_chains(&chains))
            }
        }
        Query::Members => {
            let members: Vec<MemberView> = client
                .list_members(pb::ListMembersRequest {})
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .members
                .into_iter()
                .map(convert::member_from_pb)
                .collect();
            if json {
                Ok(pretty(&members)?)
            } else {
                Ok(render_members(&members))
            }
        }
        Query::Incidents => {
            let incidents = client
                .list_incidents(pb::ListIncidentsRequest { open_only: false })
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .incidents
                .into_iter()
                .map(convert::incident_from_pb)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(url, e))?;
            if json {
                let values = incidents
                    .iter()
                    .map(incident_json)
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(serde_json::to_string_pretty(&values)?)
            } else {
                Ok(render_incidents(&incidents))
            }
        }
        Query::Incident(id) => {
            let incident = client
                .get_incident(pb::GetIncidentRequest { id: id.clone() })
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .incident
                .ok_or_else(|| bad(url, "GetIncident answered without an incident"))?;
            let incident = convert::incident_from_pb(incident).map_err(|e| bad(url, e))?;
            if json {
                Ok(serde_json::to_string_pretty(&incident_json(&incident)?)?)
            } else {
                Ok(render_incident(&incident))
            }
        }
        Query::Signals => {
            let signals = client
                .list_signals(pb::ListSignalsRequest {})
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .signals
                .into_iter()
                .map(convert::signal_from_pb)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(url, e))?;
            if json {
                Ok(pretty(&signals)?)
            } else {
                Ok(render_signals(&signals))
            }
        }
        Query::Stress => {
            let report = stress_report(url, &mut client).await?;
            let members = match &report {
                Some(_) => client
                    .list_members(pb::ListMembersRequest {})
                    .await
                    .map_err(|s| rpc(url, s))?
                    .into_inner()
                    .members
                    .into_iter()
                    .map(convert::member_from_pb)
                    .collect(),
                None => Vec::new(),
            };
            if json {
                let value = stress_json(report.as_ref(), &members).map_err(|e| bad(url, e))?;
                Ok(pretty(&value)?)
            } else {
                render_stress(report.as_ref(), &members).map_err(|e| bad(url, e))
            }
        }
        Query::Breakers { active_only } => {
            let breakers = client
                .list_breakers(pb::ListBreakersRequest {
                    active_only: *active_only,
                })
                .await
                .map_err(|s| rpc(url, s))?
                .into_inner()
                .breakers
                .into_iter()
                .map(convert::breaker_from_pb)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(url, e))?;
            if json {
                Ok(pretty(&breakers)?)
            } else {
                Ok(render_breakers(&breakers))
            }
        }
        Query::Proposals => {
            let proposals = list_proposals(url, &mut client).await?;
            if json {
                Ok(pretty(&proposals)?)
            } else {
                Ok(render_proposals(&proposals))
            }
        }
    }
}

/// `ListProposals` on a connected client.
async fn list_proposals(
    url: &str,
    client: &mut BackstopClient<Channel>,
) -> Result<Vec<ProposalView>, ClientError> {
    client
        .list_proposals(pb::ListProposalsRequest {})
        .await
        .map_err(|s| rpc(url, s))?
        .into_inner()
        .proposals
        .into_iter()
        .map(convert::proposal_from_pb)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(url, e))
}

/// Sends an admin request with `token` and returns what the node started.
pub async fn admin(url: &str, token: &str, request: &AdminRequest) -> Result<String, ClientError> {
    let bearer = MetadataValue::try_from(format!("Bearer {token}"))
        .map_err(|_| ClientError::InvalidToken)?;
    let (url, mut client) = connect(url, true).await?;
    fn authorized<T>(
        message: T,
        bearer: &MetadataValue<tonic::metadata::Ascii>,
    ) -> tonic::Request<T> {
        let mut r = tonic::Request::new(message);
        r.metadata_mut().insert("authorization", bearer.clone());
        r
    }
    let response = match request {
        AdminRequest::RaiseSignal {
            kind,
            subject,
            reason,
        } => {
            client
                .raise_signal(authorized(
                    pb::RaiseSignalRequest {
                        kind: convert::kind_to_pb(*kind).into(),
                        subject: to_hex(subject),
                        reason: reason.clone(),
                    },
                    &bearer,
                ))
                .await
        }
        AdminRequest::Unfreeze { chain_id, member } => {
            client
                .request_unfreeze(authorized(
                    pb::RequestUnfreezeRequest {
                        chain_id: *chain_id,
                        member: to_hex(member),
                    },
                    &bearer,
                ))
                .await
        }
        AdminRequest::Unpause { chain_id } => {
            client
                .request_unpause(authorized(
                    pb::RequestUnpauseRequest {
                        chain_id: *chain_id,
                    },
                    &bearer,
                ))
                .await
        }
        AdminRequest::ClearAlert { chain_id, subject } => {
            client
                .request_alert_clear(authorized(
                    pb::RequestAlertClearRequest {
                        chain_id: *chain_id,
                        subject: to_hex(subject),
                    },
                    &bearer,
                ))
                .await
        }
        AdminRequest::Propose { chain_id, change } => {
            client
                .propose_governance(authorized(
                    pb::ProposeGovernanceRequest {
                        chain_id: *chain_id,
                        change: Some(convert::change_to_pb(change)),
                    },
                    &bearer,
                ))
                .await
        }
        AdminRequest::Approve { id, digest } => {
            client
                .approve_proposal(authorized(
                    pb::ApproveProposalRequest {
                        id: to_hex(id),
                        digest: to_hex(digest),
                    },
                    &bearer,
                ))
                .await
        }
    };
    Ok(response.map_err(|s| rpc(&url, s))?.into_inner().started)
}

/// Proposes `change` to the vault of `chain_id` (`None`: every chain's vault) through the
/// node at `url` with admin `token`; returns what the node started. The node checks every
/// field (INVALID_ARGUMENT naming it) and the consortium's rules.
pub async fn propose(
    url: &str,
    token: &str,
    chain_id: Option<u64>,
    change: GovernanceChange,
) -> Result<String, ClientError> {
    admin(url, token, &AdminRequest::Propose { chain_id, change }).await
}

/// Approves the governance proposal `id` as the operator of the node at `url` (admin
/// `token`): the node signs only if `digest` is exactly the proposal's. Returns what the
/// node started.
pub async fn approve(
    url: &str,
    token: &str,
    id: [u8; 32],
    digest: [u8; 32],
) -> Result<String, ClientError> {
    admin(url, token, &AdminRequest::Approve { id, digest }).await
}

/// A subscription to the node's events (see [`events`]).
#[derive(Debug)]
pub struct EventStream {
    url: String,
    inner: tonic::Streaming<pb::Event>,
}

impl EventStream {
    /// The next event; `None` when the node ended the stream (e.g. it shut down).
    pub async fn next(&mut self) -> Result<Option<NodeEvent>, ClientError> {
        match self.inner.message().await {
            Ok(Some(event)) => convert::event_from_pb(event)
                .map(Some)
                .map_err(|e| bad(&self.url, e)),
            Ok(None) => Ok(None),
            Err(status) => Err(rpc(&self.url, status)),
        }
    }
}

/// Subscribes to the events the node at `url` publishes from now on.
pub async fn events(url: &str) -> Result<EventStream, ClientError> {
    let (url, mut client) = connect(url, false).await?;
    let inner = client
        .stream_events(pb::StreamEventsRequest {})
        .await
        .map_err(|s| rpc(&url, s))?
        .into_inner();
    Ok(EventStream { url, inner })
}

/// Every incident the node at `url` knows, oldest first.
pub async fn incidents(url: &str) -> Result<Vec<IncidentView>, ClientError> {
    let (url, mut client) = connect(url, true).await?;
    client
        .list_incidents(pb::ListIncidentsRequest { open_only: false })
        .await
        .map_err(|s| rpc(&url, s))?
        .into_inner()
        .incidents
        .into_iter()
        .map(convert::incident_from_pb)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&url, e))
}

/// Every circuit breaker the node at `url` knows (active and ended).
pub async fn breakers(url: &str) -> Result<Vec<BreakerView>, ClientError> {
    let (url, mut client) = connect(url, true).await?;
    client
        .list_breakers(pb::ListBreakersRequest { active_only: false })
        .await
        .map_err(|s| rpc(&url, s))?
        .into_inner()
        .breakers
        .into_iter()
        .map(convert::breaker_from_pb)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&url, e))
}

/// Every governance proposal the node at `url` shows (open and recently ended).
pub async fn proposals(url: &str) -> Result<Vec<ProposalView>, ClientError> {
    let (url, mut client) = connect(url, true).await?;
    list_proposals(&url, &mut client).await
}

/// The name the node at `url` gives itself.
pub async fn node_name(url: &str) -> Result<String, ClientError> {
    let (url, mut client) = connect(url, true).await?;
    let status = client
        .get_status(pb::GetStatusRequest {})
        .await
        .map_err(|s| rpc(&url, s))?
        .into_inner()
        .status
        .ok_or_else(|| bad(&url, "GetStatus answered without a status"))?;
    Ok(convert::status_from_pb(status).info.node_name)
}

/// The node's latest stress report; `None` before its first evaluation. An answer whose
/// `evaluated` flag disagrees with the presence of its report is refused.
async fn stress_report(
    url: &str,
    client: &mut BackstopClient<Channel>,
) -> Result<Option<pb::StressReport>, ClientError> {
    let answer = client
        .get_stress_report(pb::GetStressReportRequest {})
        .await
        .map_err(|s| rpc(url, s))?
        .into_inner();
    match (answer.evaluated, answer.report) {
        (true, Some(report)) => Ok(Some(report)),
        (false, None) => Ok(None),
        (true, None) => Err(bad(url, "GetStressReport: evaluated without a report")),
        (false, Some(_)) => Err(bad(url, "GetStressReport: a report not marked evaluated")),
    }
}

/// The name of member `id` in `members` (ids compared without regard to case), or "".
fn member_name<'a>(members: &'a [MemberView], id: &str) -> &'a str {
    members
        .iter()
        .find(|m| m.id.eq_ignore_ascii_case(id))
        .map_or("", |m| m.name.as_str())
}

/// The JSON name of a stress basis: `exposures`, `history` or `invalid_view`.
fn basis_name(value: i32) -> Result<&'static str, UnknownEnum> {
    Ok(match convert::basis_from_pb(value)? {
        BasisKind::Exposures => "exposures",
        BasisKind::History => "history",
        BasisKind::InvalidView => "invalid_view",
    })
}

/// The JSON of `backstop stress --json`: the fields of `GetStressReportResponse` (see
/// `api.proto`), with each member's configured `name` ("" when unknown) next to its id and
/// each basis as `exposures`, `history` or `invalid_view`:
///
/// ```text
/// {"evaluated": bool, "report": null | {
///   "evaluated_ms": u64,
///   "heads": [{"chain_id": u64, "block_number": u64}],
///   "risk": [{"member": "0x…", "name": str, "basis": str, "invalid_reason": str}],
///   "scenarios": [{"name": str, "need": "<decimal>", "payable_next_block": "<decimal>",
///     "payable_day": "<decimal>", "coverage_next_block_bps": u64, "coverage_day_bps": u64,
///     "shortfall": "<decimal>", "members": [{"id": "0x…", "name": str,
///     "projected_gap": "<decimal>", "need": "<decimal>", "covered": "<decimal>",
///     "shortfall": "<decimal>", "basis": str, "invalid_reason": str}]}]}}
/// ```
///
/// Amounts stay decimal strings (uint256); coverage is in basis points (10000 covers the
/// need).
pub fn stress_json(
    report: Option<&pb::StressReport>,
    members: &[MemberView],
) -> Result<serde_json::Value, UnknownEnum> {
    use serde_json::json;
    let Some(r) = report else {
        return Ok(json!({ "evaluated": false, "report": null }));
    };
    let risk = r
        .risk
        .iter()
        .map(|x| {
            Ok(json!({
                "member": x.member,
                "name": member_name(members, &x.member),
                "basis": basis_name(x.basis)?,
                "invalid_reason": x.invalid_reason,
            }))
        })
        .collect::<Result<Vec<_>, UnknownEnum>>()?;
    let scenarios = r
        .scenarios
        .iter()
        .map(|s| {
            let rows = s
                .members
                .iter()
                .map(|m| {
                    Ok(json!({
                        "id": m.id,
                        "name": member_name(members, &m.id),
                        "projected_gap": m.projected_gap,
                        "need": m.need,
                        "covered": m.covered,
                        "shortfall": m.shortfall,
                        "basis": basis_name(m.basis)?,
                        "invalid_reason": m.invalid_reason,
                    }))
                })
                .collect::<Result<Vec<_>, UnknownEnum>>()?;
            Ok(json!({
                "name": s.name,
                "need": s.need,
                "payable_next_block": s.payable_next_block,
                "payable_day": s.payable_day,
                "coverage_next_block_bps": s.coverage_next_block_bps,
                "coverage_day_bps": s.coverage_day_bps,
                "shortfall": s.shortfall,
                "members": rows,
            }))
        })
        .collect::<Result<Vec<_>, UnknownEnum>>()?;
    let heads: Vec<_> = r
        .heads
        .iter()
        .map(|h| json!({ "chain_id": h.chain_id, "block_number": h.block_number }))
        .collect();
    Ok(json!({
        "evaluated": true,
        "report": {
            "evaluated_ms": r.evaluated_ms,
            "heads": heads,
            "risk": risk,
            "scenarios": scenarios,
        },
    }))
}

/// One event as a line: `<time> <kind> [subject] text`, or one-line JSON.
pub fn render_event(event: &NodeEvent, json: bool) -> Result<String, ClientError> {
    if json {
        return Ok(serde_json::to_string(event)?);
    }
    let mut line = format!("{} {:<10}", fmt_ms(event.timestamp_ms), event.kind.as_str());
    if !event.subject.is_empty() {
        let _ = write!(line, " [{}]", event.subject);
    }
    let _ = write!(line, " {}", event.text);
    Ok(line)
}

/// Pretty JSON of a serializable value.
fn pretty<T: serde::Serialize>(value: &T) -> Result<String, ClientError> {
    Ok(serde_json::to_string_pretty(value)?)
}

/// An incident's JSON, with its `id` first.
fn incident_json(incident: &IncidentView) -> Result<serde_json::Value, ClientError> {
    let mut object = serde_json::Map::new();
    object.insert("id".to_owned(), serde_json::Value::String(incident.id()));
    if let serde_json::Value::Object(fields) = serde_json::to_value(incident)? {
        object.extend(fields);
    }
    Ok(serde_json::Value::Object(object))
}

// ------------------------------------------------------------------ rendering

/// Aligned columns separated by two spaces, header first; trailing spaces trimmed.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            let _ = write!(text, "{cell:<width$}  ");
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// `key  value` lines with aligned values.
fn key_values(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        let _ = writeln!(out, "{k:<width$}  {v}");
    }
    out
}

/// `yes` / `no`.
fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// The value, or `-` when empty.
fn or_dash(s: &str) -> String {
    if s.is_empty() {
        "-".to_owned()
    } else {
        s.to_owned()
    }
}

/// The items joined by `,`, or `-` when there are none.
fn list_or_dash<T: ToString>(items: &[T]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(0),
        u32::try_from(day).unwrap_or(0),
    )
}

/// UTC time of a Unix timestamp in seconds, `YYYY-MM-DDTHH:MM:SSZ`; `-` for 0.
fn fmt_secs(secs: u64) -> String {
    if secs == 0 {
        return "-".to_owned();
    }
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// UTC time of a Unix timestamp in milliseconds (second resolution); `-` for 0.
fn fmt_ms(ms: u64) -> String {
    fmt_secs(ms / 1000)
}

/// `1d 02h 03m 04s` style.
fn fmt_uptime(secs: u64) -> String {
    let (d, h, m, s) = (
        secs / 86_400,
        (secs % 86_400) / 3600,
        (secs % 3600) / 60,
        secs % 60,
    );
    if d > 0 {
        format!("{d}d {h:02}h {m:02}m {s:02}s")
    } else if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    }
}

/// Human form of `GetStatus`.
fn render_status(s: &NodeStatus) -> String {
    let c = &s.counts;
    key_values(&[
        ("node", or_dash(&s.info.node_name)),
        ("peer id", or_dash(&s.info.peer_id)),
        ("guardian", or_dash(&s.info.guardian_address)),
        ("version", or_dash(&s.info.version)),
        ("ready", yes_no(s.ready)),
        ("uptime", fmt_uptime(s.uptime_seconds)),
        (
            "consortium",
            format!("n={} t={} p={}", s.info.n, s.info.t, s.info.p),
        ),
        (
            "peers",
            format!("{}/{} connected", c.peers_connected, c.peers_total),
        ),
        (
            "chains",
            format!("{} ({} halted)", c.chains, c.chains_halted),
        ),
        ("members", c.members.to_string()),
        (
            "incidents",
            format!("{} open / {} total", c.incidents_open, c.incidents_total),
        ),
        ("signals", format!("{} active", c.signals_active)),
        ("breakers", format!("{} active", c.breakers_active)),
        ("clock", render_clock(&s.clock)),
    ])
}

/// The clock line of `GetStatus`: the offset, and the warning when there is one.
fn render_clock(c: &ClockView) -> String {
    let offset = match c.clock_offset_ms {
        None => "no block yet".to_owned(),
        Some(ms) => format!("{:+.1} s against the chains", ms as f64 / 1000.0),
    };
    if c.clock_warning.is_empty() {
        offset
    } else {
        format!("{offset}: WARNING {}", c.clock_warning)
    }
}

/// Human form of `ListPeers`.
fn render_peers(peers: &[PeerView]) -> String {
    if peers.is_empty() {
        return "no peers\n".to_owned();
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.peer_id.clone(),
                or_dash(&p.name),
                yes_no(p.connected),
                or_dash(&p.address),
            ]
        })
        .collect();
    table(&["PEER ID", "NAME", "CONNECTED", "ADDRESS"], &rows)
}

/// Human form of `ListChains`.
fn render_chains(chains: &[ChainView]) -> String {
    if chains.is_empty() {
        return "no chains\n".to_owned();
    }
    let rows: Vec<Vec<String>> = chains
        .iter()
        .map(|c| {
            let state = match (c.halted, c.quarantined) {
                (false, false) => "ok",
                (true, false) => "halted",
                (false, true) => "quarantined",
                (true, true) => "halted,quarantined",
            };
            let mut row = vec![
                c.chain_id.to_string(),
                or_dash(&c.name),
                c.head_number.to_string(),
                c.confirmed_head.to_string(),
                fmt_secs(c.head_time),
                state.to_owned(),
            ];
            match &c.vault {
                Some(v) => row.extend([
                    v.address.clone(),
                    v.balance.clone(),
                    v.available_for_payout.clone(),
                    v.bucket_available.clone(),
                    v.reserve.clone(),
                    yes_no(v.paused),
                    format!(
                        "{}/{}#{}",
                        v.threshold, v.pause_threshold, v.guardian_set_index
                    ),
                ]),
                None => row.extend(std::iter::repeat_n("-".to_owned(), 7)),
            }
            row
        })
        .collect();
    table(
        &[
            "CHAIN",
            "NAME",
            "HEAD",
            "CONFIRMED",
            "HEAD TIME",
            "STATE",
            "VAULT",
            "BALANCE",
            "AVAILABLE",
            "BUCKET",
            "RESERVE",
            "PAUSED",
            "T/P#SET",
        ],
        &rows,
    )
}

/// Human form of `ListMembers`.
fn render_members(members: &[MemberView]) -> String {
    if members.is_empty() {
        return "no members\n".to_owned();
    }
    let rows: Vec<Vec<String>> = members
        .iter()
        .map(|m| {
            vec![
                m.id.clone(),
                or_dash(&m.name),
                m.home_chain_id.to_string(),
                yes_no(m.frozen),
                m.next_seq.to_string(),
                or_dash(&m.assets),
                or_dash(&m.liabilities),
                or_dash(&m.gap),
                or_dash(&m.cap),
                or_dash(&m.deductible),
                list_or_dash(&m.breakers),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "HOME",
            "FROZEN",
            "NEXT SEQ",
            "ASSETS",
            "LIABILITIES",
            "GAP",
            "CAP",
            "DEDUCTIBLE",
            "BREAKERS",
        ],
        &rows,
    )
}

/// `executed/total` legs.
fn legs_summary(i: &IncidentView) -> String {
    let executed = i
        .legs
        .iter()
        .filter(|l| l.status == crate::model::LegStatus::Executed)
        .count();
    format!("{executed}/{}", i.legs.len())
}

/// Human form of `ListIncidents`.
fn render_incidents(incidents: &[IncidentView]) -> String {
    if incidents.is_empty() {
        return "no incidents\n".to_owned();
    }
    let rows: Vec<Vec<String>> = incidents
        .iter()
        .map(|i| {
            vec![
                i.id(),
                i.phase.to_string(),
                i.attempt.to_string(),
                or_dash(&i.gap),
                or_dash(&i.draw_amount),
                or_dash(&i.uncovered_amount),
                legs_summary(i),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "PHASE",
            "ATTEMPT",
            "GAP",
            "DRAW",
            "UNCOVERED",
            "LEGS PAID",
        ],
        &rows,
    )
}

/// Human form of `GetIncident`.
fn render_incident(i: &IncidentView) -> String {
    let mut out = key_values(&[
        ("incident", i.id()),
        ("member", i.member.clone()),
        ("seq", i.seq.to_string()),
        ("phase", i.phase.to_string()),
        ("attempt", i.attempt.to_string()),
        ("gap", or_dash(&i.gap)),
        ("draw", or_dash(&i.draw_amount)),
        ("uncovered", or_dash(&i.uncovered_amount)),
        ("draw hash", or_dash(&i.draw_hash)),
    ]);
    out.push_str("\nlegs\n");
    if i.legs.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = i
            .legs
            .iter()
            .map(|l| {
                vec![
                    l.chain_id.to_string(),
                    l.vault.clone(),
                    l.amount.clone(),
                    l.status.to_string(),
                    or_dash(&l.tx_hash),
                ]
            })
            .collect();
        out.push_str(&table(&["CHAIN", "VAULT", "AMOUNT", "STATUS", "TX"], &rows));
    }
    out.push_str("\nattestations\n");
    if i.attestations.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = i
            .attestations
            .iter()
            .map(|a| vec![a.signer.clone(), a.digest.clone()])
            .collect();
        out.push_str(&table(&["SIGNER", "DIGEST"], &rows));
    }
    out.push_str("\ntransactions\n");
    if i.tx_hashes.is_empty() {
        out.push_str("  none\n");
    }
    for tx in &i.tx_hashes {
        let _ = writeln!(out, "  {tx}");
    }
    out.push_str("\ntimeline\n");
    if i.timeline.is_empty() {
        out.push_str("  none\n");
    } else {
        let rows: Vec<Vec<String>> = i
            .timeline
            .iter()
            .map(|t| {
                vec![
                    fmt_ms(t.timestamp_ms),
                    t.block_number
                        .map_or_else(|| "-".to_owned(), |b| b.to_string()),
                    t.what.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["TIME", "BLOCK", "WHAT"], &rows));
    }
    out
}

/// Human form of `ListSignals`.
fn render_signals(signals: &[SignalView]) -> String {
    if signals.is_empty() {
        return "no signals\n".to_owned();
    }
    let rows: Vec<Vec<String>> = signals
        .iter()
        .map(|s| {
            let state = if s.cleared {
                "cleared"
            } else if s.confirmed {
                "confirmed"
            } else {
                "raised"
            };
            vec![
                s.kind.to_string(),
                s.subject.clone(),
                state.to_owned(),
                list_or_dash(&s.raised_by),
                fmt_ms(s.first_seen_ms),
                fmt_ms(s.last_seen_ms),
                s.expires_ms.map_or_else(|| "-".to_owned(), fmt_ms),
            ]
        })
        .collect();
    table(
        &[
            "KIND",
            "SUBJECT",
            "STATE",
            "RAISED BY",
            "FIRST SEEN",
            "LAST SEEN",
            "EXPIRES",
        ],
        &rows,
    )
}

/// `executed/total` effects.
fn effects_summary(b: &BreakerView) -> String {
    let executed = b
        .effects
        .iter()
        .filter(|e| e.status == EffectStatus::Executed)
        .count();
    format!("{executed}/{}", b.effects.len())
}

/// Human form of `ListBreakers`: one row per breaker, then each breaker's effects.
fn render_breakers(breakers: &[BreakerView]) -> String {
    if breakers.is_empty() {
        return "no breakers\n".to_owned();
    }
    let rows: Vec<Vec<String>> = breakers
        .iter()
        .map(|b| {
            vec![
                b.id.clone(),
                b.kind.to_string(),
                yes_no(b.active),
                fmt_ms(b.tripped_ms),
                b.expires_ms.map_or_else(|| "-".to_owned(), fmt_ms),
                list_or_dash(&b.members_blocked),
                list_or_dash(&b.chains_quarantined),
                effects_summary(b),
                or_dash(&b.lifted_by),
                or_dash(&b.cause),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "KIND",
            "ACTIVE",
            "TRIPPED",
            "EXPIRES",
            "MEMBERS BLOCKED",
            "CHAINS QUARANTINED",
            "EFFECTS DONE",
            "ENDED BY",
            "CAUSE",
        ],
        &rows,
    );
    for b in breakers.iter().filter(|b| !b.effects.is_empty()) {
        let _ = writeln!(out, "\neffects of {}", b.id);
        let rows: Vec<Vec<String>> = b
            .effects
            .iter()
            .map(|e| {
                vec![
                    e.chain_id.to_string(),
                    or_dash(&e.action),
                    or_dash(&e.subject),
                    e.level.to_string(),
                    e.status.to_string(),
                    or_dash(&e.tx_hash),
                ]
            })
            .collect();
        out.push_str(&table(
            &["CHAIN", "ACTION", "SUBJECT", "LEVEL", "STATUS", "TX"],
            &rows,
        ));
    }
    out
}

/// The first 10 characters of an id (`0x` + 8 hex digits) and `…`, or the id when short.
fn short_id(id: &str) -> String {
    const SHOWN: usize = 10;
    if id.chars().count() <= SHOWN {
        return id.to_owned();
    }
    let mut short: String = id.chars().take(SHOWN).collect();
    short.push('…');
    short
}

/// Approvals per target vault: `<chain>:<signatures>/<quorum>` joined by spaces.
fn approvals_summary(p: &ProposalView) -> String {
    if p.chains.is_empty() {
        return "-".to_owned();
    }
    p.chains
        .iter()
        .map(|c| format!("{}:{}/{}", c.chain_id, c.signatures, c.quorum))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Human form of `ListProposals`: one row per proposal (short id), then for each its full
/// id and digest on lines of their own (to copy into `approve`), its parameters and its
/// state per target vault. Text the node relays (summary, proposer, reason) is escaped.
fn render_proposals(proposals: &[ProposalView]) -> String {
    if proposals.is_empty() {
        return "no proposals\n".to_owned();
    }
    let rows: Vec<Vec<String>> = proposals
        .iter()
        .map(|p| {
            vec![
                short_id(&p.id),
                or_dash(&Escaped(&p.kind).to_string()),
                p.status.to_string(),
                approvals_summary(p),
                yes_no(p.approved_here),
                or_dash(&Escaped(&p.proposer).to_string()),
                fmt_ms(p.proposed_at_ms),
                fmt_secs(p.deadline_s),
            ]
        })
        .collect();
    let mut out = table(
        &[
            "ID",
            "KIND",
            "STATUS",
            "APPROVALS",
            "APPROVED HERE",
            "PROPOSER",
            "PROPOSED",
            "DEADLINE",
        ],
        &rows,
    );
    for p in proposals {
        let _ = writeln!(out, "\nproposal {}", short_id(&p.id));
        let mut pairs = vec![
            ("id", or_dash(&p.id)),
            ("digest", or_dash(&p.digest)),
            ("summary", or_dash(&Escaped(&p.summary).to_string())),
        ];
        if !p.reason.is_empty() {
            pairs.push(("reason", Escaped(&p.reason).to_string()));
        }
        for line in key_values(&pairs).lines() {
            let _ = writeln!(out, "  {line}");
        }
        if !p.chains.is_empty() {
            let rows: Vec<Vec<String>> = p
                .chains
                .iter()
                .map(|c| {
                    vec![
                        c.chain_id.to_string(),
                        or_dash(&Escaped(&c.chain_name).to_string()),
                        c.status.to_string(),
                        format!("{}/{}", c.signatures, c.quorum),
                        or_dash(&c.tx_hash),
                    ]
                })
                .collect();
            for line in table(&["CHAIN", "NAME", "STATUS", "SIGNATURES", "TX"], &rows).lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
    out
}

/// A coverage in basis points as a ratio with two decimals, rounded down (`8500` → `0.85`).
fn fmt_coverage(bps: u64) -> String {
    format!("{}.{:02}", bps / 10_000, bps % 10_000 / 100)
}

/// True when a decimal amount is not zero.
fn nonzero(amount: &str) -> bool {
    amount.bytes().any(|b| b != b'0')
}

/// Human form of `GetStressReport`: when and where it was evaluated, one row per scenario,
/// then the uncovered members of each scenario and the members whose risk view was refused.
fn render_stress(
    report: Option<&pb::StressReport>,
    members: &[MemberView],
) -> Result<String, UnknownEnum> {
    let Some(r) = report else {
        return Ok(
            "no stress report yet (no scenario configured, or no confirmed head read yet)\n"
                .to_owned(),
        );
    };
    let heads: Vec<String> = r
        .heads
        .iter()
        .map(|h| format!("{}@{}", h.chain_id, h.block_number))
        .collect();
    let mut out = key_values(&[
        ("evaluated", fmt_ms(r.evaluated_ms)),
        ("heads", list_or_dash(&heads)),
    ]);
    out.push('\n');
    if r.scenarios.is_empty() {
        out.push_str("no scenarios\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .scenarios
            .iter()
            .map(|s| {
                let uncovered = s.members.iter().filter(|m| nonzero(&m.shortfall)).count();
                vec![
                    s.name.clone(),
                    s.need.clone(),
                    s.payable_next_block.clone(),
                    s.payable_day.clone(),
                    fmt_coverage(s.coverage_next_block_bps),
                    fmt_coverage(s.coverage_day_bps),
                    s.shortfall.clone(),
                    uncovered.to_string(),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "SCENARIO",
                "NEED",
                "PAYABLE NEXT BLOCK",
                "PAYABLE 24H",
                "COVERAGE NEXT BLOCK",
                "COVERAGE 24H",
                "SHORTFALL",
                "UNCOVERED",
            ],
            &rows,
        ));
    }
    for s in &r.scenarios {
        let uncovered: Vec<&pb::StressMember> =
            s.members.iter().filter(|m| nonzero(&m.shortfall)).collect();
        if uncovered.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\nuncovered under {}", s.name);
        let rows = uncovered
            .iter()
            .map(|m| {
                Ok(vec![
                    m.id.clone(),
                    or_dash(member_name(members, &m.id)),
                    m.projected_gap.clone(),
                    m.need.clone(),
                    m.covered.clone(),
                    m.shortfall.clone(),
                    basis_name(m.basis)?.to_owned(),
                ])
            })
            .collect::<Result<Vec<_>, UnknownEnum>>()?;
        out.push_str(&table(
            &[
                "MEMBER",
                "NAME",
                "PROJECTED GAP",
                "NEED",
                "COVERED",
                "SHORTFALL",
                "BASIS",
            ],
            &rows,
        ));
    }
    let mut refused = Vec::new();
    for x in &r.risk {
        if convert::basis_from_pb(x.basis)? == BasisKind::InvalidView {
            refused.push(vec![
                x.member.clone(),
                or_dash(member_name(members, &x.member)),
                // Read from a member's contract: escaped so it cannot rewrite the terminal.
                or_dash(&Escaped(&x.invalid_reason).to_string()),
            ]);
        }
    }
    if !refused.is_empty() {
        out.push_str("\nrisk views refused (stressed from their equity history)\n");
        out.push_str(&table(&["MEMBER", "NAME", "REASON"], &refused));
    }
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn dates_render_in_utc() {
        assert_eq!(fmt_secs(0), "-");
        assert_eq!(fmt_secs(1), "1970-01-01T00:00:01Z");
        assert_eq!(fmt_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(fmt_secs(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(fmt_ms(1_709_251_200_123), "2024-03-01T00:00:00Z");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "LONG HEADER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(t, "A          LONG HEADER\nwide cell  x\ny          z\n");
        assert_eq!(fmt_uptime(3723), "1h 02m 03s");
        assert_eq!(normalize_url("127.0.0.1:1"), "http://127.0.0.1:1");
    }

    #[test]
    fn coverage_renders_as_a_floored_ratio() {
        assert_eq!(fmt_coverage(8_500), "0.85");
        assert_eq!(fmt_coverage(9_999), "0.99");
        assert_eq!(fmt_coverage(10_000), "1.00");
        assert_eq!(fmt_coverage(1_000_000), "100.00");
        assert!(nonzero("10") && !nonzero("0") && !nonzero("000"));
    }
}
