//! The gRPC server: `backstop.v1.Backstop` over an [`ApiState`], plus the standard health
//! service and server reflection (v1 and v1alpha).
//!
//! Invariants kept here:
//! - read calls only read the state; they never block the runtime for longer than a clone
//!   under a read lock;
//! - admin calls reach the runtime only with a valid `authorization: Bearer <token>`
//!   (compared in constant time for a given length) and with every field validated; with
//!   no token configured they are refused with PERMISSION_DENIED, and the runtime never
//!   sees them;
//! - requests are bounded: at most [`MAX_REQUEST_BYTES`] per message, string fields
//!   length-checked before parsing, a per-connection concurrency limit and at most
//!   [`ServerOptions::max_concurrent_streams`] streams per connection;
//! - connections are bounded ([`ServerOptions`], see `conn`): at most
//!   [`ServerOptions::max_connections`] at once (a new one takes the slot of an unused one,
//!   or is closed at once when every slot has a request in flight), closed when the client
//!   does not finish the HTTP/2 handshake within [`ServerOptions::handshake_timeout`] or
//!   has no request in flight for [`ServerOptions::idle_timeout`]; every socket has
//!   `TCP_NODELAY`; running out of descriptors pauses accepting instead of spinning;
//! - a malformed request message (undecodable, not exactly one uncompressed message, an
//!   enum field outside its enum) gets INVALID_ARGUMENT before any service sees it (see
//!   `ingress`);
//! - the log cannot be flooded or forged from outside: refused admin calls are logged at
//!   most once per [`ServerOptions::log_interval`] with the count held back (all are
//!   counted in `backstop_api_admin_refused_total`), and text from requests or echoed by
//!   the runtime is logged escaped ([`crate::logsafe::Escaped`]);
//! - an event stream ends when the server shuts down (so graceful shutdown never waits on
//!   a subscriber) or when its client goes away; a subscriber that falls more than the
//!   broadcast capacity behind gets one `EVENTS_LOST` event with the count and continues
//!   with the newest events (the count also goes to [`ApiState::events_lost`]);
//! - the health service reports `backstop.v1.Backstop` SERVING exactly while the state is
//!   ready, NOT_SERVING otherwise.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use backstop_proto::v1 as pb;
use backstop_proto::v1::backstop_server::{Backstop, BackstopServer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::admin::{
    AdminCommand, AdminError, AdminRequest, GovernanceChange, REPLY_TIMEOUT, check_guardian_count,
    check_guardian_set,
};
use crate::conn::{Acceptor, Registry, Timeouts};
use crate::convert;
use crate::ingress::Ingress;
use crate::logsafe::{Escaped, LogLimiter};
use crate::metrics::API_SERVER;
use crate::model::{
    ApiState, EventKind, FieldError, IncidentId, NodeEvent, parse_address, parse_bytes32,
    parse_u128, parse_uint256,
};

/// Largest request message accepted, in bytes.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Longest string accepted in an identifier or amount field (subject, member, address,
/// incident id, decimal amount).
const MAX_ID_FIELD: usize = 128;

/// Concurrent requests per connection.
const CONCURRENCY_PER_CONNECTION: usize = 64;

/// Events buffered per subscriber between the broadcast and the HTTP/2 stream.
const STREAM_BUFFER: usize = 64;

/// Largest header block a client may send, in bytes.
const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// Limits and timeouts of the gRPC server. [`ServerOptions::default`] gives the values
/// of the `DEFAULT_*` constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// Connections open at once. When all are taken, a new connection takes the slot of
    /// the one unused the longest (no request in flight; those that never finished the
    /// HTTP/2 handshake first), or is closed at once if every slot has a request in
    /// flight.
    pub max_connections: usize,
    /// Time a new connection has to send the HTTP/2 preface and its SETTINGS frame.
    pub handshake_timeout: Duration,
    /// A connection with no request in flight for this long is closed (clients reconnect
    /// on their next call).
    pub idle_timeout: Duration,
    /// Time a request message has to arrive once its headers did.
    pub request_read_timeout: Duration,
    /// HTTP/2 streams (requests) open at once per connection.
    pub max_concurrent_streams: u32,
    /// Interval of HTTP/2 keepalive pings.
    pub keepalive_interval: Duration,
    /// Time a keepalive ping has to be acknowledged before the connection is closed.
    pub keepalive_timeout: Duration,
    /// At most one line per interval for events an outsider can repeat at will (refused
    /// admin calls, failed accepts, connections refused at the cap).
    pub log_interval: Duration,
}

