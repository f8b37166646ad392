//! The libp2p swarm and the handle the rest of the node uses.
//!
//! One tokio task owns the [`Swarm`]: TCP (noise, yamux) and QUIC transports; gossipsub
//! on one topic with manual validation (every message goes through
//! [`Validator`] before it is delivered or forwarded), message ids from the SHA-256 of
//! the envelope bytes, strict gossipsub signing and peer scoring; identify; ping; the
//! catch-up request-response protocol; an allow list and connection limits.
//! [`NetworkHandle`] (cloneable) publishes, subscribes to validated messages, reads the
//! peer list and counters, and shuts the task down.
//!
//! Membership: the allow list holds exactly the consortium's PeerIds (minus this node),
//! so a connection to or from any other key is denied right after the handshake, before
//! any protocol runs on it. The task dials every configured peer address at start and,
//! after a failed dial or the loss of the last connection, re-dials with exponential
//! backoff (`redial_min` doubling up to `redial_max`; reset once a connection has lived
//! 10 s, so a peer that keeps dropping us is not hammered). A member that is not
//! configured but announced its listen addresses over identify is re-dialed the same way.
//! TCP dials go out from the listening port (libp2p's port reuse, which lets the peer
//! recognise a member's dial before the handshake); after a failure every other attempt
//! uses a fresh port, in case the listening port cannot be bound for dialing.
//!
//! Before the handshake nobody is known, so pending inbound connections are admitted by
//! source address (`admission::InboundGate`): dials from members' own addresses have a
//! budget of their own, every other source IP a small one ([`PENDING_PER_IP`], at most
//! [`PENDING_TOTAL`] over all), and an inbound TCP handshake must finish within
//! [`INBOUND_HANDSHAKE_TIMEOUT`]. An outsider holding idle sockets can thus neither fill
//! the slots members dial into nor hold any slot for long.
//!
//! Gossip that arrives in a burst (every event the swarm has ready, up to 64 messages)
//! is validated as one ed25519 batch; a lone message is verified singly.
//!
//! Catch-up: on the first connection to a peer the task asks it for its
//! [`CatchUpStore`] pages and validates every envelope received; the store is fed with
//! every envelope this node accepts or publishes.
//!
//! Invariants: only messages the validator accepted reach subscribers, the store or other
//! peers; validation results are reported to gossipsub for every message; the task never
//! blocks on a subscriber (a lagging subscriber gets `RecvError::Lagged`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use futures::{FutureExt, StreamExt};
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::upgrade;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, Swarm, Transport, allow_block_list, connection_limits,
    identify, identity, noise, ping, tcp, yamux,
};
use sha2::{Digest, Sha256};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use backstop_proto::gossip::v1 as pb;

mod admission;

pub use admission::{MEMBER_PENDING, PENDING_PER_IP, PENDING_TOTAL, PendingRefused};

use crate::catchup::{self, CatchUpCodec, CatchUpStore};
use crate::envelope;
use crate::message::Wire;
use crate::validation::{
    Acceptance, Counters, Origin, Validated, ValidationConfig, Validator, Verdict,
};
use backstop_types::Consortium;
use backstop_types::Message;
use backstop_types::time::now_ms;

/// Gossipsub topic of every Backstop gossip message.
pub const TOPIC: &str = "/backstop/gossip/v1";
/// Most gossip messages validated as one batch.
const GOSSIP_BATCH: usize = 64;
/// Identify protocol version string.
pub const IDENTIFY_PROTOCOL: &str = "/backstop/id/1";
/// An inbound TCP connection must finish its noise handshake and muxer negotiation
/// within this (an idle socket holds a pending slot no longer).
pub const INBOUND_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);
/// An outbound connection attempt (TCP connect and upgrade, or QUIC) gives up after this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the network layer.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// Bad configuration.
    #[error("configuration: {0}")]
    Config(String),
    /// A transport or listener could not be set up.
    #[error("transport: {0}")]
    Transport(String),
    /// Gossipsub refused to publish.
    #[error("publish: {0}")]
    Publish(String),
    /// The swarm task is gone.
    #[error("network task stopped")]
    Stopped,
}

/// A peer to dial and its addresses.
#[derive(Clone, Debug)]
pub struct PeerAddr {
    /// Its PeerId (must be a consortium node).
    pub peer: PeerId,
    /// Where to reach it.
    pub addrs: Vec<Multiaddr>,
}

