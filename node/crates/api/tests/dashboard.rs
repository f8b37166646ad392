//! The operator dashboard over real HTTP: the metrics endpoint on a loopback port serves
//! the page, its script and style, and the node's view as JSON, with the security headers,
//! and passes hostile text from chains and peers through as data, never as markup.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use backstop_api::dashboard::{CONTENT_SECURITY_POLICY, JSON_PATH};
use backstop_api::{IncidentPhase, IncidentView, MemberView, Metrics, TimelineEntry};
use common::{filled_state, http_request, member_id, start_metrics};

/// Text a malicious member configuration or peer could put in the model.
const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "<img src=x onerror=alert(2)>";

/// The value of header `name`, which must be present once.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    let found: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(found.len(), 1, "header {name} in {headers:?}");
    found[0]
}

/// The security headers every dashboard response carries, and its content type.
fn assert_secure(headers: &[(String, String)], content_type: &str) {
    assert_eq!(header(headers, "content-type"), content_type);
    assert_eq!(
        header(headers, "content-security-policy"),
        CONTENT_SECURITY_POLICY
    );
    assert_eq!(CONTENT_SECURITY_POLICY, "default-src 'self'");
    assert_eq!(header(headers, "x-content-type-options"), "nosniff");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_page_and_the_view_with_hostile_text_as_data() {
    let api = filled_state();
    let hostile = member_id(0x0d);
    api.upsert_member(MemberView {
        id: hostile.clone(),
        name: SCRIPT.into(),
        home_chain_id: 31337,
        gap: "5".into(),
        ..MemberView::default()
    });
    api.upsert_incident(IncidentView {
        member: hostile.clone(),
        seq: 4,
        phase: IncidentPhase::Open,
        gap: "5".into(),
        timeline: vec![TimelineEntry {
            timestamp_ms: 1_767_225_600_000,
            block_number: Some(7),
            what: format!("gap observed {SCRIPT} {IMG}"),
        }],
        ..IncidentView::default()
    });

    let server = start_metrics(Arc::new(Metrics::new()), api.clone()).await;
    let addr = server.addr;

    // The view: the model with ids and derived values, hostile text intact as JSON strings.
    let before = backstop_types::time::now_ms();
    let (status, headers, body) = http_request(addr, "GET", JSON_PATH).await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert_secure(&headers, "application/json");
    assert_eq!(header(&headers, "cache-control"), "no-store");
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(view["generated_ms"].as_u64().unwrap() >= before);
    assert_eq!(view["info"]["node_name"], "alpha");
    assert_eq!(view["ready"], true);
    assert_eq!(view["counts"]["incidents_total"], 3);
    assert_eq!(view["counts"]["incidents_open"], 2);
    // 31337 through the active contagion breaker, 31338 through its own flag.
    assert_eq!(
        view["quarantined_chains"],
        serde_json::json!([31337, 31338])
    );
    assert_eq!(
        view["chains"][0]["vault"]["available_for_payout"],
        "900000000000000000000"
    );
    assert_eq!(view["members"][2]["name"], SCRIPT);
    let incident = &view["incidents"][2];
    assert_eq!(incident["id"], format!("{hostile}:4"));
    assert_eq!(incident["phase"], "OPEN");
    assert_eq!(
        incident["timeline"][0]["what"],
        format!("gap observed {SCRIPT} {IMG}")
    );
    assert_eq!(view["incidents"][0]["id"], format!("{}:0", member_id(0x0a)));
    assert_eq!(view["breakers"].as_array().unwrap().len(), 3);
    assert_eq!(view["signals"].as_array().unwrap().len(), 2);
    assert_eq!(view["peers"][0]["name"], "beta");

    // The view follows the state.
    api.upsert_incident(IncidentView {
        member: hostile.clone(),
        seq: 4,
        phase: IncidentPhase::Closed,
        ..IncidentView::default()
    });
    let (_, _, body) = http_request(addr, "GET", JSON_PATH).await;
    let view: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(view["incidents"][2]["phase"], "CLOSED");
    assert_eq!(view["counts"]["incidents_open"], 1);

    // The page and its files carry no data and load nothing from elsewhere.
    for path in ["/", "/dashboard"] {
        let (status, headers, body) = http_request(addr, "GET", path).await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert_secure(&headers, "text/html; charset=utf-8");
        assert!(body.contains(r#"<script src="/dashboard.js" defer></script>"#));
        assert!(!body.contains("alert(") && !body.contains("alpha"));
    }
    let (status, headers, body) = http_request(addr, "GET", "/dashboard.js").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_secure(&headers, "text/javascript; charset=utf-8");
    assert!(body.contains(JSON_PATH) && body.contains("textContent"));
    assert!(!body.contains("innerHTML"));
    let (status, headers, _) = http_request(addr, "GET", "/dashboard.css").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_secure(&headers, "text/css; charset=utf-8");

    // Metrics still answer; other paths and methods are refused.
    let (status, headers, body) = http_request(addr, "GET", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(header(&headers, "content-type").starts_with("application/openmetrics-text"));
    assert!(body.ends_with("# EOF\n"));
    let (status, _, body) = http_request(addr, "GET", "/dashboard.html").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(body.contains("the dashboard at /"), "{body}");
    let (status, _, _) = http_request(addr, "POST", JSON_PATH).await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");

    server.stop().await;
}