/// Default of [`ServerOptions::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;
/// Default of [`ServerOptions::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ServerOptions::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default of [`ServerOptions::request_read_timeout`].
pub const DEFAULT_REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`ServerOptions::max_concurrent_streams`].
pub const DEFAULT_MAX_CONCURRENT_STREAMS: u32 = 64;
/// Default of [`ServerOptions::keepalive_interval`].
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
/// Default of [`ServerOptions::keepalive_timeout`].
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Default of [`ServerOptions::log_interval`].
pub const DEFAULT_LOG_INTERVAL: Duration = Duration::from_secs(10);

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            request_read_timeout: DEFAULT_REQUEST_READ_TIMEOUT,
            max_concurrent_streams: DEFAULT_MAX_CONCURRENT_STREAMS,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            log_interval: DEFAULT_LOG_INTERVAL,
        }
    }
}

/// Why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The reflection service could not load the descriptor sets.
    #[error("server reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    /// The transport failed.
    #[error("gRPC transport: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the operator API on `listener` until `shutdown` completes, then finishes the
/// requests in flight (event streams end at once) and returns.
///
/// `admin` carries validated admin requests to the runtime; `token` is the admin bearer
/// token (`None` or empty: admin calls disabled). Limits and timeouts are the defaults of
/// [`ServerOptions`]; see [`serve_with`].
pub async fn serve(
    listener: TcpListener,
    api: ApiState,
    admin: mpsc::Sender<AdminCommand>,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiError> {
    serve_with(
        listener,
        api,
        admin,
        token,
        ServerOptions::default(),
        shutdown,
    )
    .await
}

/// [`serve`] with the given limits and timeouts.
pub async fn serve_with(
    listener: TcpListener,
    api: ApiState,
    admin: mpsc::Sender<AdminCommand>,
    token: Option<String>,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ApiError> {
    let local = listener.local_addr().ok();
    let token = match token {
        Some(t) if !t.is_empty() => Some(Arc::<[u8]>::from(t.into_bytes())),
        Some(_) => {
            tracing::warn!("the configured admin token is empty: admin calls are disabled");
            None
        }
        None => None,
    };
    if token.is_none() {
        tracing::info!("no admin token configured: admin calls are disabled");
    }

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let (reporter, health) = tonic_health::server::health_reporter();
    // The first status is set before the port is served, so that no early Check finds the
    // service unregistered.
    let ready = *api.watch_ready().borrow();
    if ready {
        reporter.set_serving::<BackstopServer<Service>>().await;
    } else {
        reporter.set_not_serving::<BackstopServer<Service>>().await;
    }
    let health_task = AbortOnDrop(tokio::spawn(follow_readiness(reporter, api.watch_ready())));

    let (stop_tx, stop_rx) = watch::channel(false);
    let service = Service {
        api,
        admin,
        token,
        stop: stop_rx,
        refused_log: LogLimiter::new(options.log_interval),
    };
    let backstop = BackstopServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES);
    let routes = tonic::service::Routes::new(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(backstop)
        .prepare();
    let ingress = Ingress::new(routes, options.request_read_timeout);
    let registry = Arc::new(Registry::new(options.max_connections));
    let acceptor = Acceptor::new(
        listener,
        Arc::clone(&registry),
        Timeouts {
            handshake: options.handshake_timeout,
            idle: options.idle_timeout,
        },
        options.log_interval,
    );

    tracing::info!(addr = ?local, max_connections = options.max_connections, "operator API listening");
    let result = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(CONCURRENCY_PER_CONNECTION)
        .max_concurrent_streams(options.max_concurrent_streams)
        .http2_max_header_list_size(MAX_HEADER_LIST_BYTES)
        .http2_keepalive_interval(Some(options.keepalive_interval))
        .http2_keepalive_timeout(Some(options.keepalive_timeout))
        .serve_with_incoming_shutdown(ingress, acceptor, async move {
            shutdown.await;
            tracing::info!("operator API shutting down");
            stop_tx.send_replace(true);
            registry.close_unstarted();
        })
        .await;
    drop(health_task);
    result?;
    tracing::info!(addr = ?local, "operator API stopped");
    Ok(())
}

/// Aborts the task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Keeps the health status of the Backstop service equal to the ready flag.
async fn follow_readiness(
    reporter: tonic_health::server::HealthReporter,
    mut ready: watch::Receiver<bool>,
) {
    loop {
        let now = *ready.borrow_and_update();
        if now {
            reporter.set_serving::<BackstopServer<Service>>().await;
        } else {
            reporter.set_not_serving::<BackstopServer<Service>>().await;
        }
        tracing::debug!(ready = now, "health status updated");
        if ready.changed().await.is_err() {
            return;
        }
    }
}

/// The `backstop.v1.Backstop` implementation.
struct Service {
    api: ApiState,
    admin: mpsc::Sender<AdminCommand>,
    token: Option<Arc<[u8]>>,
    stop: watch::Receiver<bool>,
    /// Refused admin calls: one line per interval.
    refused_log: LogLimiter,
}

/// INVALID_ARGUMENT carrying a field error.
fn invalid(e: FieldError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// INVALID_ARGUMENT for a `kind` that is not a signal kind (as read on the wire).
pub(crate) fn not_a_signal_kind(value: i64) -> Status {
    Status::invalid_argument(format!(
        "kind: {value} is not a signal kind (1..={}, see SignalKind)",
        crate::model::SignalKind::ALL.len()
    ))
}

/// Rejects identifier fields longer than [`MAX_ID_FIELD`] before parsing them.
fn bounded<'a>(field: &'static str, s: &'a str) -> Result<&'a str, Status> {
    if s.len() > MAX_ID_FIELD {
        return Err(invalid(FieldError::TooLong {
            field,
            max: MAX_ID_FIELD,
            len: s.len(),
        }));
    }
    Ok(s)
}

/// Parses a bytes32 request field.
fn bytes32_field(field: &'static str, s: &str) -> Result<[u8; 32], Status> {
    parse_bytes32(field, bounded(field, s)?).map_err(invalid)
}

/// Parses an address request field.
fn address_field(field: &'static str, s: &str) -> Result<[u8; 20], Status> {
    parse_address(field, bounded(field, s)?).map_err(invalid)
}

/// Parses a decimal uint128 request field.
fn u128_field(field: &'static str, s: &str) -> Result<u128, Status> {
    parse_u128(field, bounded(field, s)?).map_err(invalid)
}

/// Parses a decimal uint256 request field into big-endian bytes.
fn uint256_field(field: &'static str, s: &str) -> Result<[u8; 32], Status> {
    parse_uint256(field, bounded(field, s)?).map_err(invalid)
}

/// Parses the change of a `ProposeGovernance` request: every field decoded, and a guardian
/// set checked in full here (its thresholds before they are narrowed to `u8`); the other
/// rules are checked with the whole request ([`AdminRequest::validate`]).
fn change_from_pb(
    change: Option<pb::propose_governance_request::Change>,
) -> Result<GovernanceChange, Status> {
    use pb::propose_governance_request::Change;
    let Some(change) = change else {
        return Err(invalid(FieldError::Missing { field: "change" }));
    };
    Ok(match change {
        Change::SetMember(c) => GovernanceChange::SetMember {
            member: bytes32_field("member", &c.member)?,
            recipient: address_field("recipient", &c.recipient)?,
            home_chain_id: c.home_chain_id,
            cap: u128_field("cap", &c.cap)?,
            deductible: u128_field("deductible", &c.deductible)?,
            coverage_limit: u128_field("coverage_limit", &c.coverage_limit)?,
            coverage_window_s: c.coverage_window_s,
        },
        Change::DisableMember(c) => GovernanceChange::DisableMember {
            member: bytes32_field("member", &c.member)?,
        },
        Change::SetLimits(c) => GovernanceChange::SetLimits {
            bucket_capacity: u128_field("bucket_capacity", &c.bucket_capacity)?,
            refill_per_second: u128_field("refill_per_second", &c.refill_per_second)?,
            reserve_floor: uint256_field("reserve_floor", &c.reserve_floor)?,
            withdraw_cooldown_s: c.withdraw_cooldown_s,
            emergency_duration_s: c.emergency_duration_s,
        },
        Change::RotateGuardians(c) => {
            check_guardian_count(c.guardians.len()).map_err(invalid)?;
            let guardians = c
                .guardians
                .iter()
                .map(|g| address_field("guardians", g))
                .collect::<Result<Vec<_>, _>>()?;
            check_guardian_set(&guardians, c.threshold, c.pause_threshold).map_err(invalid)?;
            // Both are at most MAX_GUARDIANS now.
            let narrow = |field: &'static str, v: u32| {
                u8::try_from(v).map_err(|_| {
                    invalid(FieldError::Invalid {
                        field,
                        reason: format!("must fit 8 bits, got {v}"),
                    })
                })
            };
            GovernanceChange::RotateGuardians {
                guardians,
                threshold: narrow("threshold", c.threshold)?,
                pause_threshold: narrow("pause_threshold", c.pause_threshold)?,
            }
        }
    })
}

impl Service {
    /// Counts a refused admin call and logs it, at most once per log interval (with the
    /// number of refusals not logged since the previous line).
    fn refused(&self, method: &str, peer: Option<std::net::SocketAddr>, reason: &'static str) {
        API_SERVER.admin_refused(reason);
        if let Some(suppressed) = self.refused_log.check() {
            tracing::warn!(
                method,
                ?peer,
                reason,
                suppressed,
                "admin call refused (at most one line per interval; all are counted in backstop_api_admin_refused_total)"
            );
        }
    }

    /// Checks the bearer token of an admin call.
    fn authorize<T>(&self, method: &str, request: &Request<T>) -> Result<(), Status> {
        let peer = request.remote_addr();
        let Some(token) = &self.token else {
            self.refused(method, peer, "disabled");
            return Err(Status::permission_denied(
                "admin calls are disabled on this node: no admin token is configured",
            ));
        };
        let unauthenticated = |reason: &'static str, why: &str| {
            self.refused(method, peer, reason);
            Status::unauthenticated(format!("admin call refused: {why}"))
        };
        let Some(value) = request.metadata().get("authorization") else {
            return Err(unauthenticated(
                "missing_token",
                "missing `authorization: Bearer <token>` metadata",
            ));
        };
        let value = value.to_str().map_err(|_| {
            unauthenticated(
                "malformed_token",
                "authorization metadata is not printable ASCII",
            )
        })?;
        let presented = match value.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
            _ => {
                return Err(unauthenticated(
                    "malformed_token",
                    "authorization is not `Bearer <token>`",
                ));
            }
        };
        if bool::from(presented.as_bytes().ct_eq(token)) {
            Ok(())
        } else {
            Err(unauthenticated("wrong_token", "wrong admin token"))
        }
    }

    /// Sends a validated request to the runtime and waits for its reply.
    async fn dispatch(&self, request: AdminRequest) -> Result<Response<pb::AdminResponse>, Status> {
        request.validate().map_err(invalid)?;
        if !self.api.is_ready() {
            return Err(Status::unavailable(
                "the node is not ready yet; retry once GetStatus reports ready",
            ));
        }
        self.check_known(&request)?;
        let method = request.method();
        // AdminRequest's Display escapes the free text of the request.
        let what = request.to_string();
        let (reply_tx, reply_rx) = oneshot::channel();
        self.admin
            .try_send(AdminCommand {
                request,
                reply: reply_tx,
            })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => {
                    Status::resource_exhausted("the admin queue is full; retry later")
                }
                mpsc::error::TrySendError::Closed(_) => {
                    Status::unavailable("the node runtime no longer accepts admin requests")
                }
            })?;
        tracing::info!(method, request = %what, "admin request sent to the runtime");
        match tokio::time::timeout(REPLY_TIMEOUT, reply_rx).await {
            Err(_) => Err(Status::deadline_exceeded(format!(
                "the node runtime did not answer within {}s",
                REPLY_TIMEOUT.as_secs()
            ))),
            Ok(Err(_)) => Err(Status::unavailable(
                "the node runtime dropped the request without answering",
            )),
            Ok(Ok(Err(e))) => {
                tracing::warn!(method, request = %what, error = %Escaped(&e.to_string()), "admin request not started");
                Err(match e {
                    AdminError::Rejected(m) => Status::failed_precondition(m),
                    AdminError::NotFound(m) => Status::not_found(m),
                    AdminError::Unavailable(m) => Status::unavailable(m),
                    AdminError::Internal(m) => Status::internal(m),
                })
            }
            Ok(Ok(Ok(started))) => {
                tracing::info!(method, request = %what, started = %Escaped(&started), "admin request started");
                Ok(Response::new(pb::AdminResponse { started }))
            }
        }
    }

    /// NOT_FOUND for chains and members the node does not know.
    fn check_known(&self, request: &AdminRequest) -> Result<(), Status> {
        let chain = match request {
            AdminRequest::Unfreeze { chain_id, .. } => *chain_id,
            AdminRequest::Unpause { chain_id } | AdminRequest::ClearAlert { chain_id, .. } => {
                Some(*chain_id)
            }
            AdminRequest::Propose { chain_id, .. } => *chain_id,
            // A proposal is looked up by the runtime: the list shown may lag it.
            AdminRequest::RaiseSignal { .. } | AdminRequest::Approve { .. } => None,
        };
        let member = match request {
            AdminRequest::Unfreeze { member, .. } => Some(*member),
            _ => None,
        };
        self.api.read(|m| {
            if let Some(c) = chain
                && !m.chains.iter().any(|x| x.chain_id == c)
            {
                return Err(Status::not_found(format!(
                    "chain {c} is not configured on this node"
                )));
            }
            if let Some(id) = member
                && !m
                    .members
                    .iter()
                    .any(|x| parse_bytes32("member", &x.id).is_ok_and(|b| b == id))
            {
                return Err(Status::not_found(format!(
                    "member {} is not a consortium member",
                    crate::model::to_hex(&id)
                )));
            }
            Ok(())
        })
    }
}