/// Everything the network needs.
#[derive(Clone)]
pub struct NetworkConfig {
    /// This node's ed25519 identity key (must be in the consortium).
    pub identity: SigningKey,
    /// The consortium.
    pub consortium: Arc<Consortium>,
    /// Addresses to listen on (use port 0 and read [`NetworkHandle::listen_addrs`]).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial.
    pub peers: Vec<PeerAddr>,
    /// Validation limits.
    pub validation: ValidationConfig,
    /// Gossipsub heartbeat.
    pub heartbeat: Duration,
    /// First re-dial delay.
    pub redial_min: Duration,
    /// Longest re-dial delay.
    pub redial_max: Duration,
    /// Capacity of the validated-message broadcast.
    pub delivery_capacity: usize,
    /// Idle connections are kept this long.
    pub idle_timeout: Duration,
    /// Store served to and fed by catch-up.
    pub store: Arc<dyn CatchUpStore>,
}

impl NetworkConfig {
    /// Defaults for everything but identity, consortium, addresses and store.
    pub fn new(
        identity: SigningKey,
        consortium: Arc<Consortium>,
        listen: Vec<Multiaddr>,
        peers: Vec<PeerAddr>,
        store: Arc<dyn CatchUpStore>,
    ) -> Self {
        Self {
            identity,
            consortium,
            listen,
            peers,
            validation: ValidationConfig::default(),
            heartbeat: Duration::from_millis(500),
            redial_min: Duration::from_millis(250),
            redial_max: Duration::from_secs(10),
            delivery_capacity: 4096,
            idle_timeout: Duration::from_secs(3600),
            store,
        }
    }
}

/// The PeerId of an ed25519 public key.
pub fn peer_id_of(public_key: &[u8; 32]) -> Result<PeerId, NetworkError> {
    let key = identity::ed25519::PublicKey::try_from_bytes(public_key)
        .map_err(|e| NetworkError::Config(format!("bad ed25519 key: {e}")))?;
    Ok(identity::PublicKey::from(key).to_peer_id())
}

/// Connection-level counters.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections refused because the remote key is not a consortium node.
    pub denied: std::sync::atomic::AtomicU64,
    /// Dial attempts made by the re-dial loop.
    pub dials: std::sync::atomic::AtomicU64,
    /// Inbound connections refused before their handshake because the pending budget of
    /// their source was full (see the module documentation).
    pub refused_pending: std::sync::atomic::AtomicU64,
}

enum Command {
    Publish {
        message: Box<Message>,
        reply: oneshot::Sender<Result<[u8; 32], NetworkError>>,
    },
    #[cfg(feature = "test-util")]
    PublishRaw {
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    PeerScore {
        peer: PeerId,
        reply: oneshot::Sender<Option<f64>>,
    },
    GossipPeers {
        reply: oneshot::Sender<Vec<PeerId>>,
    },
    FollowGuardians {
        consortium: Arc<Consortium>,
        reply: oneshot::Sender<Result<(), NetworkError>>,
    },
    SetPeers {
        peers: Vec<PeerAddr>,
        reply: oneshot::Sender<Result<usize, NetworkError>>,
    },
    Shutdown,
}

/// Cloneable handle to the swarm task.
#[derive(Clone)]
pub struct NetworkHandle {
    commands: mpsc::Sender<Command>,
    delivered: broadcast::Sender<Arc<Validated>>,
    peers: watch::Receiver<Vec<PeerId>>,
    counters: Arc<Counters>,
    connections: Arc<ConnectionCounters>,
    local_peer_id: PeerId,
    listen_addrs: Vec<Multiaddr>,
}

impl NetworkHandle {
    /// Sends the swarm task the command `make` builds around a reply channel, and awaits
    /// the reply.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NetworkError> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(make(reply))
            .await
            .map_err(|_| NetworkError::Stopped)?;
        rx.await.map_err(|_| NetworkError::Stopped)
    }

    /// Signs `message` with this node's key and gossips it. Returns its content id.
    /// The envelope is recorded in the catch-up store before it is sent, so even when
    /// this fails because no peer is subscribed yet, peers that catch up later get it.
    pub async fn publish(&self, message: Message) -> Result<[u8; 32], NetworkError> {
        self.request(|reply| Command::Publish {
            message: Box::new(message),
            reply,
        })
        .await?
    }

