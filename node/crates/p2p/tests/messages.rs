//! Typed payloads: every message kind survives the wire, malformed fields are refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::{Address, B256, U256};
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::eip712::{
    ClearAlert, Draw, FreezeMember, Leg, LegRelease, Pause, RaiseAlert, RotateGuardians, SetLimits,
    SetMember, Signable, UnfreezeMember, Unpause, VaultId, sign_digest,
};
use backstop_p2p::Wire;
use backstop_p2p::message::*;
use backstop_proto::gossip::v1 as pb;
use backstop_types::*;
use prost::Message as _;

fn vault() -> VaultId {
    VaultId {
        chain_id: 10,
        address: Address::repeat_byte(0x11),
    }
}

fn draw() -> Draw {
    Draw {
        member: B256::repeat_byte(1),
        seq: 3,
        gap: U256::from(500u64),
        amount: U256::from(400u64),
        legs: vec![
            Leg {
                chainId: 10,
                vault: Address::repeat_byte(0x11),
                amount: U256::from(300u64),
            },
            Leg {
                chainId: 20,
                vault: Address::repeat_byte(0x22),
                amount: U256::MAX,
            },
        ],
        deadline: 1_000,
        legDeadline: 2_000,
    }
}

fn all_messages() -> Vec<Message> {
    let guardian = PrivateKeySigner::from_bytes(&B256::repeat_byte(7)).unwrap();
    let incident = IncidentKey {
        member: B256::repeat_byte(1),
        seq: 3,
    };
    let d = draw();
    let digest = d.digest(&vault());
    let release = LegRelease {
        drawHash: digest,
        member: incident.member,
        seq: 3,
        amount: U256::from(300u64),
        deadline: 2_000,
    };
    let id = B256::repeat_byte(9);
    let actions = vec![
        ThresholdAction::Freeze(FreezeMember {
            member: incident.member,
            id,
            deadline: 5,
        }),
        ThresholdAction::Unfreeze(UnfreezeMember {
            member: incident.member,
            id,
            deadline: 5,
        }),
        ThresholdAction::Pause(Pause { id, deadline: 5 }),
        ThresholdAction::Unpause(Unpause { id, deadline: 5 }),
        ThresholdAction::RaiseAlert(RaiseAlert {
            subject: B256::repeat_byte(4),
            level: 255,
            id,
            deadline: 5,
        }),
        ThresholdAction::ClearAlert(ClearAlert {
            subject: B256::repeat_byte(4),
            id,
            deadline: 5,
        }),
        ThresholdAction::SetMember(SetMember {
            member: incident.member,
            recipient: Address::repeat_byte(0x33),
            homeChainId: 10,
            cap: u128::MAX,
            deductible: 7,
            coverageLimit: 1 << 90,
            coverageWindow: 86_400,
            id,
            deadline: 5,
        }),
        ThresholdAction::SetLimits(SetLimits {
            bucketCapacity: 1_000,
            refillPerSecond: 3,
            reserveFloor: U256::MAX,
            withdrawCooldown: 60,
            emergencyDuration: 600,
            id,
            deadline: 5,
        }),
        ThresholdAction::RotateGuardians(RotateGuardians {
            guardians: vec![Address::repeat_byte(1), Address::repeat_byte(2)],
            threshold: 2,
            pauseThreshold: 1,
            id,
            deadline: 5,
        }),
    ];
    let governance = actions[8].clone();
    let mut out = vec![
        Message::Signal(Signal {
            kind: SignalKind::OracleStale,
            subject: B256::repeat_byte(2),
            observed_at_ms: 99,
            evidence: vec![1, 2, 3].into(),
        }),
        Message::GapObservation(GapObservation {
            key: incident,
            home_chain_id: 10,
            block_number: 1234,
            block_hash: B256::repeat_byte(3),
            assets: U256::from(1u64),
            liabilities: U256::MAX,
        }),
        Message::DrawProposal(DrawProposal {
            key: incident,
            attempt: 2,
            proposer: 1,
            pinned: vec![
                PinnedBlock {
                    chain_id: 10,
                    number: 1,
                    hash: B256::repeat_byte(5),
                },
                PinnedBlock {
                    chain_id: 20,
                    number: 2,
                    hash: B256::repeat_byte(6),
                },
            ],
            draw: d.clone(),
        }),
        Message::DrawAttestation(DrawAttestation {
            key: incident,
            attempt: 2,
            digest,
            signature: sign_digest(&guardian, digest).unwrap(),
        }),
        Message::LegAttestation(LegAttestation {
            vault: vault(),
            release: release.clone(),
            signature: sign_digest(&guardian, release.digest(&vault())).unwrap(),
        }),
    ];
    for a in actions {
        out.push(Message::ActionProposal(ActionProposal {
            vault: vault(),
            action: a.clone(),
        }));
        let sig = sign_digest(&guardian, a.digest(&vault())).unwrap();
        out.push(Message::ActionAttestation(ActionAttestation {
            vault: vault(),
            action: a,
            signature: sig,
        }));
    }
    let targets = vec![
        vault(),
        VaultId {
            chain_id: 20,
            address: Address::repeat_byte(0x22),
        },
    ];
    let signature = sign_digest(
        &guardian,
        backstop_types::governance::proposal_digest(&targets, &governance),
    )
    .unwrap();
    out.push(Message::GovernanceProposal(GovernanceProposal {
        proposer: 3,
        targets,
        action: governance,
        signature,
    }));
    out
}

