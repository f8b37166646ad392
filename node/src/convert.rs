//! Conversion between the gossip wire messages (`backstop-p2p`) and the agreement core's
//! messages (`backstop-agreement`).
//!
//! The two crates keep their own types so that neither depends on the other; the node is
//! where they meet. Conversions are total in the agreement → gossip direction; in the
//! gossip → agreement direction, messages the core does not handle (signals, gap
//! observations) and indices that do not fit give `None`.

use backstop_agreement as ag;
use backstop_p2p::message as gm;

fn key_to_wire(k: ag::IncidentKey) -> gm::IncidentKey {
    gm::IncidentKey {
        member: k.member,
        seq: k.seq,
    }
}

fn key_from_wire(k: gm::IncidentKey) -> ag::IncidentKey {
    ag::IncidentKey {
        member: k.member,
        seq: k.seq,
    }
}

fn action_to_wire(a: ag::ThresholdAction) -> gm::Action {
    match a {
        ag::ThresholdAction::Freeze(x) => gm::Action::FreezeMember(x),
        ag::ThresholdAction::Unfreeze(x) => gm::Action::UnfreezeMember(x),
        ag::ThresholdAction::Pause(x) => gm::Action::Pause(x),
        ag::ThresholdAction::Unpause(x) => gm::Action::Unpause(x),
        ag::ThresholdAction::RaiseAlert(x) => gm::Action::RaiseAlert(x),
        ag::ThresholdAction::ClearAlert(x) => gm::Action::ClearAlert(x),
    }
}

fn action_from_wire(a: gm::Action) -> ag::ThresholdAction {
    match a {
        gm::Action::FreezeMember(x) => ag::ThresholdAction::Freeze(x),
        gm::Action::UnfreezeMember(x) => ag::ThresholdAction::Unfreeze(x),
        gm::Action::Pause(x) => ag::ThresholdAction::Pause(x),
        gm::Action::Unpause(x) => ag::ThresholdAction::Unpause(x),
        gm::Action::RaiseAlert(x) => ag::ThresholdAction::RaiseAlert(x),
        gm::Action::ClearAlert(x) => ag::ThresholdAction::ClearAlert(x),
    }
}

/// The gossip form of an agreement message.
pub fn to_wire(m: ag::Message) -> gm::GossipMessage {
    match m {
        ag::Message::Proposal(p) => gm::GossipMessage::DrawProposal(gm::DrawProposal {
            incident: key_to_wire(p.key),
            attempt: p.attempt,
            proposer_index: u32::from(p.proposer),
            pinned: p
                .pinned
                .iter()
                .map(|b| gm::PinnedBlock {
                    chain_id: b.chain_id,
                    number: b.number,
                    hash: b.hash,
                })
                .collect(),
            draw: p.draw,
        }),
        ag::Message::DrawAttestation(a) => {
            gm::GossipMessage::DrawAttestation(gm::DrawAttestation {
                incident: key_to_wire(a.key),
                attempt: a.attempt,
                draw_digest: a.digest,
                signature: a.signature,
            })
        }
        ag::Message::LegAttestation(a) => gm::GossipMessage::LegAttestation(gm::LegAttestation {
            vault: a.vault,
            release: a.release,
            signature: a.signature,
        }),
        ag::Message::ActionProposal(a) => gm::GossipMessage::ActionProposal(gm::ActionProposal {
            vault: a.vault,
            action: action_to_wire(a.action),
        }),
        ag::Message::ActionAttestation(a) => {
            gm::GossipMessage::ActionAttestation(gm::ActionAttestation {
                vault: a.vault,
                action: action_to_wire(a.action),
                signature: a.signature,
            })
        }
    }
}