    /// Gossips `data` as is, without signing or checking it. Honest code never needs
    /// this; it exists to test how peers treat malformed or forged traffic.
    #[cfg(feature = "test-util")]
    pub async fn publish_raw(&self, data: Vec<u8>) -> Result<(), NetworkError> {
        self.request(|reply| Command::PublishRaw { data, reply })
            .await?
    }

    /// A stream of validated messages (from gossip and catch-up), from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Validated>> {
        self.delivered.subscribe()
    }

    /// Consortium peers currently connected.
    pub fn peers(&self) -> Vec<PeerId> {
        self.peers.borrow().clone()
    }

    /// Watch of the connected peers.
    pub fn peers_watch(&self) -> watch::Receiver<Vec<PeerId>> {
        self.peers.clone()
    }

    /// Validation counters (accepted, dropped by reason).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Connection counters.
    pub fn connection_counters(&self) -> Arc<ConnectionCounters> {
        self.connections.clone()
    }

    /// Gossipsub score this node gives `peer`, if it knows it.
    pub async fn peer_score(&self, peer: PeerId) -> Result<Option<f64>, NetworkError> {
        self.request(|reply| Command::PeerScore { peer, reply })
            .await
    }

    /// Peers gossipsub knows to be subscribed to the Backstop topic (those a publish
    /// reaches directly).
    pub async fn gossip_peers(&self) -> Result<Vec<PeerId>, NetworkError> {
        self.request(|reply| Command::GossipPeers { reply }).await
    }

    /// Follows a guardian rotation the vaults executed: gossip is validated against
    /// `consortium` (the same nodes, with their new guardians) from now on.
    pub async fn follow_guardians(&self, consortium: Arc<Consortium>) -> Result<(), NetworkError> {
        self.request(|reply| Command::FollowGuardians { consortium, reply })
            .await?
    }

    /// Takes `peers` as the configured addresses of the consortium's nodes (an operator's
    /// reload): a peer whose addresses changed is dialed there at once, and the inbound gate
    /// admits it from there; a node no longer listed keeps the addresses it announced. A peer
    /// outside the consortium refuses the whole list and changes nothing. Returns how many
    /// peers' addresses changed.
    pub async fn set_peers(&self, peers: Vec<PeerAddr>) -> Result<usize, NetworkError> {
        self.request(|reply| Command::SetPeers { peers, reply })
            .await?
    }

    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer_id
    }

    /// Addresses the node listens on, with `/p2p/<peer id>`-less concrete ports.
    pub fn listen_addrs(&self) -> &[Multiaddr] {
        &self.listen_addrs
    }

    /// Asks the task to stop; it closes every connection and returns.
    pub async fn shutdown(&self) {
        let _ = self.commands.send(Command::Shutdown).await;
    }
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    gate: admission::InboundGate,
    allow: allow_block_list::Behaviour<allow_block_list::AllowedPeers>,
    limits: connection_limits::Behaviour,
    gossipsub: gossipsub::Behaviour,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    catch_up: request_response::Behaviour<CatchUpCodec>,
}

/// Gossipsub score parameters: only what a small permissioned mesh needs. Invalid
/// messages (P4: weight -2 on the squared count, decay 0.9 per second) push a peer below
/// the publish threshold after 5 and graylist it after about 7; IP colocation is off (members may share hosts in tests
/// and are known anyway); mesh delivery-rate penalties (P3) are off because a quiet
/// consortium would otherwise penalise honest peers.
fn score_params(
    topic: &IdentTopic,
) -> (gossipsub::PeerScoreParams, gossipsub::PeerScoreThresholds) {
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_weight: 0.0,
        ..Default::default()
    };
    params.topics.insert(
        topic.hash(),
        gossipsub::TopicScoreParams {
            topic_weight: 1.0,
            mesh_message_deliveries_weight: 0.0,
            mesh_failure_penalty_weight: 0.0,
            invalid_message_deliveries_weight: -2.0,
            invalid_message_deliveries_decay: 0.9,
            ..Default::default()
        },
    );
    let thresholds = gossipsub::PeerScoreThresholds {
        gossip_threshold: -10.0,
        publish_threshold: -50.0,
        graylist_threshold: -80.0,
        accept_px_threshold: 10.0,
        opportunistic_graft_threshold: 3.0,
    };
    (params, thresholds)
}

struct Dialer {
    addrs: Vec<Multiaddr>,
    /// From identify rather than the configuration (its addresses follow identify).
    learned: bool,
    /// Failed attempts since the last connection.
    failures: u32,
    connected: bool,
    dialing: bool,
    next_attempt: Instant,
    backoff: Duration,
    connected_since: Option<Instant>,
}

