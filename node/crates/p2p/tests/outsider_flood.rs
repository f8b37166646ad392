//! An outsider that holds idle TCP sockets to every node cannot keep a member out.
//!
//! A consortium of 4 real nodes on 127.0.0.1; node-3 is stopped; an outsider opens idle
//! TCP connections (they never send a byte) to every node, 24 from 127.0.0.1 and 8 from
//! each of 127.0.0.2 to 127.0.0.5 per node, and re-opens any that close. node-3 restarts
//! with the same key and address while the outsider keeps at it, and must be connected to
//! its three peers and receive their gossip within [`REJOIN_LIMIT`].
//!
//! Set `BACKSTOP_REJOIN_WAIT_SECS` to wait longer than the limit and print how long the
//! rejoin took (to measure it where it fails).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backstop_p2p::network::{self, PeerAddr};
use backstop_p2p::{MemoryCatchUpStore, NetworkHandle};
use common::*;
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::task::JoinSet;
use tokio::time::Instant;

/// A restarted member must be back (connected, gossip delivered) within this.
const REJOIN_LIMIT: Duration = Duration::from_secs(10);
/// Idle sockets per node from 127.0.0.1.
const HELD_FROM_MAIN_IP: usize = 24;
/// Other source addresses of the outsider, and idle sockets per node from each.
const OTHER_IPS: [Ipv4Addr; 4] = [
    Ipv4Addr::new(127, 0, 0, 2),
    Ipv4Addr::new(127, 0, 0, 3),
    Ipv4Addr::new(127, 0, 0, 4),
    Ipv4Addr::new(127, 0, 0, 5),
];
const HELD_PER_OTHER_IP: usize = 8;

/// The outsider's sockets to one node.
#[derive(Default)]
struct Held {
    /// Connected and not closed by the node yet.
    open: AtomicUsize,
    /// Connections made so far.
    opened: AtomicUsize,
}

fn socket_addr(addr: &Multiaddr) -> SocketAddr {
    let mut it = addr.iter();
    match (it.next(), it.next()) {
        (Some(Protocol::Ip4(ip)), Some(Protocol::Tcp(port))) => SocketAddr::new(ip.into(), port),
        _ => panic!("not a TCP address: {addr}"),
    }
}

