//! Governance proposals through the operator API, end to end on the real server:
//! `ListProposals` shows what the runtime published, `ProposeGovernance` and
//! `ApproveProposal` reach the admin queue as validated [`AdminRequest`]s (or are refused
//! with INVALID_ARGUMENT naming the field, before the runtime sees anything), and the CLI
//! client functions render and send them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use backstop_api::proto::backstop_client::BackstopClient;
use backstop_api::proto::propose_governance_request::Change;
use backstop_api::proto::{self as pb};
use backstop_api::{
    AdminRequest, ApiState, GovernanceChange, ProposalChainStatus, ProposalChainView,
    ProposalStatus, ProposalView, Query, client,
};
use common::{TOKEN, channel, filled_state, member_id, start};
use tokio::sync::mpsc;
use tonic::Code;

/// A request carrying `authorization: Bearer <token>`.
fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// `0x` + `byte` repeated `n` times, in hex.
fn hex(byte: u8, n: usize) -> String {
    format!("0x{}", format!("{byte:02x}").repeat(n))
}

/// 2^128 - 1 and 2^256 - 1 in decimal.
const U128_MAX: &str = "340282366920938463463374607431768211455";
const U256_MAX: &str =
    "115792089237316195423570985008687907853269984665640564039457584007913129639935";

/// The proposals of the fixture: an open member change waiting on two chains (approved
/// here), and a conflicting guardian rotation.
fn proposals() -> Vec<ProposalView> {
    vec![
        ProposalView {
            id: hex(0x1d, 32),
            digest: hex(0xd1, 32),
            kind: "set_member".into(),
            summary: format!(
                "member {} recipient {} home 31337 cap 1000 deductible 10 coverage limit 5000 \
                 per 86400 s",
                member_id(0x0c),
                hex(0xbe, 20)
            ),
            proposer: "beta".into(),
            proposed_at_ms: 1_767_225_600_000,
            deadline_s: 1_767_312_000,
            status: ProposalStatus::Open,
            reason: String::new(),
            approved_here: true,
            chains: vec![
                ProposalChainView {
                    chain_id: 31337,
                    chain_name: "home".into(),
                    status: ProposalChainStatus::Certified,
                    signatures: 3,
                    quorum: 3,
                    tx_hash: String::new(),
                },
                ProposalChainView {
                    chain_id: 31338,
                    chain_name: "remote".into(),
                    status: ProposalChainStatus::Waiting,
                    signatures: 1,
                    quorum: 3,
                    tx_hash: String::new(),
                },
            ],
        },
        ProposalView {
            id: hex(0x2e, 32),
            digest: hex(0xe2, 32),
            kind: "rotate_guardians".into(),
            summary: "rotate guardians to [0xa1.., 0xa2..] threshold 2 pause threshold 1".into(),
            proposer: "gamma".into(),
            proposed_at_ms: 1_767_225_700_000,
            deadline_s: 1_767_312_100,
            status: ProposalStatus::Conflicting,
            reason: format!("proposal {} has the same id", hex(0xe3, 32)),
            approved_here: false,
            chains: vec![ProposalChainView {
                chain_id: 31337,
                chain_name: "home".into(),
                status: ProposalChainStatus::Executed,
                signatures: 3,
                quorum: 3,
                tx_hash: hex(0xf9, 32),
            }],
        },
    ]
}

fn filled_with_proposals() -> ApiState {
    let api = filled_state();
    api.set_proposals(proposals());
    api
}

/// A valid `SetMemberChange` (upper-case hex, accepted).
fn set_member_pb() -> pb::SetMemberChange {
    pb::SetMemberChange {
        member: member_id(0x0c).to_uppercase().replace("0X", "0x"),
        recipient: hex(0xbe, 20),
        home_chain_id: 31337,
        cap: "1000".into(),
        deductible: "10".into(),
        coverage_limit: U128_MAX.into(),
        coverage_window_s: 86_400,
    }
}

/// A valid `SetLimitsChange`.
fn set_limits_pb() -> pb::SetLimitsChange {
    pb::SetLimitsChange {
        bucket_capacity: "500000000000000000000".into(),
        refill_per_second: "1000000000000000000".into(),
        reserve_floor: U256_MAX.into(),
        withdraw_cooldown_s: 3600,
        emergency_duration_s: 0,
    }
}

/// A valid `RotateGuardiansChange` of three guardians.
fn rotate_pb() -> pb::RotateGuardiansChange {
    pb::RotateGuardiansChange {
        guardians: vec![hex(0xa1, 20), hex(0xa2, 20), hex(0xa3, 20)],
        threshold: 2,
        pause_threshold: 1,
    }
}