/// Stream of events for one subscriber.
type EventStream = Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send + 'static>>;

/// Forwards broadcast events to one subscriber until it leaves or the server stops.
async fn forward_events(
    api: ApiState,
    mut events: broadcast::Receiver<NodeEvent>,
    out: mpsc::Sender<Result<pb::Event, Status>>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let event = tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = out.closed() => return,
            received = events.recv() => match received {
                Ok(event) => event,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    api.record_lost(n);
                    tracing::warn!(lost = n, "event subscriber too slow: events dropped");
                    NodeEvent::now(
                        EventKind::EventsLost,
                        "",
                        format!("{n} events were dropped because this subscriber read too slowly"),
                    )
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        };
        if out.send(Ok(convert::event_to_pb(event))).await.is_err() {
            return;
        }
    }
}

#[tonic::async_trait]
impl Backstop for Service {
    async fn get_status(
        &self,
        _request: Request<pb::GetStatusRequest>,
    ) -> Result<Response<pb::GetStatusResponse>, Status> {
        Ok(Response::new(pb::GetStatusResponse {
            status: Some(convert::status_to_pb(self.api.status())),
        }))
    }

    async fn list_peers(
        &self,
        _request: Request<pb::ListPeersRequest>,
    ) -> Result<Response<pb::ListPeersResponse>, Status> {
        let peers = self.api.read(|m| m.peers.clone());
        Ok(Response::new(pb::ListPeersResponse {
            peers: peers.into_iter().map(convert::peer_to_pb).collect(),
        }))
    }