/// The agreement form of a gossip message, if the core handles it.
pub fn from_wire(m: gm::GossipMessage) -> Option<ag::Message> {
    Some(match m {
        gm::GossipMessage::DrawProposal(p) => ag::Message::Proposal(ag::DrawProposal {
            key: key_from_wire(p.incident),
            attempt: p.attempt,
            proposer: ag::NodeIndex::try_from(p.proposer_index).ok()?,
            pinned: p
                .pinned
                .iter()
                .map(|b| ag::PinnedBlock {
                    chain_id: b.chain_id,
                    number: b.number,
                    hash: b.hash,
                })
                .collect(),
            draw: p.draw,
        }),
        gm::GossipMessage::DrawAttestation(a) => {
            ag::Message::DrawAttestation(ag::DrawAttestation {
                key: key_from_wire(a.incident),
                attempt: a.attempt,
                digest: a.draw_digest,
                signature: a.signature,
            })
        }
        gm::GossipMessage::LegAttestation(a) => ag::Message::LegAttestation(ag::LegAttestation {
            draw_hash: a.draw_hash(),
            vault: a.vault,
            release: a.release,
            signature: a.signature,
        }),
        gm::GossipMessage::ActionProposal(a) => ag::Message::ActionProposal(ag::ActionProposal {
            vault: a.vault,
            action: action_from_wire(a.action),
        }),
        gm::GossipMessage::ActionAttestation(a) => {
            ag::Message::ActionAttestation(ag::ActionAttestation {
                vault: a.vault,
                action: action_from_wire(a.action),
                signature: a.signature,
            })
        }
        gm::GossipMessage::Signal(_) | gm::GossipMessage::GapObservation(_) => return None,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256, U256};
    use alloy::signers::local::PrivateKeySigner;
    use backstop_contracts::eip712::{
        Draw, FreezeMember, Leg, LegRelease, Signable, VaultId, sign_digest,
    };

    #[test]
    fn every_core_message_survives_the_wire_and_its_encoding() {
        let key = PrivateKeySigner::random();
        let vault = VaultId {
            chain_id: 31337,
            address: Address::with_last_byte(1),
        };
        let draw = Draw {
            member: B256::repeat_byte(2),
            seq: 3,
            gap: U256::from(100),
            amount: U256::from(90),
            legs: vec![Leg {
                chainId: 31337,
                vault: vault.address,
                amount: U256::from(90),
            }],
            deadline: 10,
            legDeadline: 20,
        };
        let sig = sign_digest(&key, draw.digest(&vault)).unwrap();
        let ik = ag::IncidentKey {
            member: draw.member,
            seq: 3,
        };
        let release = LegRelease {
            drawHash: B256::repeat_byte(4),
            member: draw.member,
            seq: 3,
            amount: U256::from(5),
            deadline: 20,
        };
        let action = ag::ThresholdAction::Freeze(FreezeMember {
            member: draw.member,
            id: B256::repeat_byte(5),
            deadline: 30,
        });
        let messages = vec![
            ag::Message::Proposal(ag::DrawProposal {
                key: ik,
                attempt: 1,
                proposer: 2,
                pinned: vec![ag::PinnedBlock {
                    chain_id: 31337,
                    number: 7,
                    hash: B256::repeat_byte(6),
                }],
                draw: draw.clone(),
            }),
            ag::Message::DrawAttestation(ag::DrawAttestation {
                key: ik,
                attempt: 1,
                digest: draw.digest(&vault),
                signature: sig,
            }),
            ag::Message::LegAttestation(ag::LegAttestation {
                draw_hash: release.drawHash,
                vault,
                release,
                signature: sig,
            }),
            ag::Message::ActionProposal(ag::ActionProposal {
                vault,
                action: action.clone(),
            }),
            ag::Message::ActionAttestation(ag::ActionAttestation {
                vault,
                action,
                signature: sig,
            }),
        ];
        for m in messages {
            let wire = to_wire(m.clone());
            let decoded = gm::GossipMessage::decode(&wire.encode()).unwrap();
            assert_eq!(from_wire(decoded), Some(m));
        }
    }
}
