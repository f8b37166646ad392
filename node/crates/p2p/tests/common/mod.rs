//! Fixtures shared by the network tests: deterministic keys, a consortium, clusters of
//! real nodes on 127.0.0.1 and condition waits (never fixed sleeps).
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code, missing_docs)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use backstop_p2p::network::{self, NetworkHandle, peer_id_of};
use backstop_p2p::{MemoryCatchUpStore, NetworkConfig, PeerAddr};
use backstop_types::{
    Consortium, GapObservation, IncidentKey, Message, NodeInfo, Signal, SignalKind,
};
use ed25519_dalek::SigningKey;
use libp2p::{Multiaddr, PeerId};
use tokio::task::JoinHandle;

pub fn key(seed: u8) -> SigningKey {
    let mut b = [0u8; 32];
    b[0] = seed;
    b[31] = 0xB5;
    SigningKey::from_bytes(&b)
}

pub fn guardian(seed: u8) -> Address {
    Address::repeat_byte(seed)
}

pub fn consortium(keys: &[SigningKey]) -> Arc<Consortium> {
    Arc::new(
        Consortium::new(
            keys.iter()
                .enumerate()
                .map(|(i, k)| NodeInfo {
                    identity: k.verifying_key().to_bytes(),
                    guardian: guardian(i as u8 + 1),
                })
                .collect(),
        )
        .unwrap(),
    )
}

pub fn peer(k: &SigningKey) -> PeerId {
    peer_id_of(&k.verifying_key().to_bytes()).unwrap()
}

pub fn tcp() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/0".parse().unwrap()
}

pub fn quic() -> Multiaddr {
    "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap()
}

pub struct Node {
    pub key: SigningKey,
    pub handle: NetworkHandle,
    pub task: JoinHandle<()>,
    pub store: Arc<MemoryCatchUpStore>,
    pub consortium: Arc<Consortium>,
}

impl Node {
    /// Consortium index of `key` (same on every node).
    pub fn handle_consortium_index(&self, key: &[u8; 32]) -> usize {
        usize::from(self.consortium.index_of_identity(key).unwrap())
    }
    pub fn tcp_addr(&self) -> Multiaddr {
        self.addr("tcp")
    }
    pub fn quic_addr(&self) -> Multiaddr {
        self.addr("quic")
    }
    fn addr(&self, kind: &str) -> Multiaddr {
        self.handle
            .listen_addrs()
            .iter()
            .find(|a| a.to_string().contains(kind))
            .cloned()
            .unwrap()
    }
}

pub fn config(
    key: &SigningKey,
    consortium: Arc<Consortium>,
    listen: Vec<Multiaddr>,
    peers: Vec<PeerAddr>,
    store: Arc<MemoryCatchUpStore>,
) -> NetworkConfig {
    let mut c = NetworkConfig::new(key.clone(), consortium, listen, peers, store);
    c.heartbeat = Duration::from_millis(200);
    c.redial_min = Duration::from_millis(100);
    c.redial_max = Duration::from_secs(2);
    c
}

pub async fn start(
    key: &SigningKey,
    consortium: Arc<Consortium>,
    listen: Vec<Multiaddr>,
    peers: Vec<PeerAddr>,
) -> Node {
    let store = Arc::new(MemoryCatchUpStore::new(10_000));
    let (handle, task) = network::spawn(config(
        key,
        consortium.clone(),
        listen,
        peers,
        store.clone(),
    ))
    .await
    .unwrap();
    Node {
        key: key.clone(),
        handle,
        task,
        store,
        consortium,
    }
}

/// Starts `keys.len()` nodes; node i dials every node j < i on TCP, or on QUIC if
/// `quic` (so every pair is connected once the mesh forms).
pub async fn full_mesh(keys: &[SigningKey], quic_dial: bool) -> Vec<Node> {
    let c = consortium(keys);
    let mut nodes: Vec<Node> = Vec::new();
    for k in keys {
        let peers = nodes
            .iter()
            .map(|n| PeerAddr {
                peer: peer(&n.key),
                addrs: vec![if quic_dial {
                    n.quic_addr()
                } else {
                    n.tcp_addr()
                }],
            })
            .collect();
        nodes.push(start(k, c.clone(), vec![tcp(), quic()], peers).await);
    }
    nodes
}

/// Waits until `cond` holds, polling; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until every node is connected to every other and gossipsub has a peer to
/// publish to (a publish of a probe from each node reaches all others).
pub async fn wait_connected(nodes: &[Node]) {
    let n = nodes.len();
    wait_until("full connectivity", Duration::from_secs(30), || async {
        for x in nodes {
            if x.handle.peers().len() != n - 1
                || x.handle.gossip_peers().await.unwrap().len() != n - 1
            {
                return false;
            }
        }
        true
    })
    .await;
}

pub fn signal(subject: u8, at: u64) -> Message {
    Message::Signal(Signal {
        kind: SignalKind::AbnormalOutflow,
        subject: B256::repeat_byte(subject),
        observed_at_ms: at,
        evidence: vec![subject; 16].into(),
    })
}

pub fn gap(member: u8, seq: u64) -> Message {
    Message::GapObservation(GapObservation {
        key: IncidentKey {
            member: B256::repeat_byte(member),
            seq,
        },
        home_chain_id: 31337,
        block_number: 100 + seq,
        block_hash: B256::repeat_byte(0xbb),
        assets: U256::from(1_000u64),
        liabilities: U256::from(1_500u64),
    })
}

/// Publishes `message` from `node`, retrying while gossipsub has no subscribed peer yet.
pub async fn publish_when_ready(node: &Node, message: Message) -> [u8; 32] {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match node.handle.publish(message.clone()).await {
            Ok(id) => return id,
            Err(e) if tokio::time::Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("publish failed: {e}"),
        }
    }
}