/// Keeps one idle connection from `src` to `dst` open, re-opening it whenever the node
/// closes it (or connecting again while the node is down).
async fn hold(src: Ipv4Addr, dst: SocketAddr, held: Arc<Held>) {
    loop {
        let socket = TcpSocket::new_v4().unwrap();
        // Closed with a reset: no TIME_WAIT left on the outsider's source ports (which
        // could keep a later node from dialing from the same port number).
        socket.set_zero_linger().unwrap();
        let connected = match socket.bind(SocketAddr::new(IpAddr::V4(src), 0)) {
            Ok(()) => socket.connect(dst).await.ok(),
            Err(_) => None,
        };
        let Some(mut stream) = connected else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        held.opened.fetch_add(1, Ordering::Relaxed);
        held.open.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 256];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        held.open.fetch_sub(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn outsider(targets: &[SocketAddr]) -> (JoinSet<()>, Vec<Arc<Held>>) {
    let mut tasks = JoinSet::new();
    let mut stats = Vec::new();
    for dst in targets {
        let held = Arc::new(Held::default());
        let sources = std::iter::repeat_n(Ipv4Addr::LOCALHOST, HELD_FROM_MAIN_IP).chain(
            OTHER_IPS
                .iter()
                .flat_map(|ip| std::iter::repeat_n(*ip, HELD_PER_OTHER_IP)),
        );
        for src in sources {
            tasks.spawn(hold(src, *dst, held.clone()));
        }
        stats.push(held);
    }
    (tasks, stats)
}

async fn connected_to(handle: &NetworkHandle, peers: &[libp2p::PeerId]) -> bool {
    let connected = handle.peers();
    let gossip = handle.gossip_peers().await.unwrap();
    peers
        .iter()
        .all(|p| connected.contains(p) && gossip.contains(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_member_rejoins_while_an_outsider_holds_idle_sockets() {
    let wait = std::env::var("BACKSTOP_REJOIN_WAIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(REJOIN_LIMIT);
    let keys: Vec<_> = (1..=4u8).map(key).collect();
    let c = consortium(&keys);
    let mut nodes = full_mesh(&keys, false).await;
    wait_connected(&nodes).await;

    // Stop node-3.
    let stopped = nodes.remove(2);
    let listen = vec![stopped.tcp_addr(), stopped.quic_addr()];
    let stopped_tcp = socket_addr(&stopped.tcp_addr());
    stopped.handle.shutdown().await;
    tokio::time::timeout(Duration::from_secs(10), stopped.task)
        .await
        .unwrap()
        .unwrap();
    wait_until(
        "peers notice node-3 is gone",
        Duration::from_secs(30),
        || async { nodes.iter().all(|n| n.handle.peers().len() == 2) },
    )
    .await;

    // The outsider holds idle sockets to every node, node-3's address included.
    let mut targets: Vec<SocketAddr> = nodes.iter().map(|n| socket_addr(&n.tcp_addr())).collect();
    targets.push(stopped_tcp);
    let (holders, held) = outsider(&targets);
    let per_node = HELD_FROM_MAIN_IP + OTHER_IPS.len() * HELD_PER_OTHER_IP;
    wait_until(
        "the outsider holds sockets to every live node",
        Duration::from_secs(30),
        || async {
            held[..3].iter().all(|h| {
                h.opened.load(Ordering::Relaxed) >= per_node && h.open.load(Ordering::Relaxed) >= 8
            })
        },
    )
    .await;
    let open: Vec<usize> = held
        .iter()
        .map(|h| h.open.load(Ordering::Relaxed))
        .collect();
    eprintln!("outsider sockets open per node before the restart: {open:?}");

    // node-3 restarts with the same key and addresses and dials its three peers.
    let peers: Vec<PeerAddr> = nodes
        .iter()
        .map(|n| PeerAddr {
            peer: peer(&n.key),
            addrs: vec![n.tcp_addr()],
        })
        .collect();
    let started = Instant::now();
    let store = Arc::new(MemoryCatchUpStore::new(10_000));
    let (handle, task) = {
        let mut attempt = 0;
        loop {
            let cfg = config(
                &keys[2],
                c.clone(),
                listen.clone(),
                peers.clone(),
                store.clone(),
            );
            match network::spawn(cfg).await {
                Ok(r) => break r,
                // The old port may briefly be taken by someone else's ephemeral socket.
                Err(e) if attempt < 50 => {
                    attempt += 1;
                    eprintln!("restart on the same address failed ({e}), retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("node-3 cannot restart: {e}"),
            }
        }
    };
    let opened_at_restart: Vec<usize> = held
        .iter()
        .map(|h| h.opened.load(Ordering::Relaxed))
        .collect();
    let mut sub = handle.subscribe();
    let me = peer(&keys[2]);
    let others: Vec<_> = nodes.iter().map(|n| peer(&n.key)).collect();
    let deadline = started + wait;

    // Connected both ways, and gossipsub knows it on every side.
    let connected_after = loop {
        let mut done = connected_to(&handle, &others).await;
        for n in &nodes {
            done = done && connected_to(&n.handle, &[me]).await;
        }
        if done {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            panic!(
                "node-3 not back after {:?}: connected to {} of 3 peers",
                started.elapsed(),
                handle.peers().len()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    // And it receives live gossip.
    let sent = publish_when_ready(&nodes[0], signal(7, 7)).await;
    let got = tokio::time::timeout_at(deadline, async {
        loop {
            let m = sub.recv().await.unwrap();
            if m.content_id == sent {
                return m;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no gossip at node-3 after {:?}", started.elapsed()));
    let rejoined = started.elapsed();
    assert!(!got.catch_up, "delivered by gossip, not catch-up");
    assert_eq!(got.message, signal(7, 7));
    eprintln!(
        "node-3 rejoined while the outsider held its sockets: connected after \
         {connected_after:?}, gossip received after {rejoined:?}"
    );
    assert!(
        rejoined <= REJOIN_LIMIT,
        "node-3 took {rejoined:?} to rejoin"
    );

    // The outsider keeps at it after the rejoin, node-3 included (a rejoin can take less
    // time than one of its sockets lives, so wait past libp2p's 10-s upgrade timeout for
    // every node to have closed and been re-opened some), and gets nowhere: every node's
    // peers are then exactly the other members.
    wait_until(
        "the outsider to re-open sockets to every node after the rejoin",
        Duration::from_secs(30),
        || async {
            held.iter().zip(&opened_at_restart).all(|(h, at_restart)| {
                h.opened.load(Ordering::Relaxed) > *at_restart && h.open.load(Ordering::Relaxed) > 0
            })
        },
    )
    .await;
    let mut all = nodes;
    all.push(Node {
        key: keys[2].clone(),
        handle,
        task,
        store,
        consortium: c.clone(),
    });
    for n in &all {
        let mut got = n.handle.peers();
        got.sort();
        let mut want: Vec<_> = all
            .iter()
            .map(|m| peer(&m.key))
            .filter(|p| *p != peer(&n.key))
            .collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(n.handle.gossip_peers().await.unwrap(), want);
    }
    drop(holders);
    for n in &all {
        n.handle.shutdown().await;
    }
}
