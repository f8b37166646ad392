//! The stress report through every place operators look: `GetStressReport` on the real
//! server, the `stress` events of the stream, the `backstop_stress_*` gauges of the metrics
//! endpoint and the CLI's table and JSON.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use backstop_api::proto::backstop_client::BackstopClient;
use backstop_api::proto::{self as pb};
use backstop_api::{EventKind, Metrics, NodeEvent, Query, client};
use backstop_stress::{BasisKind, MemberResult, RiskStatus, ScenarioResult, StressReport};
use common::{channel, filled_state, http_request, member_id, start, start_metrics};
use serde_json::json;

/// 2^256 - 1: what saturated sums show.
const U256_MAX: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

/// A member's result under a scenario (amounts in decimal).
fn result(
    member: u8,
    [gap, need, covered, shortfall]: [&str; 4],
    basis: BasisKind,
    reason: Option<&str>,
) -> MemberResult {
    MemberResult {
        id: member_id(member).parse().unwrap(),
        projected_gap: gap.parse().unwrap(),
        need: need.parse().unwrap(),
        covered: covered.parse().unwrap(),
        shortfall: shortfall.parse().unwrap(),
        basis,
        invalid_reason: reason.map(str::to_owned),
    }
}

/// A scenario's result: (name, [need, payable next block, payable day, shortfall],
/// coverage bps next block and day, members).
fn scenario(
    name: &str,
    [need, next, day, shortfall]: [&str; 4],
    [coverage_next, coverage_day]: [u64; 2],
    members: Vec<MemberResult>,
) -> ScenarioResult {
    ScenarioResult {
        name: name.to_owned(),
        need: need.parse().unwrap(),
        payable_next_block: next.parse().unwrap(),
        payable_day: day.parse().unwrap(),
        coverage_next_block_bps: coverage_next,
        coverage_day_bps: coverage_day,
        shortfall: shortfall.parse().unwrap(),
        members,
    }
}

/// The refusal reason of member 0x0b's risk view.
const REASON: &str = "riskExposures() reverted";

