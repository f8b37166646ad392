//! An operator's reload of the peers' addresses: a node configured with an address where
//! its peer does not listen connects once the reload names the right one; a list naming a
//! key outside the consortium is refused whole and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use backstop_p2p::PeerAddr;
use common::*;
use libp2p::Multiaddr;

/// A loopback TCP address nothing listens on (a port just bound and released).
fn closed_tcp_port() -> Multiaddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_address_is_dialed_and_a_stranger_refuses_the_list() {
    let keys: Vec<_> = (1..=4u8).map(key).collect();
    let c = consortium(&keys);
    // b dials nobody: only a's dials can connect the two.
    let b = start(&keys[1], c.clone(), vec![tcp()], vec![]).await;
    let a = start(
        &keys[0],
        c.clone(),
        vec![tcp()],
        vec![PeerAddr {
            peer: peer(&b.key),
            addrs: vec![closed_tcp_port()],
        }],
    )
    .await;
    let dials = a.handle.connection_counters();
    wait_until(
        "a's dials to the wrong address",
        Duration::from_secs(10),
        || async { dials.dials.load(Ordering::Relaxed) >= 2 },
    )
    .await;
    assert!(a.handle.peers().is_empty(), "nothing listens there");

    // A list naming a key outside the consortium is refused, and the old one stays.
    let stranger = PeerAddr {
        peer: peer(&key(200)),
        addrs: vec![b.tcp_addr()],
    };
    let right = PeerAddr {
        peer: peer(&b.key),
        addrs: vec![b.tcp_addr()],
    };
    let refused = a.handle.set_peers(vec![right.clone(), stranger]).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("not in the consortium")),
        "{refused:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        a.handle.peers().is_empty(),
        "the refused list was not taken"
    );

    // The right address: a dials it and both hold the connection.
    assert_eq!(a.handle.set_peers(vec![right.clone()]).await.unwrap(), 1);
    wait_until("a and b connected", Duration::from_secs(10), || async {
        a.handle.peers() == vec![peer(&b.key)] && b.handle.peers() == vec![peer(&a.key)]
    })
    .await;
    // The same list again changes nothing.
    assert_eq!(a.handle.set_peers(vec![right]).await.unwrap(), 0);
}