    async fn list_chains(
        &self,
        _request: Request<pb::ListChainsRequest>,
    ) -> Result<Response<pb::ListChainsResponse>, Status> {
        let chains = self.api.read(|m| m.chains.clone());
        Ok(Response::new(pb::ListChainsResponse {
            chains: chains.into_iter().map(convert::chain_to_pb).collect(),
        }))
    }

    async fn list_members(
        &self,
        _request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let members = self.api.read(|m| m.members.clone());
        Ok(Response::new(pb::ListMembersResponse {
            members: members.into_iter().map(convert::member_to_pb).collect(),
        }))
    }

    async fn list_incidents(
        &self,
        request: Request<pb::ListIncidentsRequest>,
    ) -> Result<Response<pb::ListIncidentsResponse>, Status> {
        let open_only = request.get_ref().open_only;
        let incidents = self.api.read(|m| {
            m.incidents
                .iter()
                .filter(|i| !open_only || i.phase != crate::model::IncidentPhase::Closed)
                .cloned()
                .collect::<Vec<_>>()
        });
        Ok(Response::new(pb::ListIncidentsResponse {
            incidents: incidents.into_iter().map(convert::incident_to_pb).collect(),
        }))
    }

    async fn get_incident(
        &self,
        request: Request<pb::GetIncidentRequest>,
    ) -> Result<Response<pb::GetIncidentResponse>, Status> {
        let raw = bounded("id", &request.get_ref().id)?;
        let id: IncidentId = raw.parse().map_err(invalid)?;
        match self.api.incident(&id) {
            Some(incident) => Ok(Response::new(pb::GetIncidentResponse {
                incident: Some(convert::incident_to_pb(incident)),
            })),
            None => Err(Status::not_found(format!(
                "no incident {id} on this node (it keeps every open incident and only the \
                 last closed ones)"
            ))),
        }
    }