/// Three scenarios: `crash-30` under-covered (both members short by 50; 0x0b's view
/// refused), `depeg-5` with nothing to cover (capped ratios) and `halt-31337` saturated.
fn report() -> StressReport {
    StressReport {
        evaluated_ms: 1_767_225_600_000,
        heads: vec![(31337, 118), (31338, 48)],
        risk: vec![
            RiskStatus {
                id: member_id(0x0a).parse().unwrap(),
                basis: BasisKind::Exposures,
                reason: None,
            },
            RiskStatus {
                id: member_id(0x0b).parse().unwrap(),
                basis: BasisKind::InvalidView,
                reason: Some(REASON.to_owned()),
            },
        ],
        scenarios: vec![
            scenario(
                "crash-30",
                ["2000", "1700", "1900", "100"],
                [8_500, 9_500],
                vec![
                    result(
                        0x0a,
                        ["1200", "1000", "950", "50"],
                        BasisKind::Exposures,
                        None,
                    ),
                    result(
                        0x0b,
                        ["1100", "1000", "950", "50"],
                        BasisKind::InvalidView,
                        Some(REASON),
                    ),
                ],
            ),
            scenario(
                "depeg-5",
                ["0", "5000", "5000", "0"],
                [1_000_000, 1_000_000],
                Vec::new(),
            ),
            scenario(
                "halt-31337",
                [U256_MAX, "0", "0", U256_MAX],
                [0, 0],
                vec![result(
                    0x0a,
                    [U256_MAX, U256_MAX, "0", U256_MAX],
                    BasisKind::History,
                    None,
                )],
            ),
        ],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_stress_report_says_none_yet_then_round_trips_every_field() {
    let api = filled_state();
    let server = start(api.clone(), None).await;
    let mut c = BackstopClient::new(channel(server.addr).await);

    let none = c
        .get_stress_report(pb::GetStressReportRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        none,
        pb::GetStressReportResponse {
            evaluated: false,
            report: None,
        }
    );

    api.set_stress(Arc::new(report()));
    let got = c
        .get_stress_report(pb::GetStressReportRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(got.evaluated);
    let r = got.report.unwrap();
    assert_eq!(r.evaluated_ms, 1_767_225_600_000);
    assert_eq!(
        r.heads,
        [
            pb::StressHead {
                chain_id: 31337,
                block_number: 118,
            },
            pb::StressHead {
                chain_id: 31338,
                block_number: 48,
            },
        ]
    );
    assert_eq!(
        r.risk,
        [
            pb::StressRisk {
                member: member_id(0x0a),
                basis: pb::StressBasis::Exposures.into(),
                invalid_reason: String::new(),
            },
            pb::StressRisk {
                member: member_id(0x0b),
                basis: pb::StressBasis::InvalidView.into(),
                invalid_reason: REASON.to_owned(),
            },
        ]
    );
    let names: Vec<&str> = r.scenarios.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["crash-30", "depeg-5", "halt-31337"]);
    let crash = &r.scenarios[0];
    assert_eq!(
        (
            crash.need.as_str(),
            crash.payable_next_block.as_str(),
            crash.payable_day.as_str(),
            crash.shortfall.as_str(),
        ),
        ("2000", "1700", "1900", "100")
    );
    assert_eq!(
        (crash.coverage_next_block_bps, crash.coverage_day_bps),
        (8_500, 9_500)
    );
    assert_eq!(
        crash.members[1],
        pb::StressMember {
            id: member_id(0x0b),
            projected_gap: "1100".into(),
            need: "1000".into(),
            covered: "950".into(),
            shortfall: "50".into(),
            basis: pb::StressBasis::InvalidView.into(),
            invalid_reason: REASON.into(),
        }
    );
    assert_eq!(crash.members[0].basis(), pb::StressBasis::Exposures);
    assert!(crash.members[0].invalid_reason.is_empty());
    let depeg = &r.scenarios[1];
    assert_eq!(
        (depeg.coverage_next_block_bps, depeg.coverage_day_bps),
        (1_000_000, 1_000_000)
    );
    assert!(depeg.members.is_empty());
    let halt = &r.scenarios[2];
    assert_eq!(
        (halt.need.as_str(), halt.shortfall.as_str()),
        (U256_MAX, U256_MAX)
    );
    assert_eq!(halt.members[0].projected_gap, U256_MAX);
    assert_eq!(halt.members[0].covered, "0");
    assert_eq!(halt.members[0].basis(), pb::StressBasis::History);

    // A newer evaluation replaces the old one.
    let mut newer = report();
    newer.evaluated_ms += 2_000;
    newer.scenarios.truncate(1);
    api.set_stress(Arc::new(newer));
    let r = c
        .get_stress_report(pb::GetStressReportRequest {})
        .await
        .unwrap()
        .into_inner()
        .report
        .unwrap();
    assert_eq!(r.evaluated_ms, 1_767_225_602_000);
    assert_eq!(r.scenarios.len(), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stress_events_reach_the_stream_with_their_kind() {
    let api = filled_state();
    let server = start(api.clone(), None).await;
    let mut events = client::events(&server.url()).await.unwrap();
    let text = "stress scenario crash-30: the pool covers 0.95 of 2000 within 24 h; 2 uncovered (shortfall 100)";
    api.publish(NodeEvent::now(EventKind::Stress, "", text));
    let e = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.kind, EventKind::Stress);
    assert_eq!(e.text, text);
    let line = client::render_event(&e, false).unwrap();
    assert!(line.ends_with(&format!("stress     {text}")), "{line}");
    let json: serde_json::Value =
        serde_json::from_str(&client::render_event(&e, true).unwrap()).unwrap();
    assert_eq!(json["kind"], "stress");
    server.stop().await;
}

/// The value of the sample `series` (name and labels) in the exposition `body`.
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_the_stress_report_and_drop_removed_scenarios() {
    let api = filled_state();
    let metrics = Arc::new(Metrics::new());
    let server = start_metrics(metrics.clone(), api.clone()).await;
    let scrape = || async {
        let (status, _, body) = http_request(server.addr, "GET", "/metrics").await;
        assert_eq!(status, "HTTP/1.1 200 OK");
        assert!(body.ends_with("# EOF\n"));
        body
    };

    metrics.refresh_from(&api.snapshot());
    let body = scrape().await;
    assert_eq!(
        sample(&body, "backstop_stress_evaluated_timestamp_seconds"),
        Some(0.0),
        "{body}"
    );
    assert!(!body.contains("backstop_stress_coverage_ratio{"), "{body}");
    assert!(!body.contains("backstop_stress_shortfall{"), "{body}");

    api.set_stress(Arc::new(report()));
    metrics.refresh_from(&api.snapshot());
    let body = scrape().await;
    let coverage = |scenario: &str, horizon: &str| {
        sample(
            &body,
            &format!(
                "backstop_stress_coverage_ratio{{scenario=\"{scenario}\",horizon=\"{horizon}\"}}"
            ),
        )
    };
    assert_eq!(coverage("crash-30", "next_block"), Some(0.85), "{body}");
    assert_eq!(coverage("crash-30", "day"), Some(0.95));
    assert_eq!(coverage("depeg-5", "next_block"), Some(100.0));
    assert_eq!(coverage("depeg-5", "day"), Some(100.0));
    assert_eq!(coverage("halt-31337", "day"), Some(0.0));
    let shortfall = |scenario: &str| {
        sample(
            &body,
            &format!("backstop_stress_shortfall{{scenario=\"{scenario}\"}}"),
        )
    };
    assert_eq!(shortfall("crash-30"), Some(100.0));
    assert_eq!(shortfall("depeg-5"), Some(0.0));
    let max: f64 = U256_MAX.parse().unwrap();
    let huge = shortfall("halt-31337").unwrap();
    assert!((huge - max).abs() <= max * 1e-12, "{huge} vs {max}");
    assert_eq!(
        sample(&body, "backstop_stress_evaluated_timestamp_seconds"),
        Some(1_767_225_600.0)
    );
    for family in [
        "# TYPE backstop_stress_coverage_ratio gauge",
        "# TYPE backstop_stress_shortfall gauge",
        "# TYPE backstop_stress_evaluated_timestamp_seconds gauge",
    ] {
        assert!(body.contains(family), "missing {family:?} in\n{body}");
    }

    // The next report no longer has halt-31337 (configuration changed), and crash-30 is
    // covered: the series of halt-31337 go, the others follow.
    let mut next = report();
    next.evaluated_ms += 1_000;
    next.scenarios.truncate(2);
    next.scenarios[0].coverage_day_bps = 12_345;
    api.set_stress(Arc::new(next));
    metrics.refresh_from(&api.snapshot());
    let body = scrape().await;
    assert!(!body.contains("halt-31337"), "{body}");
    assert_eq!(
        sample(
            &body,
            "backstop_stress_coverage_ratio{scenario=\"crash-30\",horizon=\"day\"}"
        ),
        Some(1.2345)
    );
    assert_eq!(
        sample(&body, "backstop_stress_shortfall{scenario=\"depeg-5\"}"),
        Some(0.0)
    );
    assert_eq!(
        sample(&body, "backstop_stress_evaluated_timestamp_seconds"),
        Some(1_767_225_601.0)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_renders_the_stress_report_as_a_table_and_json() {
    let api = filled_state();
    let server = start(api.clone(), None).await;
    let url = server.url();

    let none = client::query(&url, &Query::Stress, false).await.unwrap();
    assert_eq!(
        none,
        "no stress report yet (no scenario configured, or no confirmed head read yet)\n"
    );
    let none: serde_json::Value =
        serde_json::from_str(&client::query(&url, &Query::Stress, true).await.unwrap()).unwrap();
    assert_eq!(none, json!({ "evaluated": false, "report": null }));

    api.set_stress(Arc::new(report()));
    let text = client::query(&url, &Query::Stress, false).await.unwrap();
    println!("backstop stress:\n{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "evaluated  2026-01-01T00:00:00Z", "{text}");
    assert_eq!(lines[1], "heads      31337@118,31338@48", "{text}");
    let header = lines[3];
    assert!(header.starts_with("SCENARIO"), "{text}");
    for column in [
        "NEED",
        "PAYABLE NEXT BLOCK",
        "PAYABLE 24H",
        "COVERAGE NEXT BLOCK",
        "COVERAGE 24H",
        "SHORTFALL",
        "UNCOVERED",
    ] {
        assert!(header.contains(column), "{text}");
    }
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row {name} in\n{text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("crash-30"),
        [
            "crash-30", "2000", "1700", "1900", "0.85", "0.95", "100", "2"
        ]
    );
    assert_eq!(
        row("depeg-5"),
        ["depeg-5", "0", "5000", "5000", "100.00", "100.00", "0", "0"]
    );
    assert_eq!(
        row("halt-31337"),
        [
            "halt-31337",
            U256_MAX,
            "0",
            "0",
            "0.00",
            "0.00",
            U256_MAX,
            "1"
        ]
    );

    // The uncovered members of each scenario, named from ListMembers; none for depeg-5.
    let section = |title: &str| {
        let start = text
            .find(title)
            .unwrap_or_else(|| panic!("no {title:?} in\n{text}"));
        let rest = &text[start + title.len()..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_owned()
    };
    let crash = section("uncovered under crash-30\n");
    let crash: Vec<Vec<&str>> = crash
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        crash[0],
        [
            "MEMBER",
            "NAME",
            "PROJECTED",
            "GAP",
            "NEED",
            "COVERED",
            "SHORTFALL",
            "BASIS"
        ]
    );
    assert_eq!(
        crash[1],
        [
            member_id(0x0a).as_str(),
            "perp-dex",
            "1200",
            "1000",
            "950",
            "50",
            "exposures"
        ]
    );
    assert_eq!(
        crash[2],
        [
            member_id(0x0b).as_str(),
            "lender",
            "1100",
            "1000",
            "950",
            "50",
            "invalid_view"
        ]
    );
    assert_eq!(crash.len(), 3, "{text}");
    assert!(!text.contains("uncovered under depeg-5"), "{text}");
    let halt = section("uncovered under halt-31337\n");
    assert!(
        halt.contains(&format!(
            "{}  perp-dex  {U256_MAX}  {U256_MAX}  0        {U256_MAX}  history",
            member_id(0x0a)
        )),
        "{text}"
    );
    let refused = section("risk views refused (stressed from their equity history)\n");
    let refused: Vec<&str> = refused.lines().collect();
    assert_eq!(refused.len(), 2, "{text}");
    assert!(refused[0].starts_with("MEMBER") && refused[0].ends_with("REASON"));
    assert_eq!(refused[1], format!("{}  lender  {REASON}", member_id(0x0b)));

    // JSON: the documented shape, every value as served.
    let doc: serde_json::Value =
        serde_json::from_str(&client::query(&url, &Query::Stress, true).await.unwrap()).unwrap();
    assert_eq!(doc["evaluated"], true);
    let r = &doc["report"];
    assert_eq!(r["evaluated_ms"], 1_767_225_600_000_u64);
    assert_eq!(
        r["heads"],
        json!([
            { "chain_id": 31337, "block_number": 118 },
            { "chain_id": 31338, "block_number": 48 },
        ])
    );
    assert_eq!(
        r["risk"],
        json!([
            { "member": member_id(0x0a), "name": "perp-dex", "basis": "exposures", "invalid_reason": "" },
            { "member": member_id(0x0b), "name": "lender", "basis": "invalid_view", "invalid_reason": REASON },
        ])
    );
    assert_eq!(
        r["scenarios"][0],
        json!({
            "name": "crash-30",
            "need": "2000",
            "payable_next_block": "1700",
            "payable_day": "1900",
            "coverage_next_block_bps": 8500,
            "coverage_day_bps": 9500,
            "shortfall": "100",
            "members": [
                {
                    "id": member_id(0x0a), "name": "perp-dex", "projected_gap": "1200",
                    "need": "1000", "covered": "950", "shortfall": "50",
                    "basis": "exposures", "invalid_reason": "",
                },
                {
                    "id": member_id(0x0b), "name": "lender", "projected_gap": "1100",
                    "need": "1000", "covered": "950", "shortfall": "50",
                    "basis": "invalid_view", "invalid_reason": REASON,
                },
            ],
        })
    );
    assert_eq!(r["scenarios"][1]["coverage_day_bps"], 1_000_000);
    assert_eq!(r["scenarios"][1]["members"], json!([]));
    assert_eq!(r["scenarios"][2]["shortfall"], U256_MAX);
    assert_eq!(r["scenarios"][2]["members"][0]["basis"], "history");

    // A reason read from a contract cannot rewrite the terminal.
    let mut hostile = report();
    hostile.risk[1].reason = Some("bad\n\u{1b}[2Jview".to_owned());
    api.set_stress(Arc::new(hostile));
    let text = client::query(&url, &Query::Stress, false).await.unwrap();
    assert!(text.contains("lender  bad\\n\\u{1b}[2Jview\n"), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");

    // A member the node does not list keeps its id, without a name.
    api.set_members(Vec::new());
    let text = client::query(&url, &Query::Stress, false).await.unwrap();
    assert!(
        text.contains(&format!("{}  -     1200", member_id(0x0a))),
        "{text}"
    );
    server.stop().await;
}
