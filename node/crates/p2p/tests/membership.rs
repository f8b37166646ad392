//! Only consortium keys may hold a connection: an outsider that dials a member over TCP
//! and over QUIC is refused right after the handshake, again and again, never shows up
//! in the member's peer list, and none of its messages are accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use backstop_p2p::PeerAddr;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_consortium_key_cannot_stay_connected() {
    let members: Vec<_> = (1..=4u8).map(key).collect();
    let nodes = full_mesh(&members, false).await;
    wait_connected(&nodes).await;
    let target = &nodes[0];

    // The outsider believes it belongs (its own configuration lists itself and the
    // members), so it keeps dialing the target on both transports.
    let outsider = key(200);
    let mut believed = members.clone();
    believed.push(outsider.clone());
    let fake = consortium(&believed);
    let intruder = start(
        &outsider,
        fake,
        vec![tcp()],
        vec![PeerAddr {
            peer: peer(&target.key),
            addrs: vec![target.tcp_addr(), target.quic_addr()],
        }],
    )
    .await;

    let denied = target.handle.connection_counters();
    let mut peers = target.handle.peers_watch();
    wait_until(
        "several refused attempts",
        Duration::from_secs(30),
        || async {
            denied.denied.load(Ordering::Relaxed) >= 4
                && intruder
                    .handle
                    .connection_counters()
                    .dials
                    .load(Ordering::Relaxed)
                    >= 3
        },
    )
    .await;
    // The intruder kept trying (re-dial with backoff) and never held a connection the
    // target accepted.
    assert!(!peers.borrow_and_update().contains(&peer(&outsider)));
    assert!(
        !target
            .handle
            .gossip_peers()
            .await
            .unwrap()
            .contains(&peer(&outsider))
    );
    wait_until(
        "the intruder holds no connection",
        Duration::from_secs(10),
        || async { intruder.handle.peers().is_empty() },
    )
    .await;

    // It cannot publish to anyone, and the members' peer lists are untouched.
    assert!(intruder.handle.publish(signal(9, 9)).await.is_err());
    for n in &nodes {
        assert_eq!(n.handle.peers().len(), members.len() - 1);
        assert_eq!(n.handle.counters().total_dropped(), 0);
        assert_eq!(n.handle.counters().accepted(), 0);
    }
}