#[test]
fn every_message_kind_round_trips_and_signatures_still_verify() {
    let messages = all_messages();
    assert_eq!(messages.len(), 5 + 18 + 1);
    for m in messages {
        let decoded = Message::decode(&m.encode()).unwrap();
        assert_eq!(decoded, m);
        // The guardian signature that travelled still recovers over the recomputed digest.
        match &decoded {
            Message::LegAttestation(l) => {
                l.signature.verify(l.release.digest(&l.vault)).unwrap();
                assert_eq!(l.draw_hash(), draw().digest(&vault()));
            }
            Message::ActionAttestation(a) => {
                a.signature.verify(a.action.digest(&a.vault)).unwrap();
            }
            Message::DrawAttestation(a) => a.signature.verify(a.digest).unwrap(),
            Message::GovernanceProposal(g) => assert!(g.signed_by(g.signature.signer)),
            _ => {}
        }
    }
}

#[test]
fn incident_keys_and_action_classes() {
    let m = all_messages();
    let key = IncidentKey {
        member: B256::repeat_byte(1),
        seq: 3,
    };
    assert_eq!(m[0].incident(), None);
    for (i, msg) in m.iter().enumerate().take(5).skip(1) {
        assert_eq!(msg.incident(), Some(key), "message {i}");
    }
    let emergency: Vec<bool> = m[5..23]
        .iter()
        .step_by(2)
        .map(|p| match p {
            Message::ActionProposal(p) => p.action.is_emergency(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        emergency,
        [true, false, true, false, true, false, false, false, false]
    );
    let governance: Vec<bool> = m[5..23]
        .iter()
        .step_by(2)
        .map(|p| match p {
            Message::ActionProposal(p) => p.action.is_governance(),
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        governance,
        [false, false, false, false, false, false, true, true, true]
    );
    assert_eq!(m[23].incident(), None);
}

fn payload_of(m: &Message) -> pb::Payload {
    pb::Payload::decode(m.encode().as_slice()).unwrap()
}

#[test]
fn wrong_lengths_and_bounds_are_refused() {
    let m = all_messages();

    // 31-byte subject.
    let mut p = payload_of(&m[0]);
    if let Some(pb::payload::Body::Signal(s)) = &mut p.body {
        s.subject.pop();
    }
    assert!(matches!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::Length {
            field: "signal.subject",
            expected: 32,
            actual: 31
        })
    ));

    // Evidence above the bound.
    let mut p = payload_of(&m[0]);
    if let Some(pb::payload::Body::Signal(s)) = &mut p.body {
        s.evidence = vec![0; MAX_EVIDENCE_LEN + 1];
    }
    assert!(matches!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::TooMany { .. })
    ));

    // Unknown signal kind.
    let mut p = payload_of(&m[0]);
    if let Some(pb::payload::Body::Signal(s)) = &mut p.body {
        s.kind = 77;
    }
    assert!(matches!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::Invalid { .. })
    ));

    // 33-byte uint256.
    let mut p = payload_of(&m[1]);
    if let Some(pb::payload::Body::GapObservation(g)) = &mut p.body {
        g.assets.push(0);
    }
    assert!(matches!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::Length { .. })
    ));

    // Too many legs; missing draw.
    let mut p = payload_of(&m[2]);
    if let Some(pb::payload::Body::DrawProposal(d)) = &mut p.body {
        let leg = d.draw.as_ref().unwrap().legs[0].clone();
        d.draw.as_mut().unwrap().legs = vec![leg; MAX_LEGS + 1];
    }
    assert!(matches!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::TooMany {
            field: "draw.legs",
            ..
        })
    ));
    let mut p = payload_of(&m[2]);
    if let Some(pb::payload::Body::DrawProposal(d)) = &mut p.body {
        d.draw = None;
    }
    assert_eq!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::Missing("proposal.draw"))
    );

    // Guardian signature: v outside {27, 28}, 64 bytes, 19-byte signer.
    for mutate in [
        (|s: &mut pb::GuardianSignature| s.signature[64] = 1) as fn(&mut pb::GuardianSignature),
        |s| {
            s.signature.pop();
        },
        |s| {
            s.signer.pop();
        },
    ] {
        let mut p = payload_of(&m[3]);
        if let Some(pb::payload::Body::DrawAttestation(a)) = &mut p.body {
            mutate(a.signature.as_mut().unwrap());
        }
        assert!(Message::decode(&p.encode_to_vec()).is_err());
    }

    // Alert level above u8.
    let mut p = payload_of(&m[13]);
    if let Some(pb::payload::Body::ActionProposal(a)) = &mut p.body {
        if let Some(pb::action::Kind::RaiseAlert(r)) = &mut a.action.as_mut().unwrap().kind {
            r.level = 256;
        } else {
            panic!("fixture order changed");
        }
    }
    assert!(matches!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::Invalid {
            field: "alert.level",
            ..
        })
    ));

    // Governance: 15-byte uint128, too many guardians, too many targets, threshold above u8.
    let governance = |f: fn(&mut pb::GovernanceProposal)| {
        let mut p = payload_of(&m[23]);
        if let Some(pb::payload::Body::GovernanceProposal(g)) = &mut p.body {
            f(g);
        } else {
            panic!("fixture order changed");
        }
        Message::decode(&p.encode_to_vec())
    };
    fn rotation(g: &mut pb::GovernanceProposal) -> &mut pb::RotateGuardians {
        match &mut g.action.as_mut().unwrap().kind {
            Some(pb::action::Kind::RotateGuardians(r)) => r,
            _ => panic!("fixture order changed"),
        }
    }
    assert!(matches!(
        governance(|g| rotation(g).id.truncate(31)),
        Err(PayloadError::Length {
            field: "rotate.id",
            ..
        })
    ));
    assert!(matches!(
        governance(|g| rotation(g).guardians = vec![vec![1; 20]; 33]),
        Err(PayloadError::TooMany {
            field: "rotate.guardians",
            ..
        })
    ));
    assert!(matches!(
        governance(|g| rotation(g).threshold = 256),
        Err(PayloadError::Invalid {
            field: "rotate.threshold",
            ..
        })
    ));
    assert!(matches!(
        governance(|g| g.targets = vec![g.targets[0].clone(); 65]),
        Err(PayloadError::TooMany {
            field: "governance.targets",
            ..
        })
    ));
    let mut p = payload_of(&m[17]);
    if let Some(pb::payload::Body::ActionProposal(a)) = &mut p.body {
        if let Some(pb::action::Kind::SetMember(s)) = &mut a.action.as_mut().unwrap().kind {
            s.cap.pop();
        } else {
            panic!("fixture order changed");
        }
    }
    assert!(matches!(
        Message::decode(&p.encode_to_vec()),
        Err(PayloadError::Length {
            field: "set_member.cap",
            expected: 16,
            actual: 15
        })
    ));

    // Empty payload and garbage.
    assert_eq!(Message::decode(&[]), Err(PayloadError::Empty));
    assert!(matches!(
        Message::decode(&[0xff; 8]),
        Err(PayloadError::Decode(_))
    ));
}