impl Dialer {
    /// A dialer on configured addresses, due at once.
    fn configured(addrs: Vec<Multiaddr>, backoff: Duration) -> Self {
        Self {
            addrs,
            learned: false,
            failures: 0,
            connected: false,
            dialing: false,
            next_attempt: Instant::now(),
            backoff,
            connected_since: None,
        }
    }
}

/// Refuses a configured peer outside the consortium.
fn check_peers(
    peer_index: &HashMap<PeerId, usize>,
    peers: &[PeerAddr],
) -> Result<(), NetworkError> {
    match peers.iter().find(|p| !peer_index.contains_key(&p.peer)) {
        Some(p) => Err(NetworkError::Config(format!(
            "peer {} is not in the consortium",
            p.peer
        ))),
        None => Ok(()),
    }
}

/// A connection that lived this long resets the re-dial backoff; one that dropped
/// sooner (a peer that refuses us, a flapping link) keeps it growing.
const STABLE_CONNECTION: Duration = Duration::from_secs(10);

struct Task {
    swarm: Swarm<Behaviour>,
    topic: IdentTopic,
    identity: SigningKey,
    own_index: usize,
    max_envelope_bytes: usize,
    validator: Validator,
    peer_index: HashMap<PeerId, usize>,
    dialers: HashMap<PeerId, Dialer>,
    catch_up_pages: HashMap<request_response::OutboundRequestId, usize>,
    /// Per peer: start of the current window and requests served in it.
    served: HashMap<PeerId, (Instant, usize)>,
    store: Arc<dyn CatchUpStore>,
    delivered: broadcast::Sender<Arc<Validated>>,
    peers_tx: watch::Sender<Vec<PeerId>>,
    connections: Arc<ConnectionCounters>,
    redial_min: Duration,
    redial_max: Duration,
}

