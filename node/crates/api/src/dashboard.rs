//! The operator dashboard: a read-only web page served on the metrics port, and the JSON
//! it polls.
//!
//! Paths ([`Page::of`]): `/` and `/dashboard` give the page, `/dashboard.js` and
//! `/dashboard.css` its script and style (embedded from `assets/` at build time), and
//! [`JSON_PATH`] the node's view ([`DashboardView`]: the [`Model`] with incident ids, counts,
//! uptime and the chains quarantined). The metrics endpoint routes requests here
//! ([`crate::metrics::serve_metrics`]).
//!
//! Invariants kept here:
//! - the page loads nothing from elsewhere and runs no inline script: every response carries
//!   `Content-Security-Policy: default-src 'self'` and `X-Content-Type-Options: nosniff`;
//! - text from chains and peers reaches the page only as JSON, and the script inserts it
//!   with `textContent`, never as markup;
//! - the JSON is never cached (`Cache-Control: no-store`) and is built from a snapshot, so
//!   a request holds the model's read lock only for a clone.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use serde::Serialize;

use crate::model::{
    ApiState, BreakerView, ChainView, ClockView, IncidentView, MemberView, Model, NodeInfo,
    PeerView, SignalView, StatusCounts,
};

/// Path of the JSON the page polls.
pub const JSON_PATH: &str = "/api/v1/dashboard";

/// The policy every dashboard response carries: same-origin resources only, no inline script.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'";

const PAGE_HTML: &str = include_str!("../assets/dashboard.html");
const PAGE_JS: &str = include_str!("../assets/dashboard.js");
const PAGE_CSS: &str = include_str!("../assets/dashboard.css");

/// What a dashboard path serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The HTML page.
    Html,
    /// Its script.
    Script,
    /// Its style sheet.
    Style,
    /// The node's view as JSON ([`DashboardView`]).
    Json,
}

impl Page {
    /// The page served at `path`, if any.
    pub fn of(path: &str) -> Option<Self> {
        match path {
            "/" | "/dashboard" => Some(Self::Html),
            "/dashboard.js" => Some(Self::Script),
            "/dashboard.css" => Some(Self::Style),
            JSON_PATH => Some(Self::Json),
            _ => None,
        }
    }
}

/// An incident with its id (`<member>:<seq>`, as the API and CLI write it).
#[derive(Debug, Serialize)]
pub struct IncidentEntry<'a> {
    /// [`IncidentView::id`].
    pub id: String,
    /// The incident.
    #[serde(flatten)]
    pub incident: &'a IncidentView,
}

/// What [`JSON_PATH`] answers: the model, with the values the page would otherwise have to
/// derive (incident ids, counts, chains quarantined by their flag or a breaker).
#[derive(Debug, Serialize)]
pub struct DashboardView<'a> {
    /// When the node built this view, ms since the Unix epoch (the page's clock for ages).
    pub generated_ms: u64,
    /// Seconds since the node's API state was created.
    pub uptime_seconds: u64,
    /// Identity and configuration.
    pub info: &'a NodeInfo,
    /// Readiness.
    pub ready: bool,
    /// The node's clock against the chains.
    pub clock: &'a ClockView,
    /// Summary counts ([`Model::counts`]).
    pub counts: StatusCounts,
    /// Other nodes.
    pub peers: &'a [PeerView],
    /// Chains with their vaults.
    pub chains: &'a [ChainView],
    /// Ids of the chains allocations skip ([`Model::chain_quarantined`]).
    pub quarantined_chains: Vec<u64>,
    /// Member protocols.
    pub members: &'a [MemberView],
    /// Incidents, oldest first.
    pub incidents: Vec<IncidentEntry<'a>>,
    /// Signals.
    pub signals: &'a [SignalView],
    /// Circuit breakers, active and recently ended.
    pub breakers: &'a [BreakerView],
}

impl<'a> DashboardView<'a> {
    /// The view of `model` at `generated_ms`, `uptime_seconds` after start.
    pub fn new(model: &'a Model, generated_ms: u64, uptime_seconds: u64) -> Self {
        Self {
            generated_ms,
            uptime_seconds,
            info: &model.info,
            ready: model.ready,
            clock: &model.clock,
            counts: model.counts(),
            peers: &model.peers,
            chains: &model.chains,
            quarantined_chains: model
                .chains
                .iter()
                .map(|c| c.chain_id)
                .filter(|&id| model.chain_quarantined(id))
                .collect(),
            members: &model.members,
            incidents: model
                .incidents
                .iter()
                .map(|incident| IncidentEntry {
                    id: incident.id(),
                    incident,
                })
                .collect(),
            signals: &model.signals,
            breakers: &model.breakers,
        }
    }
}

/// The response to a GET of `page`.
pub(crate) fn respond(api: &ApiState, page: Page) -> Response<Full<Bytes>> {
    match page {
        Page::Html => asset("text/html; charset=utf-8", PAGE_HTML),
        Page::Script => asset("text/javascript; charset=utf-8", PAGE_JS),
        Page::Style => asset("text/css; charset=utf-8", PAGE_CSS),
        Page::Json => json(api),
    }
}

/// An embedded asset; browsers revalidate it, so a new node version is picked up at once.
fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::OK,
        content_type,
        "no-cache",
        Bytes::from_static(body.as_bytes()),
    )
}

/// The node's view as JSON.
fn json(api: &ApiState) -> Response<Full<Bytes>> {
    let uptime_seconds = api.status().uptime_seconds;
    let model = api.snapshot();
    let view = DashboardView::new(&model, backstop_types::time::now_ms(), uptime_seconds);
    match serde_json::to_vec(&view) {
        Ok(body) => reply(
            StatusCode::OK,
            "application/json",
            "no-store",
            Bytes::from(body),
        ),
        Err(e) => {
            tracing::error!(error = %e, "dashboard: encoding the view failed");
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "no-store",
                Bytes::from(format!("encoding the view failed: {e}\n")),
            )
        }
    }
}

/// A response with the dashboard's security headers.
fn reply(
    status: StatusCode,
    content_type: &'static str,
    cache_control: &'static str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, cache_control),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ] {
        headers.insert(name, header::HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_its_paths() {
        assert_eq!(Page::of("/"), Some(Page::Html));
        assert_eq!(Page::of("/dashboard"), Some(Page::Html));
        assert_eq!(Page::of("/dashboard.js"), Some(Page::Script));
        assert_eq!(Page::of("/dashboard.css"), Some(Page::Style));
        assert_eq!(Page::of(JSON_PATH), Some(Page::Json));
        for other in ["/metrics", "/dashboard/", "/index.html", "/api/v1", ""] {
            assert_eq!(Page::of(other), None, "{other}");
        }
    }

    #[test]
    fn the_page_loads_only_same_origin_files_and_writes_no_markup() {
        assert!(PAGE_HTML.contains(r#"<script src="/dashboard.js" defer></script>"#));
        assert!(PAGE_HTML.contains(r#"<link rel="stylesheet" href="/dashboard.css">"#));
        for page in [PAGE_HTML, PAGE_JS, PAGE_CSS] {
            assert!(!page.contains("http://") && !page.contains("https://"));
        }
        assert_eq!(PAGE_HTML.matches("<script").count(), 1, "no inline script");
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!PAGE_JS.contains(sink), "the script uses {sink}");
        }
    }
}
