//! The operator API end to end: the real server on a loopback port, called with the
//! generated client, the health and reflection clients, raw HTTP for metrics, and the CLI
//! client functions.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backstop_api::proto::backstop_client::BackstopClient;
use backstop_api::proto::{self as pb};
use backstop_api::{
    AdminError, AdminRequest, ApiState, EventKind, IncidentPhase, Metrics, NodeEvent, NodeInfo,
    Query, SignalKind, client,
};
use common::{
    TOKEN, breaker_ids, channel, contagion_subject, filled_state, http_request, member_id, start,
    start_metrics,
};
use tonic::Code;

/// A request carrying `authorization: Bearer <token>`.
fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_calls_return_the_model() {
    let api = filled_state();
    let server = start(api.clone(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);

    let status = c
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.node_name, "alpha");
    assert_eq!(status.peer_id, "12D3KooWAlpha");
    assert_eq!(status.guardian_address, format!("0x{}", "a1".repeat(20)));
    assert_eq!(status.version, "0.1.0-test");
    assert!(status.ready);
    assert_eq!((status.n, status.t, status.p), (4, 3, 2));
    assert_eq!((status.peers_connected, status.peers_total), (1, 2));
    assert_eq!((status.chains, status.chains_halted), (2, 1));
    assert_eq!(status.members, 2);
    assert_eq!((status.incidents_open, status.incidents_total), (1, 2));
    assert_eq!(status.signals_active, 1);
    assert_eq!(status.breakers_active, 2);

    let peers = c
        .list_peers(pb::ListPeersRequest {})
        .await
        .unwrap()
        .into_inner()
        .peers;
    assert_eq!(
        peers,
        vec![
            pb::Peer {
                peer_id: "12D3KooWBeta".into(),
                name: "beta".into(),
                connected: true,
                address: "/ip4/127.0.0.1/tcp/4002".into(),
            },
            pb::Peer {
                peer_id: "12D3KooWGamma".into(),
                name: "gamma".into(),
                connected: false,
                address: String::new(),
            },
        ]
    );

    let chains = c
        .list_chains(pb::ListChainsRequest {})
        .await
        .unwrap()
        .into_inner()
        .chains;
    assert_eq!(chains.len(), 2);
    assert_eq!(
        chains[0],
        pb::Chain {
            chain_id: 31337,
            name: "home".into(),
            head_number: 120,
            head_hash: format!("0x{}", "11".repeat(32)),
            head_time: 1_767_225_600,
            confirmed_head: 118,
            halted: false,
            quarantined: false,
            deep_reorgs: 0,
            vault: Some(pb::Vault {
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
        }
    );
    assert!(chains[1].halted && chains[1].quarantined && chains[1].vault.is_none());

    let members = c
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(members.len(), 2);
    assert_eq!(
        members[0],
        pb::Member {
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
            breakers: vec![breaker_ids()[0].clone(), breaker_ids()[1].clone()],
        }
    );
    assert!(members[1].frozen);
    // Only active breakers block; the lifted oracle breaker also named member 0x0b.
    assert_eq!(members[1].breakers, vec![breaker_ids()[1].clone()]);

    let incidents = c
        .list_incidents(pb::ListIncidentsRequest { open_only: false })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(incidents.len(), 2);
    let closed = &incidents[0];
    assert_eq!(closed.id, format!("{}:0", member_id(0x0a)));
    assert_eq!(closed.phase(), pb::IncidentPhase::Closed);
    assert_eq!(closed.legs.len(), 2);
    assert_eq!(closed.legs[0].status(), pb::LegStatus::Executed);
    assert_eq!(closed.legs[1].status(), pb::LegStatus::Expired);
    assert_eq!(
        closed.attestations[0].digest,
        format!("0x{}", "d0".repeat(32))
    );
    assert_eq!(closed.tx_hashes, vec![format!("0x{}", "e1".repeat(32))]);
    assert_eq!(closed.timeline[0].block_number, Some(100));
    assert_eq!(closed.timeline[1].block_number, None);
    assert_eq!(closed.timeline[1].what, "closed");
    let open = c
        .list_incidents(pb::ListIncidentsRequest { open_only: true })
        .await
        .unwrap()
        .into_inner()
        .incidents;
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].phase(), pb::IncidentPhase::Proposed);
    assert_eq!(open[0].draw_amount, "240");

    let one = c
        .get_incident(pb::GetIncidentRequest {
            id: format!("{}:0", member_id(0x0a).to_uppercase().replace("0X", "0x")),
        })
        .await
        .unwrap()
        .into_inner()
        .incident
        .unwrap();
    assert_eq!(&one, closed);

    let signals = c
        .list_signals(pb::ListSignalsRequest {})
        .await
        .unwrap()
        .into_inner()
        .signals;
    assert_eq!(
        signals[0],
        pb::Signal {
            kind: pb::SignalKind::OracleStale.into(),
            subject: format!("0x{}", "5a".repeat(32)),
            raised_by: vec!["alpha".into(), "beta".into()],
            confirmed: true,
            first_seen_ms: 1_767_225_600_000,
            last_seen_ms: 1_767_225_610_000,
            expires_ms: Some(1_767_229_200_000),
            cleared: false,
        }
    );
    assert_eq!(signals[1].expires_ms, None);
    assert!(signals[1].cleared);

    let [exploit, contagion, oracle] = breaker_ids();
    let breakers = c
        .list_breakers(pb::ListBreakersRequest { active_only: false })
        .await
        .unwrap()
        .into_inner()
        .breakers;
    let ids: Vec<&str> = breakers.iter().map(|b| b.id.as_str()).collect();
    assert_eq!(ids, [&exploit, &contagion, &oracle]);
    assert_eq!(
        breakers[0],
        pb::Breaker {
            id: exploit.clone(),
            kind: pb::BreakerKind::Exploit.into(),
            subject: member_id(0x0a),
            cause: "outflow of 35% within 50 blocks".into(),
            tripped_ms: 1_767_225_700_000,
            expires_ms: Some(1_767_247_300_000),
            members_blocked: vec![member_id(0x0a)],
            chains_quarantined: Vec::new(),
            effects: vec![
                pb::BreakerEffect {
                    chain_id: 31337,
                    action: "freeze member".into(),
                    subject: member_id(0x0a),
                    level: 0,
                    status: pb::EffectStatus::Executed.into(),
                    tx_hash: format!("0x{}", "f1".repeat(32)),
                },
                pb::BreakerEffect {
                    chain_id: 31338,
                    action: "freeze member".into(),
                    subject: member_id(0x0a),
                    level: 0,
                    status: pb::EffectStatus::Pending.into(),
                    tx_hash: String::new(),
                },
            ],
            active: true,
            lifted_by: String::new(),
        }
    );
    assert_eq!(breakers[1].kind(), pb::BreakerKind::Contagion);
    assert_eq!(breakers[1].subject, contagion_subject());
    assert_eq!(breakers[1].chains_quarantined, vec![31337]);
    assert_eq!(breakers[1].expires_ms, None);
    assert_eq!(breakers[1].effects[0].level, 2);
    assert_eq!(breakers[1].effects[0].action, "raise alert");
    assert_eq!(breakers[2].kind(), pb::BreakerKind::Oracle);
    assert!(!breakers[2].active);
    assert!(
        breakers[2]
            .lifted_by
            .starts_with("lifted on chain 31338 (tx 0x")
    );
    assert_eq!(breakers[2].effects[0].status(), pb::EffectStatus::Lifted);
    let active = c
        .list_breakers(pb::ListBreakersRequest { active_only: true })
        .await
        .unwrap()
        .into_inner()
        .breakers;
    assert_eq!(active, breakers[..2].to_vec());

    // Lifting a breaker: gone from active_only, from the members it blocked and from the
    // count.
    let mut lifted = api.snapshot().breakers[1].clone();
    lifted.active = false;
    lifted.lifted_by = "expired".into();
    api.upsert_breaker(lifted);
    let active = c
        .list_breakers(pb::ListBreakersRequest { active_only: true })
        .await
        .unwrap()
        .into_inner()
        .breakers;
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].id, exploit);
    let all = c
        .list_breakers(pb::ListBreakersRequest { active_only: false })
        .await
        .unwrap()
        .into_inner()
        .breakers;
    assert_eq!(all.len(), 3, "ended breakers stay listed");
    assert_eq!(all[1].lifted_by, "expired");
    let members = c
        .list_members(pb::ListMembersRequest {})
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(members[0].breakers, vec![exploit.clone()]);
    assert!(members[1].breakers.is_empty());
    let status = c
        .get_status(pb::GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.breakers_active, 1);

    // Updates are visible to the next call.
    api.update(|m| m.chains[0].head_number = 121);
    let chains = c
        .list_chains(pb::ListChainsRequest {})
        .await
        .unwrap()
        .into_inner()
        .chains;
    assert_eq!(chains[0].head_number, 121);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_incident_rejects_malformed_and_unknown_ids() {
    let server = start(filled_state(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    for bad in [
        "nonsense".to_owned(),
        format!("{}:", member_id(1)),
        format!("{}:x", member_id(1)),
        "0x1234:1".to_owned(),
    ] {
        let err = c
            .get_incident(pb::GetIncidentRequest { id: bad.clone() })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}");
        assert!(
            err.message()
                .starts_with("incident id: expected \"0x<64 hex digits>:<seq>\""),
            "{}",
            err.message()
        );
    }
    let err = c
        .get_incident(pb::GetIncidentRequest {
            id: "x".repeat(1000),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "id: at most 128 bytes allowed, got 1000");

    let unknown = format!("{}:9", member_id(0x0a));
    let err = c
        .get_incident(pb::GetIncidentRequest {
            id: unknown.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message()
            .starts_with(&format!("no incident {unknown} on this node"))
    );

    // Requests above 64 KiB are refused before reaching the service.
    let err = c
        .get_incident(pb::GetIncidentRequest {
            id: "x".repeat(70_000),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_need_the_token_and_reach_the_runtime() {
    let mut server = start(filled_state(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let unpause = pb::RequestUnpauseRequest { chain_id: 31337 };

    let err = c.request_unpause(unpause).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message()
            .contains("missing `authorization: Bearer <token>`")
    );

    let err = c
        .request_unpause(with_token(unpause, "wrong-token"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert_eq!(err.message(), "admin call refused: wrong admin token");

    let mut basic = tonic::Request::new(unpause);
    basic
        .metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(
        c.request_unpause(basic).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert!(
        server.admin_rx.try_recv().is_err(),
        "nothing may reach the runtime"
    );

    // The runtime answers: first accepts, then rejects.
    let mut admin_rx = std::mem::replace(&mut server.admin_rx, tokio::sync::mpsc::channel(1).1);
    let runtime = tokio::spawn(async move {
        let mut seen = Vec::new();
        let first = admin_rx.recv().await.unwrap();
        seen.push(first.request.clone());
        first.reply.send(Ok("action 0x01".into())).unwrap();
        let second = admin_rx.recv().await.unwrap();
        seen.push(second.request.clone());
        second
            .reply
            .send(Err(AdminError::Rejected("member is not frozen".into())))
            .unwrap();
        let third = admin_rx.recv().await.unwrap();
        seen.push(third.request.clone());
        third.reply.send(Ok("signal raised".into())).unwrap();
        let fourth = admin_rx.recv().await.unwrap();
        seen.push(fourth.request.clone());
        drop(fourth.reply);
        seen
    });

    let started = c
        .request_unpause(with_token(unpause, TOKEN))
        .await
        .unwrap()
        .into_inner()
        .started;
    assert_eq!(started, "action 0x01");

    let err = c
        .request_unfreeze(with_token(
            pb::RequestUnfreezeRequest {
                chain_id: None,
                member: member_id(0x0a),
            },
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(err.message(), "member is not frozen");

    // Lower-case scheme works too.
    let mut lower = tonic::Request::new(pb::RaiseSignalRequest {
        kind: pb::SignalKind::Operator.into(),
        subject: format!("0x{}", "AB".repeat(32)),
        reason: "drill".into(),
    });
    lower
        .metadata_mut()
        .insert("authorization", format!("bearer {TOKEN}").parse().unwrap());
    assert_eq!(
        c.raise_signal(lower).await.unwrap().into_inner().started,
        "signal raised"
    );

    let err = c
        .request_alert_clear(with_token(
            pb::RequestAlertClearRequest {
                chain_id: 31338,
                subject: format!("0x{}", "5a".repeat(32)),
            },
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("dropped the request"));

    let seen = runtime.await.unwrap();
    assert_eq!(
        seen,
        vec![
            AdminRequest::Unpause { chain_id: 31337 },
            AdminRequest::Unfreeze {
                chain_id: None,
                member: [0x0a; 32],
            },
            AdminRequest::RaiseSignal {
                kind: SignalKind::Operator,
                subject: [0xab; 32],
                reason: "drill".into(),
            },
            AdminRequest::ClearAlert {
                chain_id: 31338,
                subject: [0x5a; 32],
            },
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_admin_fields_are_rejected_before_the_runtime() {
    let mut server = start(filled_state(), Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let subject = format!("0x{}", "5a".repeat(32));

    let cases: Vec<(tonic::Status, Code, String)> = vec![
        (
            c.raise_signal(with_token(
                pb::RaiseSignalRequest {
                    kind: pb::SignalKind::Operator.into(),
                    subject: "0x1234".into(),
                    reason: String::new(),
                },
                TOKEN,
            ))
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "subject: expected 0x followed by 64 hex digits, got \"0x1234\"".into(),
        ),
        (
            c.raise_signal(with_token(
                pb::RaiseSignalRequest {
                    kind: 0,
                    subject: subject.clone(),
                    reason: String::new(),
                },
                TOKEN,
            ))
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            format!(
                "kind: 0 is not a signal kind (1..={}, see SignalKind)",
                SignalKind::ALL.len()
            ),
        ),
        (
            c.raise_signal(with_token(
                pb::RaiseSignalRequest {
                    kind: 99,
                    subject: subject.clone(),
                    reason: String::new(),
                },
                TOKEN,
            ))
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            format!(
                "kind: 99 is not a signal kind (1..={}, see SignalKind)",
                SignalKind::ALL.len()
            ),
        ),
        (
            c.raise_signal(with_token(
                pb::RaiseSignalRequest {
                    kind: pb::SignalKind::Depeg.into(),
                    subject: subject.clone(),
                    reason: "r".repeat(300),
                },
                TOKEN,
            ))
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "reason: at most 256 bytes allowed, got 300".into(),
        ),
        (
            c.request_unpause(with_token(pb::RequestUnpauseRequest { chain_id: 0 }, TOKEN))
                .await
                .unwrap_err(),
            Code::InvalidArgument,
            "chain_id: required".into(),
        ),
        (
            c.request_unpause(with_token(pb::RequestUnpauseRequest { chain_id: 5 }, TOKEN))
                .await
                .unwrap_err(),
            Code::NotFound,
            "chain 5 is not configured on this node".into(),
        ),
        (
            c.request_unfreeze(with_token(
                pb::RequestUnfreezeRequest {
                    chain_id: Some(31337),
                    member: member_id(0x0c),
                },
                TOKEN,
            ))
            .await
            .unwrap_err(),
            Code::NotFound,
            format!("member {} is not a consortium member", member_id(0x0c)),
        ),
        (
            c.request_unfreeze(with_token(
                pb::RequestUnfreezeRequest {
                    chain_id: None,
                    member: "zz".into(),
                },
                TOKEN,
            ))
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            "member: expected 0x followed by 64 hex digits, got \"zz\"".into(),
        ),
        (
            c.request_alert_clear(with_token(
                pb::RequestAlertClearRequest {
                    chain_id: 31337,
                    subject: format!("0x{}", "g0".repeat(32)),
                },
                TOKEN,
            ))
            .await
            .unwrap_err(),
            Code::InvalidArgument,
            format!(
                "subject: expected 0x followed by 64 hex digits, got \"0x{}\"",
                "g0".repeat(32)
            ),
        ),
    ];
    for (status, code, message) in cases {
        assert_eq!(status.code(), code, "{status:?}");
        assert_eq!(status.message(), message);
    }
    assert!(
        server.admin_rx.try_recv().is_err(),
        "nothing may reach the runtime"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_is_disabled_without_a_token_and_unavailable_before_ready() {
    let api = filled_state();
    let server = start(api.clone(), None).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let err = c
        .request_unpause(with_token(
            pb::RequestUnpauseRequest { chain_id: 31337 },
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    assert_eq!(
        err.message(),
        "admin calls are disabled on this node: no admin token is configured"
    );
    server.stop().await;

    api.set_ready(false);
    let server = start(api, Some(TOKEN)).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let err = c
        .request_unpause(with_token(
            pb::RequestUnpauseRequest { chain_id: 31337 },
            TOKEN,
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable);
    assert!(err.message().contains("not ready"));
    server.stop().await;
}

/// Current-thread runtime: publishing without yielding overruns the broadcast buffer
/// deterministically.
#[tokio::test]
async fn stream_events_delivers_in_order_and_reports_losses() {
    let api = ApiState::with_event_capacity(NodeInfo::default(), 8);
    api.set_ready(true);
    api.publish(NodeEvent::now(EventKind::Node, "", "before subscribing"));
    let server = start(api.clone(), None).await;
    let mut c = BackstopClient::new(channel(server.addr).await);
    let mut stream = c
        .stream_events(pb::StreamEventsRequest {})
        .await
        .unwrap()
        .into_inner();

    let sent = [
        NodeEvent::now(
            EventKind::Incident,
            format!("{}:1", member_id(0x0a)),
            "incident 1 of perp-dex: OPEN -> PROPOSED",
        ),
        NodeEvent::now(EventKind::Signal, "0x5a", "oracle_stale confirmed"),
        NodeEvent::now(EventKind::Chain, "31338", "chain 31338 halted"),
    ];
    for e in &sent {
        api.publish(e.clone());
    }
    for e in &sent {
        let got = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.text, e.text);
        assert_eq!(got.subject, e.subject);
        assert_eq!(got.timestamp_ms, e.timestamp_ms);
    }

    // Overrun: 100 events in one go into a buffer of 8.
    for i in 0..100 {
        api.publish(NodeEvent::now(EventKind::Node, "", format!("burst {i}")));
    }
    let mut texts = Vec::new();
    loop {
        let got = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let last = got.text == "burst 99";
        texts.push((got.kind(), got.text));
        if last {
            break;
        }
    }
    assert_eq!(texts[0].0, pb::EventKind::EventsLost, "{texts:?}");
    assert_eq!(
        texts[0].1,
        "92 events were dropped because this subscriber read too slowly"
    );
    assert_eq!(texts.len(), 9);
    assert_eq!(texts[1].1, "burst 92");
    assert_eq!(api.events_lost(), 92);

    // Shutdown ends the open stream instead of waiting for it.
    server.stop().await;
    let end = tokio::time::timeout(Duration::from_secs(5), stream.message())
        .await
        .unwrap();
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_readiness() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

    let api = filled_state();
    let server = start(api.clone(), None).await;
    let mut h = HealthClient::new(channel(server.addr).await);
    let check = |service: &str| HealthCheckRequest {
        service: service.to_owned(),
    };
    let status = h
        .check(check("backstop.v1.Backstop"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.status(), ServingStatus::Serving);
    assert_eq!(
        h.check(check("")).await.unwrap().into_inner().status(),
        ServingStatus::Serving
    );

    api.set_ready(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = h
            .check(check("backstop.v1.Backstop"))
            .await
            .unwrap()
            .into_inner();
        if s.status() == ServingStatus::NotServing {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_and_describes_the_service() {
    use tokio_stream::StreamExt as _;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = start(filled_state(), None).await;
    let mut r = ServerReflectionClient::new(channel(server.addr).await);
    let requests = tokio_stream::iter(vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "backstop.v1.Backstop".into(),
            )),
        },
    ]);
    let mut responses = r
        .server_reflection_info(requests)
        .await
        .unwrap()
        .into_inner();
    let first = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
        panic!("unexpected {first:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "backstop.v1.Backstop",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(names.iter().any(|n| n == expected), "{names:?}");
    }
    let second = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::FileDescriptorResponse(files)) = second.message_response else {
        panic!("unexpected {second:?}");
    };
    let file = <prost_types::FileDescriptorProto as prost::Message>::decode(
        files.file_descriptor_proto[0].as_slice(),
    )
    .unwrap();
    assert_eq!(file.package(), "backstop.v1");
    assert!(file.service.iter().any(|s| s.name() == "Backstop"));

    // v1alpha (what grpcio-reflection speaks) answers too.
    {
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        let mut r = ServerReflectionClient::new(channel(server.addr).await);
        let mut responses = r
            .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            }]))
            .await
            .unwrap()
            .into_inner();
        let first = responses.next().await.unwrap().unwrap();
        let Some(MessageResponse::ListServicesResponse(list)) = first.message_response else {
            panic!("unexpected {first:?}");
        };
        assert!(
            list.service
                .iter()
                .any(|s| s.name == "backstop.v1.Backstop")
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_serves_the_registry() {
    let metrics = std::sync::Arc::new(Metrics::new());
    let server = start_metrics(metrics.clone(), filled_state()).await;
    let addr = server.addr;

    metrics.refresh_from(&filled_state().snapshot());
    metrics.inc_submission(31337, "register_draw");
    metrics.inc_submission(31337, "register_draw");
    metrics.inc_submission_failure(31338, "release_leg");
    metrics.inc_gossip_reject("stale_timestamp");
    metrics.observe_proposal_to_certificate(Duration::from_millis(40));
    metrics.observe_gap_to_closed(Duration::from_secs(90));
    metrics.set_incidents(IncidentPhase::Registered, 3);

    let (status, _, body) = http_request(addr, "GET", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    for needle in [
        "backstop_peers_connected 1",
        "backstop_chain_head{chain=\"31337\"} 120",
        "backstop_chain_confirmed_head{chain=\"31338\"} 48",
        "backstop_incidents{phase=\"proposed\"} 1",
        "backstop_incidents{phase=\"closed\"} 1",
        "backstop_incidents{phase=\"registered\"} 3",
        "backstop_proposal_to_certificate_seconds_bucket{le=\"0.05\"} 1",
        "backstop_gap_to_closed_seconds_bucket{le=\"60.0\"} 0",
        "backstop_gap_to_closed_seconds_bucket{le=\"120.0\"} 1",
        "backstop_submissions_total{chain=\"31337\",kind=\"register_draw\"} 2",
        "backstop_submission_failures_total{chain=\"31338\",kind=\"release_leg\"} 1",
        "backstop_gossip_rejects_total{reason=\"stale_timestamp\"} 1",
        "backstop_signals{kind=\"oracle_stale\",state=\"confirmed\"} 1",
        "backstop_signals{kind=\"operator\",state=\"cleared\"} 1",
        "backstop_signals{kind=\"depeg\",state=\"raised\"} 0",
        "backstop_breakers_active{kind=\"exploit\"} 1",
        "backstop_breakers_active{kind=\"contagion\"} 1",
        "backstop_breakers_active{kind=\"oracle\"} 0",
        "backstop_breakers_active{kind=\"depeg\"} 0",
        "backstop_breakers_active{kind=\"chain_halt\"} 0",
        "backstop_breakers_active{kind=\"operator\"} 0",
        // 31337 through the active contagion breaker, 31338 through its own flag.
        "backstop_chain_quarantined{chain_id=\"31337\"} 1",
        "backstop_chain_quarantined{chain_id=\"31338\"} 1",
        "backstop_chain_deep_reorgs{chain_id=\"31338\"} 1",
        // The vault of 31337 as floats (31338's is not read yet: no series).
        "backstop_vault_balance{chain=\"31337\"} 1e21",
        "backstop_vault_reserve_floor{chain=\"31337\"} 100000000000000000000.0",
        "backstop_vault_available_for_payout{chain=\"31337\"} 900000000000000000000.0",
        "backstop_sign_guard_conflicts_total 0",
        "# TYPE backstop_incident_oldest_open_timestamp_seconds gauge",
        "# TYPE backstop_process_start_time_seconds gauge",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in\n{body}");
    }
    assert!(
        !body.contains("backstop_vault_balance{chain=\"31338\"}"),
        "{body}"
    );

    // The contagion breaker lifted, chain 31338 no longer flagged (only the lifted oracle
    // breaker lists it): both chains at 0, the contagion count back to 0.
    let api = filled_state();
    api.update(|m| {
        m.breakers[1].active = false;
        m.chains[1].quarantined = false;
    });
    metrics.refresh_from(&api.snapshot());
    let (_, _, body) = http_request(addr, "GET", "/metrics").await;
    for needle in [
        "backstop_breakers_active{kind=\"exploit\"} 1",
        "backstop_breakers_active{kind=\"contagion\"} 0",
        "backstop_chain_quarantined{chain_id=\"31337\"} 0",
        "backstop_chain_quarantined{chain_id=\"31338\"} 0",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in\n{body}");
    }

    let (status, _, _) = http_request(addr, "GET", "/favicon.ico").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = http_request(addr, "GET", "/metrics/x").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");

    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_client_renders_tables_and_json() {
    let api = filled_state();
    let mut server = start(api.clone(), Some(TOKEN)).await;
    let url = server.url();

    let status = client::query(&url, &Query::Status, false).await.unwrap();
    assert!(status.contains("node        alpha\n"), "{status}");
    assert!(status.contains("consortium  n=4 t=3 p=2\n"), "{status}");
    assert!(
        status.contains("incidents   1 open / 2 total\n"),
        "{status}"
    );

    let peers = client::query(&url, &Query::Peers, false).await.unwrap();
    let lines: Vec<&str> = peers.lines().collect();
    assert_eq!(lines[0], "PEER ID        NAME   CONNECTED  ADDRESS");
    assert_eq!(
        lines[1],
        "12D3KooWBeta   beta   yes        /ip4/127.0.0.1/tcp/4002"
    );
    assert_eq!(lines[2], "12D3KooWGamma  gamma  no         -");

    let chains = client::query(&url, &Query::Chains, false).await.unwrap();
    assert!(
        chains.starts_with("CHAIN  NAME    HEAD  CONFIRMED  HEAD TIME"),
        "{chains}"
    );
    assert!(chains.contains("2026-01-01T00:00:00Z"), "{chains}");
    assert!(chains.contains("halted,quarantined"), "{chains}");

    let incidents = client::query(&url, &Query::Incidents, false).await.unwrap();
    assert!(
        incidents.contains(&format!("{}:1  PROPOSED", member_id(0x0a))),
        "{incidents}"
    );

    let detail = client::query(
        &url,
        &Query::Incident(format!("{}:0", member_id(0x0a))),
        false,
    )
    .await
    .unwrap();
    assert!(detail.contains("phase      CLOSED\n"), "{detail}");
    assert!(
        detail.contains("2026-01-01T00:00:00Z  100    gap observed"),
        "{detail}"
    );
    assert!(detail.contains("EXPIRED"), "{detail}");

    let signals = client::query(&url, &Query::Signals, false).await.unwrap();
    assert!(signals.contains("oracle_stale"), "{signals}");
    assert!(signals.contains("alpha,beta"), "{signals}");

    assert!(status.contains("breakers    2 active\n"), "{status}");
    let [exploit, contagion, oracle] = breaker_ids();
    let breakers = client::query(&url, &Query::Breakers { active_only: false }, false)
        .await
        .unwrap();
    let lines: Vec<&str> = breakers.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].ends_with("CAUSE"),
        "{breakers}"
    );
    for column in [
        "KIND",
        "ACTIVE",
        "MEMBERS BLOCKED",
        "EFFECTS DONE",
        "ENDED BY",
    ] {
        assert!(lines[0].contains(column), "{breakers}");
    }
    let row = |id: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row {id} in\n{breakers}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row(&exploit)[1..4],
        ["exploit", "yes", "2026-01-01T00:01:40Z"]
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&exploit)
            && l.contains("  1/2  ")
            && l.ends_with("outflow of 35% within 50 blocks")),
        "{breakers}"
    );
    assert_eq!(row(&contagion)[1..3], ["contagion", "yes"]);
    assert_eq!(row(&oracle)[1..3], ["oracle", "no"]);
    assert!(
        breakers.contains("lifted on chain 31338 (tx 0x"),
        "{breakers}"
    );
    assert!(
        breakers.contains(&format!("\neffects of {exploit}\nCHAIN  ACTION")),
        "{breakers}"
    );
    assert!(
        breakers.contains(&format!(
            "31338  freeze member  {}  0      PENDING   -\n",
            member_id(0x0a)
        )),
        "{breakers}"
    );
    assert!(breakers.contains("LIFTED"), "{breakers}");
    let active = client::query(&url, &Query::Breakers { active_only: true }, false)
        .await
        .unwrap();
    assert!(
        active.contains(&exploit) && active.contains(&contagion),
        "{active}"
    );
    assert!(!active.contains(&oracle), "{active}");

    // JSON: valid, and equal to the model's serde form.
    let model = api.snapshot();
    let json = |q: Query| {
        let url = url.clone();
        async move {
            let text = client::query(&url, &q, true).await.unwrap();
            serde_json::from_str::<serde_json::Value>(&text).unwrap()
        }
    };
    assert_eq!(
        json(Query::Peers).await,
        serde_json::to_value(&model.peers).unwrap()
    );
    assert_eq!(
        json(Query::Chains).await,
        serde_json::to_value(&model.chains).unwrap()
    );
    assert_eq!(
        json(Query::Members).await,
        serde_json::to_value(&model.members).unwrap()
    );
    assert_eq!(
        json(Query::Signals).await,
        serde_json::to_value(&model.signals).unwrap()
    );
    let breakers = json(Query::Breakers { active_only: false }).await;
    assert_eq!(breakers, serde_json::to_value(&model.breakers).unwrap());
    assert_eq!(breakers[0]["kind"], "exploit");
    assert_eq!(breakers[0]["effects"][0]["status"], "EXECUTED");
    assert_eq!(breakers[1]["expires_ms"], serde_json::Value::Null);
    let active = json(Query::Breakers { active_only: true }).await;
    assert_eq!(active, serde_json::to_value(&model.breakers[..2]).unwrap());
    assert_eq!(
        json(Query::Members).await[1]["breakers"],
        serde_json::json!([contagion])
    );
    let status = json(Query::Status).await;
    assert_eq!(status["node_name"], "alpha");
    assert_eq!(status["ready"], true);
    assert_eq!(status["incidents_open"], 1);
    assert_eq!(status["breakers_active"], 2);
    let incidents = json(Query::Incidents).await;
    assert_eq!(incidents[1]["id"], format!("{}:1", member_id(0x0a)));
    assert_eq!(incidents[0]["phase"], "CLOSED");
    assert_eq!(incidents[0]["legs"][1]["status"], "EXPIRED");
    assert_eq!(incidents[0]["timeline"][0]["block_number"], 100);
    let one = json(Query::Incident(format!("{}:1", member_id(0x0a)))).await;
    assert_eq!(one, incidents[1]);

    // Errors: status from the server, unreachable node.
    let err = client::query(&url, &Query::Incident("bad".into()), false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            client::ClientError::Rpc {
                code: Code::InvalidArgument,
                ..
            }
        ),
        "{err}"
    );
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = client::query(&free.to_string(), &Query::Status, false)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, client::ClientError::Unreachable { .. }),
        "{text}"
    );
    assert!(
        text.starts_with(&format!("cannot reach the node at http://{free}: ")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");

    // Admin through the client.
    let mut admin_rx = std::mem::replace(&mut server.admin_rx, tokio::sync::mpsc::channel(1).1);
    let runtime = tokio::spawn(async move {
        let cmd = admin_rx.recv().await.unwrap();
        let request = cmd.request.clone();
        cmd.reply.send(Ok("unpause action 0x77".into())).unwrap();
        request
    });
    let started = client::admin(&url, TOKEN, &AdminRequest::Unpause { chain_id: 31338 })
        .await
        .unwrap();
    assert_eq!(started, "unpause action 0x77");
    assert_eq!(
        runtime.await.unwrap(),
        AdminRequest::Unpause { chain_id: 31338 }
    );
    let err = client::admin(&url, "nope", &AdminRequest::Unpause { chain_id: 31338 })
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
        "{err}"
    );

    // Events through the client.
    let mut events = client::events(&url).await.unwrap();
    api.publish(NodeEvent::now(
        EventKind::Peer,
        "12D3KooWGamma",
        "peer gamma connected",
    ));
    let e = events.next().await.unwrap().unwrap();
    assert_eq!(e.text, "peer gamma connected");
    let line = client::render_event(&e, false).unwrap();
    assert!(
        line.ends_with("peer       [12D3KooWGamma] peer gamma connected"),
        "{line}"
    );
    server.stop().await;
    assert!(!matches!(events.next().await, Ok(Some(_))));
}