/// Starts the network: builds the swarm, binds the listeners, spawns the task.
/// Returns once every listener has an address.
pub async fn spawn(config: NetworkConfig) -> Result<(NetworkHandle, JoinHandle<()>), NetworkError> {
    let own_key = config.identity.verifying_key().to_bytes();
    let own_index = config
        .consortium
        .index_of_identity(&own_key)
        .map(usize::from)
        .ok_or_else(|| NetworkError::Config("this node's key is not in the consortium".into()))?;
    let keypair = identity::Keypair::ed25519_from_bytes(config.identity.to_bytes())
        .map_err(|e| NetworkError::Config(e.to_string()))?;
    let local_peer_id = keypair.public().to_peer_id();

    let mut peer_index = HashMap::new();
    for (i, node) in config.consortium.nodes().iter().enumerate() {
        peer_index.insert(peer_id_of(&node.identity)?, i);
    }
    check_peers(&peer_index, &config.peers)?;

    let topic = IdentTopic::new(TOPIC);
    let max_envelope = config.validation.max_envelope_bytes;
    let heartbeat = config.heartbeat;
    let n = config.consortium.n() as u32;
    let members: Vec<PeerId> = peer_index
        .keys()
        .copied()
        .filter(|p| *p != local_peer_id)
        .collect();
    let (score, thresholds) = score_params(&topic);

    let mut gate = admission::InboundGate::new(members.iter().copied());
    for p in &config.peers {
        for a in &p.addrs {
            gate.configure(p.peer, a);
        }
    }

    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        // TCP with noise and yamux as `with_tcp` builds it, but an inbound connection that
        // has not finished its handshake within INBOUND_HANDSHAKE_TIMEOUT is closed and
        // frees its pending slot. Outbound attempts get DIAL_TIMEOUT (below).
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(TransportTimeout::with_ingoing_timeout(
                    tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
                        .upgrade(upgrade::Version::V1Lazy)
                        .authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default()),
                    INBOUND_HANDSHAKE_TIMEOUT,
                ))
            },
        )
        .map_err(|e| NetworkError::Transport(e.to_string()))?
        .with_behaviour(|key| {
            let gossip_config = gossipsub::ConfigBuilder::default()
                .validate_messages()
                .validation_mode(gossipsub::ValidationMode::Strict)
                .message_id_fn(|m: &gossipsub::Message| {
                    MessageId::from(Sha256::digest(&m.data).to_vec())
                })
                // Above the envelope bound, so that oversized envelopes reach the
                // validator and are counted; far larger frames die in the codec.
                .max_transmit_size(max_envelope * 4 + 1024)
                .heartbeat_interval(heartbeat)
                .build()
                .map_err(|e| e.to_string())?;
            let mut gossipsub = gossipsub::Behaviour::new(
                gossipsub::MessageAuthenticity::Signed(key.clone()),
                gossip_config,
            )?;
            gossipsub.with_peer_score(score, thresholds)?;
            let mut allow =
                allow_block_list::Behaviour::<allow_block_list::AllowedPeers>::default();
            for p in &members {
                allow.allow_peer(*p);
            }
            Ok(Behaviour {
                gate,
                allow,
                // Pending inbound connections are limited by `gate`, per source.
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established_per_peer(Some(2))
                        .with_max_established_incoming(Some(2 * n)),
                ),
                gossipsub,
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
                catch_up: request_response::Behaviour::with_codec(
                    CatchUpCodec,
                    [(
                        StreamProtocol::new(catchup::PROTOCOL),
                        ProtocolSupport::Full,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(10)),
                ),
            })
        })
        .map_err(|e| NetworkError::Config(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(config.idle_timeout))
        .with_connection_timeout(DIAL_TIMEOUT)
        .build();

    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&topic)
        .map_err(|e| NetworkError::Config(e.to_string()))?;

    let mut pending_listeners = Vec::new();
    for addr in &config.listen {
        pending_listeners.push(
            swarm
                .listen_on(addr.clone())
                .map_err(|e| NetworkError::Transport(format!("listen on {addr}: {e}")))?,
        );
    }
    let mut listen_addrs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pending_listeners.is_empty() {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| NetworkError::Transport("listeners did not come up".into()))?;
        match event {
            SwarmEvent::NewListenAddr {
                listener_id,
                address,
            } => {
                pending_listeners.retain(|l| *l != listener_id);
                listen_addrs.push(address);
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                return Err(NetworkError::Transport(format!(
                    "listener closed: {reason:?}"
                )));
            }
            SwarmEvent::ListenerError { error, .. } => {
                return Err(NetworkError::Transport(format!("listener error: {error}")));
            }
            _ => {}
        }
    }

    let dialers = config
        .peers
        .iter()
        .filter(|p| p.peer != local_peer_id)
        .map(|p| {
            (
                p.peer,
                Dialer::configured(p.addrs.clone(), config.redial_min),
            )
        })
        .collect();

    let validator = Validator::new(config.consortium.clone(), config.validation.clone());
    let counters = validator.counters();
    let (commands, commands_rx) = mpsc::channel(1024);
    let (delivered, _) = broadcast::channel(config.delivery_capacity.max(1));
    let (peers_tx, peers) = watch::channel(Vec::new());
    let connections = Arc::new(ConnectionCounters::default());

    let task = Task {
        swarm,
        topic,
        identity: config.identity.clone(),
        own_index,
        max_envelope_bytes: config.validation.max_envelope_bytes,
        validator,
        peer_index,
        dialers,
        catch_up_pages: HashMap::new(),
        served: HashMap::new(),
        store: config.store.clone(),
        delivered: delivered.clone(),
        peers_tx,
        connections: connections.clone(),
        redial_min: config.redial_min,
        redial_max: config.redial_max,
    };
    let join = tokio::spawn(task.run(commands_rx));
    Ok((
        NetworkHandle {
            commands,
            delivered,
            peers,
            counters,
            connections,
            local_peer_id,
            listen_addrs,
        },
        join,
    ))
}

