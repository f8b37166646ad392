//! 4 and 7 real nodes on 127.0.0.1 form a mesh; a message from any node reaches all others
//! exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::*;

async fn every_node_reaches_every_other(n: u8, quic: bool) {
    let keys: Vec<_> = (1..=n).map(key).collect();
    let nodes = full_mesh(&keys, quic).await;
    wait_connected(&nodes).await;
    let mut subs: Vec<_> = nodes.iter().map(|x| x.handle.subscribe()).collect();

    let mut sent = HashMap::new();
    for (i, node) in nodes.iter().enumerate() {
        let id = publish_when_ready(node, signal(i as u8, i as u64)).await;
        sent.insert(id, i);
    }
    for (j, sub) in subs.iter_mut().enumerate() {
        let mut got = HashMap::new();
        while got.len() < nodes.len() - 1 {
            let m = tokio::time::timeout(Duration::from_secs(30), sub.recv())
                .await
                .unwrap_or_else(|_| panic!("node {j} got only {} messages", got.len()))
                .unwrap();
            let from = *sent.get(&m.content_id).expect("a message nobody sent");
            assert_ne!(from, j, "a node received its own message");
            assert!(got.insert(m.content_id, from).is_none(), "delivered twice");
            assert_eq!(m.message, signal(from as u8, from as u64));
            let signer = nodes[from].key.verifying_key().to_bytes();
            assert_eq!(m.signer, nodes[0].handle_consortium_index(&signer));
        }
    }
    for (j, x) in nodes.iter().enumerate() {
        let c = x.handle.counters();
        assert_eq!(c.accepted(), nodes.len() as u64 - 1, "node {j}");
        // Honest traffic is never rejected (duplicates and echoes may be ignored).
        for r in backstop_p2p::DropReason::ALL {
            if r.acceptance() == backstop_p2p::validation::Acceptance::Reject {
                assert_eq!(
                    c.dropped(r),
                    0,
                    "node {j} rejected honest traffic: {}",
                    r.as_str()
                );
            }
        }
    }
    for x in &nodes {
        x.handle.shutdown().await;
    }
    for x in nodes {
        tokio::time::timeout(Duration::from_secs(10), x.task)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_over_tcp() {
    every_node_reaches_every_other(4, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seven_nodes_over_quic() {
    every_node_reaches_every_other(7, true).await;
}
