//! Operator API of a Backstop node: the gRPC service `backstop.v1.Backstop`, its CLI
//! client and the Prometheus metrics endpoint.
//!
//! The node's runtime owns an [`ApiState`] and keeps it current (identity, peers, chains,
//! members, incidents, signals, circuit breakers, governance proposals, readiness) and
//! publishes [`NodeEvent`]s on it; it also receives validated [`AdminCommand`]s from the bounded admin queue
//! ([`admin::channel`]) and answers each once. [`serve`] runs the gRPC server (with the standard health service
//! and server reflection) over that state; it never changes the state itself;
//! [`serve_with`] does the same with explicit [`ServerOptions`] (connection cap, handshake,
//! idle and read timeouts, streams per connection, keepalive, log interval).
//! [`Metrics`] and [`serve_metrics`] expose Prometheus metrics over HTTP, and on the same
//! port the read-only operator [`dashboard`] (a web page polling the state as JSON). The
//! [`client`] module is what the CLI uses to query a node and print the answers.
//!
//! Modules:
//! - [`model`]: the data shown and the shared [`ApiState`] handle;
//! - [`admin`]: admin requests and their queue to the runtime;
//! - [`server`]: the gRPC server (its connection handling and request screening are in
//!   the private modules `conn` and `ingress`);
//! - [`logsafe`]: escaping of untrusted text and rate limiting of log lines;
//! - [`metrics`]: the metrics registry and HTTP endpoint;
//! - [`dashboard`]: the operator web page and its JSON, served by the metrics endpoint;
//! - [`client`]: queries and admin calls for the CLI, rendered as tables or JSON.
//!
//! The crate talks to no chain and no peer. Every hash, address and amount is already a
//! string in the model, except the stress report, kept as the evaluation made it
//! (`backstop_stress::StressReport`, shared) and rendered only when asked for.

pub mod admin;
pub mod client;
mod conn;
mod convert;
pub mod dashboard;
pub mod fuzz;
mod ingress;
pub mod logsafe;
pub mod metrics;
pub mod model;
pub mod server;

pub use admin::{AdminCommand, AdminError, AdminReply, AdminRequest, GovernanceChange};
pub use client::{ClientError, Query};
pub use metrics::{Metrics, MetricsError, serve_metrics};
pub use model::{
    ApiState, AttestationView, BreakerEffectView, BreakerKind, BreakerView, ChainView,
    EffectStatus, EventKind, IncidentId, IncidentPhase, IncidentView, LegStatus, LegView,
    MemberView, Model, NodeEvent, NodeInfo, NodeStatus, PeerView, ProposalChainStatus,
    ProposalChainView, ProposalStatus, ProposalView, SignalKind, SignalView, StatusCounts,
    TimelineEntry, VaultView,
};
pub use server::{ApiError, ServerOptions, serve, serve_with};

/// The generated `backstop.v1` protobuf types, server and client.
pub use backstop_proto::v1 as proto;