    async fn list_signals(
        &self,
        _request: Request<pb::ListSignalsRequest>,
    ) -> Result<Response<pb::ListSignalsResponse>, Status> {
        let signals = self.api.read(|m| m.signals.clone());
        Ok(Response::new(pb::ListSignalsResponse {
            signals: signals.into_iter().map(convert::signal_to_pb).collect(),
        }))
    }

    async fn list_breakers(
        &self,
        request: Request<pb::ListBreakersRequest>,
    ) -> Result<Response<pb::ListBreakersResponse>, Status> {
        let breakers = self.api.breakers(request.get_ref().active_only);
        Ok(Response::new(pb::ListBreakersResponse {
            breakers: breakers.into_iter().map(convert::breaker_to_pb).collect(),
        }))
    }

    async fn get_stress_report(
        &self,
        _request: Request<pb::GetStressReportRequest>,
    ) -> Result<Response<pb::GetStressReportResponse>, Status> {
        let report = self.api.stress();
        Ok(Response::new(convert::stress_response_to_pb(
            report.as_deref(),
        )))
    }

    async fn list_proposals(
        &self,
        _request: Request<pb::ListProposalsRequest>,
    ) -> Result<Response<pb::ListProposalsResponse>, Status> {
        let proposals = self.api.proposals();
        Ok(Response::new(pb::ListProposalsResponse {
            proposals: proposals.into_iter().map(convert::proposal_to_pb).collect(),
        }))
    }