fn propose(chain_id: Option<u64>, change: Change) -> pb::ProposeGovernanceRequest {
    pb::ProposeGovernanceRequest {
        chain_id,
        change: Some(change),
    }
}

/// Answers every admin command with `started <n>` and returns the requests seen once the
/// queue closes or `count` were answered.
fn runtime(
    mut admin_rx: mpsc::Receiver<backstop_api::AdminCommand>,
    count: usize,
) -> tokio::task::JoinHandle<Vec<AdminRequest>> {
    tokio::spawn(async move {
        let mut seen = Vec::new();
        while seen.len() < count {
            let Some(cmd) = admin_rx.recv().await else {
                break;
            };
            seen.push(cmd.request);
            cmd.reply
                .send(Ok(format!("started {}", seen.len())))
                .unwrap();
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_proposals_returns_what_set_proposals_put() {
    let api = filled_state();
    let server = start(api.clone(), None).await;
    let mut c = BackstopClient::new(channel(server.addr).await);

    let empty = c
        .list_proposals(pb::ListProposalsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(empty.proposals.is_empty());

    api.set_proposals(proposals());
    let listed = c
        .list_proposals(pb::ListProposalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .proposals;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0],
        pb::Proposal {
            id: hex(0x1d, 32),
            digest: hex(0xd1, 32),
            kind: "set_member".into(),
            summary: proposals()[0].summary.clone(),
            proposer: "beta".into(),
            proposed_at_ms: 1_767_225_600_000,
            deadline_s: 1_767_312_000,
            status: pb::ProposalStatus::Open.into(),
            reason: String::new(),
            approved_here: true,
            chains: vec![
                pb::ProposalChain {
                    chain_id: 31337,
                    chain_name: "home".into(),
                    status: pb::ProposalChainStatus::Certified.into(),
                    signatures: 3,
                    quorum: 3,
                    tx_hash: String::new(),
                },
                pb::ProposalChain {
                    chain_id: 31338,
                    chain_name: "remote".into(),
                    status: pb::ProposalChainStatus::Waiting.into(),
                    signatures: 1,
                    quorum: 3,
                    tx_hash: String::new(),
                },
            ],
        }
    );
    let conflicting = &listed[1];
    assert_eq!(conflicting.status(), pb::ProposalStatus::Conflicting);
    assert_eq!(conflicting.reason, proposals()[1].reason);
    assert!(!conflicting.approved_here);
    assert_eq!(
        conflicting.chains[0].status(),
        pb::ProposalChainStatus::Executed
    );
    assert_eq!(conflicting.chains[0].tx_hash, hex(0xf9, 32));

    // The client reads them back as the model holds them.
    assert_eq!(client::proposals(&server.url()).await.unwrap(), proposals());

    // Replaced, not merged; bounded to the most the API shows.
    api.set_proposals(
        (0..300_u64)
            .map(|n| ProposalView {
                id: format!("0x{n:064x}"),
                proposed_at_ms: n,
                status: ProposalStatus::Expired,
                ..ProposalView::default()
            })
            .collect(),
    );
    let listed = c
        .list_proposals(pb::ListProposalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .proposals;
    assert_eq!(listed.len(), backstop_api::model::MAX_PROPOSALS);
    assert_eq!(listed[0].id, format!("0x{:064x}", 44));
    assert_eq!(listed[255].id, format!("0x{:064x}", 299));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposals_and_approvals_reach_the_runtime_as_admin_requests() {
    let mut server = start(filled_state(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let admin_rx = std::mem::replace(&mut server.admin_rx, mpsc::channel(1).1);
    let runtime = runtime(admin_rx, 7);

    let calls = [
        propose(Some(31337), Change::SetMember(set_member_pb())),
        propose(
            None,
            Change::DisableMember(pb::DisableMemberChange {
                member: member_id(0x0b),
            }),
        ),
        propose(None, Change::SetLimits(set_limits_pb())),
        propose(Some(31338), Change::RotateGuardians(rotate_pb())),
    ];
    for (i, call) in calls.into_iter().enumerate() {
        let started = c
            .propose_governance(with_token(call, TOKEN))
            .await
            .unwrap()
            .into_inner()
            .started;
        assert_eq!(started, format!("started {}", i + 1));
    }
    let started = c
        .approve_proposal(with_token(
            pb::ApproveProposalRequest {
                id: hex(0x1d, 32),
                digest: hex(0xD1, 32).to_uppercase().replace("0X", "0x"),
            },
            TOKEN,
        ))
        .await
        .unwrap()
        .into_inner()
        .started;
    assert_eq!(started, "started 5");

    // The CLI client functions send the same requests (amounts rendered back to decimal).
    let mut floor = [0u8; 32];
    floor[15] = 1; // 2^128: beyond u128.
    let limits = GovernanceChange::SetLimits {
        bucket_capacity: u128::MAX,
        refill_per_second: 0,
        reserve_floor: floor,
        withdraw_cooldown_s: 1,
        emergency_duration_s: 2,
    };
    let url = server.url();
    assert_eq!(
        client::propose(&url, TOKEN, None, limits.clone())
            .await
            .unwrap(),
        "started 6"
    );
    assert_eq!(
        client::approve(&url, TOKEN, [0x2e; 32], [0xe2; 32])
            .await
            .unwrap(),
        "started 7"
    );

    let seen = runtime.await.unwrap();
    assert_eq!(
        seen,
        vec![
            AdminRequest::Propose {
                chain_id: Some(31337),
                change: GovernanceChange::SetMember {
                    member: [0x0c; 32],
                    recipient: [0xbe; 20],
                    home_chain_id: 31337,
                    cap: 1000,
                    deductible: 10,
                    coverage_limit: u128::MAX,
                    coverage_window_s: 86_400,
                },
            },
            AdminRequest::Propose {
                chain_id: None,
                change: GovernanceChange::DisableMember { member: [0x0b; 32] },
            },
            AdminRequest::Propose {
                chain_id: None,
                change: GovernanceChange::SetLimits {
                    bucket_capacity: 500_000_000_000_000_000_000,
                    refill_per_second: 1_000_000_000_000_000_000,
                    reserve_floor: [0xff; 32],
                    withdraw_cooldown_s: 3600,
                    emergency_duration_s: 0,
                },
            },
            AdminRequest::Propose {
                chain_id: Some(31338),
                change: GovernanceChange::RotateGuardians {
                    guardians: vec![[0xa1; 20], [0xa2; 20], [0xa3; 20]],
                    threshold: 2,
                    pause_threshold: 1,
                },
            },
            AdminRequest::Approve {
                id: [0x1d; 32],
                digest: [0xd1; 32],
            },
            AdminRequest::Propose {
                chain_id: None,
                change: limits,
            },
            AdminRequest::Approve {
                id: [0x2e; 32],
                digest: [0xe2; 32],
            },
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_proposals_are_invalid_arguments_naming_the_field() {
    let mut server = start(filled_state(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);

    let member = |f: fn(&mut pb::SetMemberChange)| {
        let mut m = set_member_pb();
        f(&mut m);
        propose(None, Change::SetMember(m))
    };
    let limits = |f: fn(&mut pb::SetLimitsChange)| {
        let mut l = set_limits_pb();
        f(&mut l);
        propose(None, Change::SetLimits(l))
    };
    let rotate = |f: fn(&mut pb::RotateGuardiansChange)| {
        let mut r = rotate_pb();
        f(&mut r);
        propose(None, Change::RotateGuardians(r))
    };
    let too_many: Vec<String> = (1..=33_u8).map(|i| hex(i, 20)).collect();
    let cases: Vec<(pb::ProposeGovernanceRequest, String)> = vec![
        (
            pb::ProposeGovernanceRequest {
                chain_id: None,
                change: None,
            },
            "change: required".into(),
        ),
        (
            propose(Some(0), Change::RotateGuardians(rotate_pb())),
            "chain_id: required".into(),
        ),
        (
            member(|m| m.member = "0x0c".into()),
            "member: expected 0x followed by 64 hex digits, got \"0x0c\"".into(),
        ),
        (
            propose(
                None,
                Change::DisableMember(pb::DisableMemberChange {
                    member: format!("0x{}", "zz".repeat(32)),
                }),
            ),
            format!(
                "member: expected 0x followed by 64 hex digits, got \"0x{}\"",
                "zz".repeat(32)
            ),
        ),
        (
            member(|m| m.recipient = hex(0xbe, 32)),
            format!(
                "recipient: expected 0x followed by 40 hex digits, got \"{}\"",
                hex(0xbe, 32)
            ),
        ),
        (
            member(|m| m.recipient = hex(0, 20)),
            "recipient: the zero address cannot receive payouts".into(),
        ),
        (
            member(|m| m.home_chain_id = 0),
            "home_chain_id: required".into(),
        ),
        (
            member(|m| m.coverage_window_s = 0),
            "coverage_window_s: required".into(),
        ),
        (
            member(|m| m.cap = "340282366920938463463374607431768211456".into()),
            "cap: larger than uint128 allows (2^128 - 1), got \
             \"340282366920938463463374607431768211456\""
                .into(),
        ),
        (
            member(|m| m.deductible = "-1".into()),
            "deductible: expected an unsigned decimal integer, got \"-1\"".into(),
        ),
        (
            member(|m| m.coverage_limit = String::new()),
            "coverage_limit: expected an unsigned decimal integer, got \"\"".into(),
        ),
        (
            limits(|l| l.bucket_capacity = "1e18".into()),
            "bucket_capacity: expected an unsigned decimal integer, got \"1e18\"".into(),
        ),
        (
            limits(|l| l.refill_per_second = format!("{U128_MAX}0")),
            format!(
                "refill_per_second: larger than uint128 allows (2^128 - 1), got \"{U128_MAX}0\""
            ),
        ),
        (
            limits(|l| {
                l.reserve_floor =
                    "115792089237316195423570985008687907853269984665640564039457584007913129639936"
                        .into();
            }),
            "reserve_floor: larger than uint256 allows (2^256 - 1), got \
             \"115792089237316195423570985008687907853269984665640564039457584007913129639936\""
                .into(),
        ),
        (
            limits(|l| l.reserve_floor = "0x10".into()),
            "reserve_floor: expected an unsigned decimal integer, got \"0x10\"".into(),
        ),
        (
            limits(|l| l.reserve_floor = "9".repeat(200)),
            "reserve_floor: at most 128 bytes allowed, got 200".into(),
        ),
        (
            rotate(|r| r.guardians.clear()),
            "guardians: required".into(),
        ),
        (
            rotate(|r| r.guardians[2] = "0xa3".into()),
            "guardians: expected 0x followed by 40 hex digits, got \"0xa3\"".into(),
        ),
        (
            rotate(|r| r.guardians[2] = hex(0xA1, 20).to_uppercase().replace("0X", "0x")),
            format!(
                "guardians: {} is listed twice (entries 0 and 2)",
                hex(0xa1, 20)
            ),
        ),
        (
            rotate(|r| r.guardians[1] = hex(0, 20)),
            "guardians: entry 1 is the zero address".into(),
        ),
        (
            rotate(|r| r.threshold = 0),
            "threshold: must be in 1..=3 (the number of guardians), got 0".into(),
        ),
        (
            rotate(|r| r.threshold = 4),
            "threshold: must be in 1..=3 (the number of guardians), got 4".into(),
        ),
        (
            rotate(|r| r.threshold = 256 + 2),
            "threshold: must be in 1..=3 (the number of guardians), got 258".into(),
        ),
        (
            rotate(|r| r.pause_threshold = 0),
            "pause_threshold: must be in 1..=3 (the number of guardians), got 0".into(),
        ),
        (
            rotate(|r| r.pause_threshold = 9),
            "pause_threshold: must be in 1..=3 (the number of guardians), got 9".into(),
        ),
        (
            propose(
                None,
                Change::RotateGuardians(pb::RotateGuardiansChange {
                    guardians: too_many,
                    threshold: 1,
                    pause_threshold: 1,
                }),
            ),
            "guardians: at most 32 allowed, got 33".into(),
        ),
    ];
    for (request, message) in cases {
        let err = c
            .propose_governance(with_token(request.clone(), TOKEN))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{request:?}: {err:?}");
        assert_eq!(err.message(), message, "{request:?}");
    }

    // An unknown target chain is NOT_FOUND, like the other admin calls.
    let err = c
        .propose_governance(with_token(
            propose(Some(5), Change::RotateGuardians(rotate_pb())),
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(err.message(), "chain 5 is not configured on this node");

    for (request, message) in [
        (
            pb::ApproveProposalRequest {
                id: "0x1d".into(),
                digest: hex(0xd1, 32),
            },
            "id: expected 0x followed by 64 hex digits, got \"0x1d\"",
        ),
        (
            pb::ApproveProposalRequest {
                id: hex(0x1d, 32),
                digest: String::new(),
            },
            "digest: expected 0x followed by 64 hex digits, got \"\"",
        ),
    ] {
        let err = c
            .approve_proposal(with_token(request, TOKEN))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.message(), message);
    }
    assert!(
        server.admin_rx.try_recv().is_err(),
        "nothing may reach the runtime"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_calls_need_the_admin_token() {
    let mut server = start(filled_state(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let approve = pb::ApproveProposalRequest {
        id: hex(0x1d, 32),
        digest: hex(0xd1, 32),
    };

    let err = c
        .approve_proposal(tonic::Request::new(approve.clone()))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(
        err.message(),
        "admin call refused: missing `authorization: Bearer <token>` metadata"
    );
    let err = c
        .approve_proposal(with_token(approve.clone(), "wrong"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "admin call refused: wrong admin token");
    // Authentication comes before any field is looked at.
    let err = c
        .propose_governance(tonic::Request::new(pb::ProposeGovernanceRequest {
            chain_id: Some(0),
            change: None,
        }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    let err = client::approve(&server.url(), "wrong", [0x1d; 32], [0xd1; 32])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            client::ClientError::Rpc {
                code: Code::Unauthenticated,
                ..
            }
        ),
        "{err:?}"
    );
    // Reads need no token.
    assert!(c.list_proposals(pb::ListProposalsRequest {}).await.is_ok());
    assert!(
        server.admin_rx.try_recv().is_err(),
        "nothing may reach the runtime"
    );

    // With the token, id and digest pass through unchanged.
    let admin_rx = std::mem::replace(&mut server.admin_rx, mpsc::channel(1).1);
    let runtime = runtime(admin_rx, 1);
    let started = c
        .approve_proposal(with_token(approve, TOKEN))
        .await
        .unwrap()
        .into_inner()
        .started;
    assert_eq!(started, "started 1");
    assert_eq!(
        runtime.await.unwrap(),
        vec![AdminRequest::Approve {
            id: [0x1d; 32],
            digest: [0xd1; 32],
        }]
    );
    server.stop().await;

    // No admin token configured: admin calls are disabled.
    let server = start(filled_state(), None).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let err = c
        .propose_governance(with_token(
            propose(None, Change::RotateGuardians(rotate_pb())),
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_renders_proposals_as_a_table_and_json() {
    let api = filled_with_proposals();
    let server = start(api.clone(), None).await;
    let url = server.url();

    let text = client::query(&url, &Query::Proposals, false).await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for column in [
        "ID",
        "KIND",
        "STATUS",
        "APPROVALS",
        "APPROVED HERE",
        "PROPOSER",
        "DEADLINE",
    ] {
        assert!(lines[0].contains(column), "{text}");
    }
    let row = |short: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(short))
            .unwrap_or_else(|| panic!("no row {short} in\n{text}"))
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row("0x1d1d1d1d…")[..6],
        [
            "0x1d1d1d1d…",
            "set_member",
            "OPEN",
            "31337:3/3 31338:1/3",
            "yes",
            "beta"
        ]
    );
    assert_eq!(
        row("0x2e2e2e2e…")[..6],
        [
            "0x2e2e2e2e…",
            "rotate_guardians",
            "CONFLICTING",
            "31337:3/3",
            "no",
            "gamma"
        ]
    );
    assert!(text.contains("2026-01-02T00:00:00Z"), "{text}");
    // Full id and digest each on a line of their own, to copy.
    assert!(
        lines.contains(&format!("  id       {}", hex(0x1d, 32)).as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&format!("  digest   {}", hex(0xd1, 32)).as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&format!("  digest   {}", hex(0xe2, 32)).as_str()),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  reason   proposal {} has the same id\n",
            hex(0xe3, 32)
        )),
        "{text}"
    );
    assert!(
        text.contains("  CHAIN  NAME    STATUS     SIGNATURES  TX\n"),
        "{text}"
    );
    assert!(
        text.contains("  31338  remote  WAITING    1/3         -\n"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "  31337  home  EXECUTED  3/3         {}\n",
            hex(0xf9, 32)
        )),
        "{text}"
    );

    // JSON: the model's serde form.
    let json: serde_json::Value =
        serde_json::from_str(&client::query(&url, &Query::Proposals, true).await.unwrap()).unwrap();
    assert_eq!(json, serde_json::to_value(proposals()).unwrap());
    assert_eq!(json[0]["status"], "OPEN");
    assert_eq!(json[0]["chains"][0]["status"], "CERTIFIED");
    assert_eq!(json[1]["status"], "CONFLICTING");

    // Text relayed from the node cannot rewrite the terminal.
    api.set_proposals(vec![ProposalView {
        id: hex(0x3f, 32),
        summary: "evil\u{1b}[2J\nsummary".into(),
        proposer: "mallory\r".into(),
        ..ProposalView::default()
    }]);
    let text = client::query(&url, &Query::Proposals, false).await.unwrap();
    assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text:?}");
    assert!(text.contains("evil\\u{1b}[2J\\nsummary"), "{text}");

    api.set_proposals(Vec::new());
    assert_eq!(
        client::query(&url, &Query::Proposals, false).await.unwrap(),
        "no proposals\n"
    );
    server.stop().await;
}
