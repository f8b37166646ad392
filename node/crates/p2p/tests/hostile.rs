//! A consortium member turned hostile: forged signature, non-member key, replayed
//! envelope of another node, oversized and undecodable messages are dropped at the first
//! hop, counted by reason, lower the sender's gossipsub score, and honest traffic keeps
//! flowing.
//!
//! Topology (each arrow a configured dial): M -> B, C -> B, D -> B, D -> C. The hostile
//! node M is connected to B only, so anything that got past B would show up at C or D.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use backstop_p2p::DropReason;
use backstop_p2p::PeerAddr;
use backstop_p2p::envelope::{self, Envelope};
use backstop_types::Message;
use backstop_types::time::now_ms;
use common::*;
use tokio::sync::broadcast::error::TryRecvError;

async fn recv_one(
    sub: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<backstop_p2p::validation::Validated>>,
) -> Message {
    tokio::time::timeout(Duration::from_secs(30), sub.recv())
        .await
        .expect("message not delivered")
        .unwrap()
        .message
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_member_is_contained_at_the_first_hop() {
    let keys: Vec<_> = (1..=4u8).map(key).collect();
    let (km, kb, kc, kd) = (&keys[0], &keys[1], &keys[2], &keys[3]);
    let c = consortium(&keys);
    let b = start(kb, c.clone(), vec![tcp()], vec![]).await;
    let at = |n: &Node| PeerAddr {
        peer: peer(&n.key),
        addrs: vec![n.tcp_addr()],
    };
    let cn = start(kc, c.clone(), vec![tcp()], vec![at(&b)]).await;
    let d = start(kd, c.clone(), vec![tcp()], vec![at(&b), at(&cn)]).await;
    let m = start(km, c.clone(), vec![tcp()], vec![at(&b)]).await;

    wait_until("line topology", Duration::from_secs(30), || async {
        m.handle.gossip_peers().await.unwrap() == vec![peer(kb)]
            && b.handle.gossip_peers().await.unwrap().len() == 3
            && cn.handle.gossip_peers().await.unwrap().len() == 2
            && d.handle.gossip_peers().await.unwrap().len() == 2
    })
    .await;
    assert!(!cn.handle.peers().contains(&peer(km)));
    assert!(!d.handle.peers().contains(&peer(km)));

    let mut sub_b = b.handle.subscribe();
    let mut sub_c = cn.handle.subscribe();
    let mut sub_d = d.handle.subscribe();

    // Before the attack M is honest, and its messages cross B to C and D.
    m.handle.publish(signal(1, 1)).await.unwrap();
    for sub in [&mut sub_b, &mut sub_c, &mut sub_d] {
        assert_eq!(recv_one(sub).await, signal(1, 1));
    }
    let score_before = b.handle.peer_score(peer(km)).await.unwrap().unwrap();

    // The attack.
    let now = now_ms();
    let mut forged = Envelope::decode(&envelope::sign(km, now, &signal(2, 2)), usize::MAX).unwrap();
    forged.signature[7] ^= 0x10;
    let outsider = ed25519_dalek::SigningKey::from_bytes(&[0x77; 32]);
    let attacks: Vec<(DropReason, Vec<u8>)> = vec![
        (DropReason::BadSignature, forged.encode()),
        (
            DropReason::NotMember,
            envelope::sign(&outsider, now, &signal(3, 3)),
        ),
        // An envelope C really signed, republished by M as if it were M's.
        (
            DropReason::SignerMismatch,
            envelope::sign(kc, now, &signal(4, 4)),
        ),
        (
            DropReason::Oversized,
            envelope::seal(km, now, vec![0x42; 100 * 1024]).encode(),
        ),
        (DropReason::Undecodable, vec![0xff; 300]),
    ];
    for (_, bytes) in &attacks {
        m.handle.publish_raw(bytes.clone()).await.unwrap();
    }
    // B drops each one, counted by its reason.
    let counters_b = b.handle.counters();
    wait_until(
        "B counted every attack",
        Duration::from_secs(30),
        || async {
            let done = attacks.iter().all(|(r, _)| counters_b.dropped(*r) == 1);
            if !done {
                eprintln!("B drops: {:?}", counters_b.snapshot());
            }
            done
        },
    )
    .await;
    // The sender's score fell below zero (and below what it was while honest).
    wait_until("M's score fell", Duration::from_secs(10), || async {
        let s = b.handle.peer_score(peer(km)).await.unwrap().unwrap();
        s < 0.0 && s < score_before
    })
    .await;
    // Honest peers keep their score.
    assert!(b.handle.peer_score(peer(kc)).await.unwrap().unwrap() >= 0.0);

    // Honest traffic keeps flowing, in both directions through B.
    cn.handle.publish(signal(10, 10)).await.unwrap();
    d.handle.publish(signal(11, 11)).await.unwrap();
    b.handle.publish(signal(12, 12)).await.unwrap();
    let mut at_b = vec![recv_one(&mut sub_b).await, recv_one(&mut sub_b).await];
    at_b.sort_by_key(|m| format!("{m:?}"));
    let mut want = vec![signal(10, 10), signal(11, 11)];
    want.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(at_b, want);
    let mut at_c = vec![recv_one(&mut sub_c).await, recv_one(&mut sub_c).await];
    at_c.sort_by_key(|m| format!("{m:?}"));
    let mut want_c = vec![signal(11, 11), signal(12, 12)];
    want_c.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(at_c, want_c);
    let mut at_d = vec![recv_one(&mut sub_d).await, recv_one(&mut sub_d).await];
    at_d.sort_by_key(|m| format!("{m:?}"));
    let mut want_d = vec![signal(10, 10), signal(12, 12)];
    want_d.sort_by_key(|m| format!("{m:?}"));
    assert_eq!(at_d, want_d);

    // Nothing of the attack reached C or D, or any subscriber: dropped at the first hop.
    for (name, node) in [("C", &cn), ("D", &d)] {
        assert_eq!(
            node.handle.counters().total_dropped(),
            0,
            "{name} saw attack traffic"
        );
    }
    for sub in [&mut sub_b, &mut sub_c, &mut sub_d] {
        assert!(matches!(sub.try_recv(), Err(TryRecvError::Empty)));
    }
    assert_eq!(counters_b.total_dropped(), attacks.len() as u64);
    assert_eq!(counters_b.accepted(), 1 + 2);
}