    type StreamEventsStream = EventStream;

    async fn stream_events(
        &self,
        request: Request<pb::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        if *self.stop.borrow() {
            return Err(Status::unavailable("the node is shutting down"));
        }
        let events = self.api.subscribe();
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tracing::debug!(peer = ?request.remote_addr(), "event subscriber joined");
        tokio::spawn(forward_events(
            self.api.clone(),
            events,
            tx,
            self.stop.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn raise_signal(
        &self,
        request: Request<pb::RaiseSignalRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        self.authorize("RaiseSignal", &request)?;
        let r = request.into_inner();
        let kind =
            convert::kind_from_pb(r.kind).map_err(|_| not_a_signal_kind(i64::from(r.kind)))?;
        let subject = bytes32_field("subject", &r.subject)?;
        self.dispatch(AdminRequest::RaiseSignal {
            kind,
            subject,
            reason: r.reason,
        })
        .await
    }

    async fn request_unfreeze(
        &self,
        request: Request<pb::RequestUnfreezeRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        self.authorize("RequestUnfreeze", &request)?;
        let r = request.into_inner();
        let member = bytes32_field("member", &r.member)?;
        self.dispatch(AdminRequest::Unfreeze {
            chain_id: r.chain_id,
            member,
        })
        .await
    }

    async fn request_unpause(
        &self,
        request: Request<pb::RequestUnpauseRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        self.authorize("RequestUnpause", &request)?;
        let r = request.into_inner();
        self.dispatch(AdminRequest::Unpause {
            chain_id: r.chain_id,
        })
        .await
    }

    async fn request_alert_clear(
        &self,
        request: Request<pb::RequestAlertClearRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        self.authorize("RequestAlertClear", &request)?;
        let r = request.into_inner();
        let subject = bytes32_field("subject", &r.subject)?;
        self.dispatch(AdminRequest::ClearAlert {
            chain_id: r.chain_id,
            subject,
        })
        .await
    }

    async fn propose_governance(
        &self,
        request: Request<pb::ProposeGovernanceRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        self.authorize("ProposeGovernance", &request)?;
        let r = request.into_inner();
        let change = change_from_pb(r.change)?;
        self.dispatch(AdminRequest::Propose {
            chain_id: r.chain_id,
            change,
        })
        .await
    }

    async fn approve_proposal(
        &self,
        request: Request<pb::ApproveProposalRequest>,
    ) -> Result<Response<pb::AdminResponse>, Status> {
        self.authorize("ApproveProposal", &request)?;
        let r = request.into_inner();
        let id = bytes32_field("id", &r.id)?;
        let digest = bytes32_field("digest", &r.digest)?;
        self.dispatch(AdminRequest::Approve { id, digest }).await
    }
}