impl Task {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_events(event),
                command = commands.recv() => match command {
                    Some(Command::Shutdown) | None => break,
                    Some(c) => self.on_command(c),
                },
                _ = tick.tick() => self.redial(),
            }
        }
        tracing::debug!(peer = %self.swarm.local_peer_id(), "network task stopping");
        let connected: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for p in connected {
            let _ = self.swarm.disconnect_peer_id(p);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { message, reply } => {
                let _ = reply.send(self.publish(*message));
            }
            #[cfg(feature = "test-util")]
            Command::PublishRaw { data, reply } => {
                let r = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(self.topic.clone(), data)
                    .map(|_| ())
                    .map_err(|e| NetworkError::Publish(e.to_string()));
                let _ = reply.send(r);
            }
            Command::PeerScore { peer, reply } => {
                let _ = reply.send(self.swarm.behaviour().gossipsub.peer_score(&peer));
            }
            Command::GossipPeers { reply } => {
                let topic = self.topic.hash();
                let mut peers: Vec<PeerId> = self
                    .swarm
                    .behaviour()
                    .gossipsub
                    .all_peers()
                    .filter(|(_, topics)| topics.contains(&&topic))
                    .map(|(p, _)| *p)
                    .collect();
                peers.sort();
                let _ = reply.send(peers);
            }
            Command::FollowGuardians { consortium, reply } => {
                let r = self
                    .validator
                    .follow_guardians(consortium)
                    .map_err(NetworkError::Config);
                let _ = reply.send(r);
            }
            Command::SetPeers { peers, reply } => {
                let _ = reply.send(self.set_peers(peers));
            }
            Command::Shutdown => {}
        }
    }

    /// See [`NetworkHandle::set_peers`].
    fn set_peers(&mut self, peers: Vec<PeerAddr>) -> Result<usize, NetworkError> {
        check_peers(&self.peer_index, &peers)?;
        let local = *self.swarm.local_peer_id();
        let peers: Vec<PeerAddr> = peers.into_iter().filter(|p| p.peer != local).collect();
        self.swarm.behaviour_mut().gate.set_configured(
            peers
                .iter()
                .flat_map(|p| p.addrs.iter().map(move |a| (p.peer, a))),
        );
        // A node no longer configured keeps its addresses, from now on following identify.
        for (peer, d) in &mut self.dialers {
            if !peers.iter().any(|p| p.peer == *peer) {
                d.learned = true;
            }
        }
        let mut changed = 0;
        for p in peers {
            match self.dialers.get_mut(&p.peer) {
                Some(d) if d.addrs == p.addrs => d.learned = false,
                Some(d) => {
                    changed += 1;
                    d.addrs = p.addrs;
                    d.learned = false;
                    if !d.connected {
                        // Where it was not reachable before: try the new addresses now.
                        d.failures = 0;
                        d.backoff = self.redial_min;
                        d.next_attempt = Instant::now();
                    }
                }
                None => {
                    changed += 1;
                    let mut d = Dialer::configured(p.addrs, self.redial_min);
                    d.connected = self.swarm.is_connected(&p.peer);
                    self.dialers.insert(p.peer, d);
                }
            }
        }
        Ok(changed)
    }

    /// Signs, records (store and seen-cache), then gossips. The record comes first: if
    /// gossipsub refuses (no peer yet), the envelope is still served to peers that catch
    /// up later, and the caller gets the error.
    fn publish(&mut self, message: Message) -> Result<[u8; 32], NetworkError> {
        let env = envelope::seal(&self.identity, now_ms(), message.encode());
        let content_id = env.content_id();
        let bytes = env.encode();
        if bytes.len() > self.max_envelope_bytes {
            return Err(NetworkError::Publish(format!(
                "envelope of {} bytes exceeds {}",
                bytes.len(),
                self.max_envelope_bytes
            )));
        }
        self.validator.mark_seen(content_id);
        self.store.record(&Validated {
            signer: self.own_index,
            timestamp_ms: env.timestamp_ms,
            content_id,
            message,
            envelope: bytes.clone(),
            catch_up: false,
        });
        self.swarm
            .behaviour_mut()
            .gossipsub
            .publish(self.topic.clone(), bytes)
            .map_err(|e| NetworkError::Publish(e.to_string()))?;
        Ok(content_id)
    }

    fn deliver(&mut self, validated: Validated) {
        self.store.record(&validated);
        // No subscriber is not an error: the node may not be listening yet.
        let _ = self.delivered.send(Arc::new(validated));
    }

    fn publish_peers(&mut self) {
        let mut peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        peers.sort();
        self.peers_tx.send_replace(peers);
    }

    fn redial(&mut self) {
        let now = Instant::now();
        let due: Vec<(PeerId, Vec<Multiaddr>, bool)> = self
            .dialers
            .iter()
            .filter(|(_, d)| !d.connected && !d.dialing && d.next_attempt <= now)
            .map(|(p, d)| (*p, d.addrs.clone(), d.failures % 2 == 1))
            .collect();
        for (peer, addrs, new_port) in due {
            if self.swarm.is_connected(&peer) {
                if let Some(d) = self.dialers.get_mut(&peer) {
                    d.connected = true;
                }
                continue;
            }
            // TCP dials from the listening port (so the peer's gate knows the source);
            // every other attempt after a failure uses a fresh port instead, in case the
            // listening port cannot be bound for dialing.
            let opts = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing);
            let opts = if new_port {
                opts.allocate_new_port()
            } else {
                opts
            };
            let opts = opts.build();
            self.connections
                .dials
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            match self.swarm.dial(opts) {
                Ok(()) => {
                    if let Some(d) = self.dialers.get_mut(&peer) {
                        d.dialing = true;
                    }
                }
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "dial refused");
                    self.dial_failed(peer);
                }
            }
        }
    }

    /// A member announced where it listens (identify runs only on allowed connections):
    /// the gate admits its dials from there, and if it is not a configured peer it gets a
    /// dialer on these addresses, so that it is re-dialed when it drops out.
    fn on_identify(&mut self, peer: PeerId, listen_addrs: Vec<Multiaddr>) {
        if !self.peer_index.contains_key(&peer) || peer == *self.swarm.local_peer_id() {
            return;
        }
        let addrs: Vec<Multiaddr> = listen_addrs
            .into_iter()
            .filter(|a| admission::SocketKey::of(a).is_some())
            .take(8)
            .collect();
        for a in &addrs {
            self.swarm.behaviour_mut().gate.learn(peer, a);
        }
        if addrs.is_empty() {
            return;
        }
        let connected = self.swarm.is_connected(&peer);
        let min = self.redial_min;
        let d = self.dialers.entry(peer).or_insert_with(|| Dialer {
            addrs: Vec::new(),
            learned: true,
            failures: 0,
            connected,
            dialing: false,
            next_attempt: Instant::now(),
            backoff: min,
            connected_since: connected.then(Instant::now),
        });
        if d.learned {
            d.addrs = addrs;
        }
    }

    fn dial_failed(&mut self, peer: PeerId) {
        let max = self.redial_max;
        if let Some(d) = self.dialers.get_mut(&peer) {
            d.dialing = false;
            d.failures = d.failures.wrapping_add(1);
            d.next_attempt = Instant::now() + d.backoff;
            d.backoff = (d.backoff * 2).min(max);
        }
    }

    fn request_catch_up(&mut self, peer: PeerId, cursor: u64, page: usize) {
        let id = self.swarm.behaviour_mut().catch_up.send_request(
            &peer,
            pb::CatchUpRequest {
                cursor,
                max_envelopes: catchup::MAX_PAGE_ENVELOPES as u32,
            },
        );
        self.catch_up_pages.insert(id, page);
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(vec![(propagation_source, message_id, message)]),
            SwarmEvent::Behaviour(BehaviourEvent::CatchUp(event)) => self.on_catch_up(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                endpoint,
                ..
            } => {
                tracing::debug!(%peer_id, addr = %endpoint.get_remote_address(), "connected");
                if let Some(d) = self.dialers.get_mut(&peer_id) {
                    d.connected = true;
                    d.dialing = false;
                    d.failures = 0;
                    d.connected_since.get_or_insert_with(Instant::now);
                }
                if num_established.get() == 1 {
                    self.request_catch_up(peer_id, 0, 1);
                }
                self.publish_peers();
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established,
                cause,
                ..
            } => {
                tracing::debug!(%peer_id, ?cause, "connection closed");
                if num_established == 0 {
                    let (min, max) = (self.redial_min, self.redial_max);
                    if let Some(d) = self.dialers.get_mut(&peer_id) {
                        let now = Instant::now();
                        if d.connected_since
                            .take()
                            .is_some_and(|t| now.duration_since(t) >= STABLE_CONNECTION)
                        {
                            d.backoff = min;
                        }
                        d.connected = false;
                        d.next_attempt = now + d.backoff;
                        d.backoff = (d.backoff * 2).min(max);
                    }
                }
                self.publish_peers();
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                tracing::debug!(?peer_id, %error, "dial failed");
                if matches!(error, libp2p::swarm::DialError::Denied { .. }) {
                    self.connections
                        .denied
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                if let Some(p) = peer_id {
                    self.dial_failed(p);
                }
            }
            SwarmEvent::IncomingConnectionError { error, peer_id, .. } => {
                tracing::debug!(?peer_id, %error, "incoming connection refused");
                if let libp2p::swarm::ListenError::Denied { cause } = &error {
                    let counter = if cause.downcast_ref::<PendingRefused>().is_some() {
                        &self.connections.refused_pending
                    } else {
                        &self.connections.denied
                    };
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identify(peer_id, info.listen_addrs),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!(%address, "listening");
            }
            _ => {}
        }
    }

    /// At most [`catchup::MAX_SERVED_PER_MINUTE`] catch-up pages per peer per minute.
    fn may_serve(&mut self, peer: PeerId) -> bool {
        let now = Instant::now();
        let (start, count) = self.served.entry(peer).or_insert((now, 0));
        if now.duration_since(*start) >= Duration::from_secs(60) {
            *start = now;
            *count = 0;
        }
        *count += 1;
        *count <= catchup::MAX_SERVED_PER_MINUTE
    }

    /// Handles `first` and every event the swarm has ready right now (up to
    /// [`GOSSIP_BATCH`] gossip messages), so that gossip that arrives in a burst is
    /// validated as one ed25519 batch. When idle this is a batch of one, verified singly.
    fn on_swarm_events(&mut self, first: SwarmEvent<BehaviourEvent>) {
        let mut gossip = Vec::new();
        let mut next = Some(first);
        while let Some(event) = next.take() {
            match event {
                SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                })) => gossip.push((propagation_source, message_id, message)),
                other => self.on_swarm_event(other),
            }
            if gossip.len() < GOSSIP_BATCH {
                next = self.swarm.next().now_or_never().flatten();
            }
        }
        if !gossip.is_empty() {
            self.on_gossip(gossip);
        }
    }

    fn on_gossip(&mut self, batch: Vec<(PeerId, MessageId, gossipsub::Message)>) {
        let items: Vec<(Origin, &[u8])> = batch
            .iter()
            .map(|(from, _, message)| {
                let origin = Origin::Gossip {
                    forwarder: self.peer_index.get(from).copied(),
                    source: message
                        .source
                        .and_then(|s| self.peer_index.get(&s).copied()),
                };
                (origin, message.data.as_slice())
            })
            .collect();
        let verdicts = self.validator.validate_batch(now_ms(), &items);
        for ((from, id, _), verdict) in batch.iter().zip(verdicts) {
            let acceptance = match verdict.acceptance() {
                Acceptance::Accept => MessageAcceptance::Accept,
                Acceptance::Reject => MessageAcceptance::Reject,
                Acceptance::Ignore => MessageAcceptance::Ignore,
            };
            self.swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(id, from, acceptance);
            match verdict {
                Verdict::Accept(v) => self.deliver(*v),
                Verdict::Reject(reason) => {
                    tracing::debug!(peer = %from, reason = reason.as_str(), "gossip rejected")
                }
                Verdict::Ignore(reason) => {
                    tracing::trace!(peer = %from, reason = reason.as_str(), "gossip ignored")
                }
            }
        }
    }

    fn on_catch_up(
        &mut self,
        event: request_response::Event<pb::CatchUpRequest, pb::CatchUpResponse>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => {
                    if !self.may_serve(peer) {
                        // Dropping the channel fails the peer's request; nothing is read
                        // from the store for it.
                        tracing::debug!(%peer, "catch-up request over the per-peer limit");
                        return;
                    }
                    let response = catchup::serve(self.store.as_ref(), &request);
                    if self
                        .swarm
                        .behaviour_mut()
                        .catch_up
                        .send_response(channel, response)
                        .is_err()
                    {
                        tracing::debug!(%peer, "catch-up response not sent: stream gone");
                    }
                }
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    let page = self
                        .catch_up_pages
                        .remove(&request_id)
                        .unwrap_or(usize::MAX);
                    let server = self.peer_index.get(&peer).copied();
                    let now = now_ms();
                    let items: Vec<(Origin, &[u8])> = response
                        .envelopes
                        .iter()
                        .take(catchup::MAX_PAGE_ENVELOPES)
                        .map(|e| (Origin::CatchUp { server }, e.as_slice()))
                        .collect();
                    let verdicts = self.validator.validate_batch(now, &items);
                    let mut accepted = 0;
                    for v in verdicts {
                        if let Verdict::Accept(v) = v {
                            accepted += 1;
                            self.deliver(*v);
                        }
                    }
                    tracing::debug!(
                        %peer,
                        page,
                        received = response.envelopes.len(),
                        accepted,
                        "catch-up page"
                    );
                    if !response.done && page < catchup::MAX_PAGES_PER_PEER {
                        self.request_catch_up(peer, response.next_cursor, page + 1);
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                self.catch_up_pages.remove(&request_id);
                tracing::debug!(%peer, %error, "catch-up request failed");
            }
            request_response::Event::InboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "catch-up request not served");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }
}
