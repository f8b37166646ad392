//! A node killed and restarted rejoins (its peers re-dial it with backoff) and catches up
//! on the messages of still-open incidents it missed, once each, and not on closed ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::B256;
use backstop_p2p::validation::Validated;
use backstop_p2p::{CatchUpStore, DropReason, PeerAddr};
use backstop_types::IncidentKey;
use common::*;
use tokio::sync::broadcast;

async fn next(sub: &mut broadcast::Receiver<Arc<Validated>>) -> Arc<Validated> {
    tokio::time::timeout(Duration::from_secs(30), sub.recv())
        .await
        .expect("no message")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_node_rejoins_and_catches_up_on_open_incidents() {
    let keys: Vec<_> = (1..=4u8).map(key).collect();
    let c = consortium(&keys);
    let at = |i: usize, n: &Node| PeerAddr {
        peer: peer(&keys[i]),
        addrs: vec![n.tcp_addr()],
    };
    // D (index 3) listens and dials nobody; A, B and C dial D and each other, so after D
    // restarts only their re-dial loops can bring it back.
    let d = start(&keys[3], c.clone(), vec![tcp()], vec![]).await;
    let d_addr = d.tcp_addr();
    let a = start(&keys[0], c.clone(), vec![tcp()], vec![at(3, &d)]).await;
    let b = start(&keys[1], c.clone(), vec![tcp()], vec![at(3, &d), at(0, &a)]).await;
    let cn = start(
        &keys[2],
        c.clone(),
        vec![tcp()],
        vec![at(3, &d), at(0, &a), at(1, &b)],
    )
    .await;
    let mut nodes = vec![a, b, cn, d];
    wait_connected(&nodes).await;

    // Kill D (abort its task: no goodbye, the swarm is dropped with it).
    let d = nodes.pop().unwrap();
    d.task.abort();
    assert!(d.task.await.unwrap_err().is_cancelled());
    wait_until(
        "peers notice D is gone",
        Duration::from_secs(30),
        || async { nodes.iter().all(|n| n.handle.peers().len() == 2) },
    )
    .await;

    // While D is down: an incident opens (A), another opens and closes (B), a signal (C).
    let open = IncidentKey {
        member: B256::repeat_byte(1),
        seq: 0,
    };
    let closed = IncidentKey {
        member: B256::repeat_byte(2),
        seq: 0,
    };
    let mut subs: Vec<_> = nodes.iter().map(|n| n.handle.subscribe()).collect();
    let open_id = publish_when_ready(&nodes[0], gap(1, 0)).await;
    let closed_id = publish_when_ready(&nodes[1], gap(2, 0)).await;
    publish_when_ready(&nodes[2], signal(3, 3)).await;
    for (i, sub) in subs.iter_mut().enumerate() {
        for _ in 0..2 {
            next(sub).await;
        }
        assert!(!nodes[i].store.is_empty());
    }
    for n in &nodes {
        n.store.close(closed);
        assert_eq!(
            n.store.len(),
            1,
            "only the open incident's envelope is kept"
        );
        assert_eq!(n.store.page(0, 10, 1 << 20).envelopes.len(), 1);
    }

    // D restarts with the same key and address and an empty store.
    let d = start(&keys[3], c.clone(), vec![d_addr.clone()], vec![]).await;
    assert_eq!(d.tcp_addr(), d_addr);
    let mut sub_d = d.handle.subscribe();
    let first = next(&mut sub_d).await;
    assert_eq!(first.content_id, open_id);
    assert_eq!(first.message, gap(1, 0));
    assert_eq!(first.message.incident(), Some(open));
    assert!(
        first.catch_up,
        "gossipsub does not replay; this came from catch-up"
    );
    // Three peers served it: one copy accepted, the other two are duplicates.
    wait_until(
        "D rejoined the whole mesh",
        Duration::from_secs(30),
        || async {
            d.handle.peers().len() == 3 && d.handle.gossip_peers().await.unwrap().len() == 3
        },
    )
    .await;
    wait_until(
        "every catch-up answer processed",
        Duration::from_secs(30),
        || async { d.handle.counters().dropped(DropReason::Duplicate) == 2 },
    )
    .await;
    // The restarted node now serves the open incident itself.
    assert_eq!(d.store.len(), 1);

    // Live gossip reaches it again.
    nodes.push(d);
    wait_connected(&nodes).await;
    let live_id = nodes[1].handle.publish(signal(9, 9)).await.unwrap();
    let m = next(&mut sub_d).await;
    assert_eq!(m.content_id, live_id);
    // Nothing of the closed incident nor the old signal was replayed.
    assert_ne!(m.content_id, closed_id);
    assert!(sub_d.try_recv().is_err());
    let cd = nodes[3].handle.counters();
    assert_eq!(cd.accepted(), 2);
    assert_eq!(cd.total_dropped(), 2);
}
