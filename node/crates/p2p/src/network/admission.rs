//! Admission of inbound connections before their handshake.
//!
//! An inbound connection is *pending* from the moment its socket is accepted until its
//! noise handshake and muxer negotiation are done; only then is the remote key known and
//! can the allow list refuse a non-member. Anyone can open sockets, so a single shared cap
//! on pending connections lets an outsider that holds idle sockets take every slot and
//! keep members out. [`InboundGate`] sorts each pending inbound connection by its source
//! address into one of three budgets:
//!
//! 1. **member**: the source (IP, port, TCP or UDP) is a known address of a consortium
//!    member: configured, seen on one of its established connections, or announced by the
//!    member over identify. libp2p dials from the listening port (port reuse, on by
//!    default for TCP and inherent to QUIC), so a member's dials land here. At most
//!    [`MEMBER_PENDING`] per member; nobody else competes for these slots.
//! 2. **member host**: the source IP is that of a known member address (another port).
//!    At most [`PENDING_PER_IP`] per IP, not counted against the total below.
//! 3. **anyone else**: at most [`PENDING_PER_IP`] per IP (IPv6: per /64) and
//!    [`PENDING_TOTAL`] over all.
//!
//! The gate only decides who may attempt the handshake; the allow list still refuses every
//! non-member right after it, so membership is unchanged. Together with the short inbound
//! handshake timeout of the TCP transport, an outsider's idle socket holds a slot of its
//! own IP's budget for a few seconds at most and never one of a member's.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr};
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// Pending inbound connections per member from its known addresses.
pub const MEMBER_PENDING: usize = 2;
/// Pending inbound connections per source IP (IPv6: per /64) not from a member address.
pub const PENDING_PER_IP: usize = 8;
/// Pending inbound connections over all sources outside the first two budgets.
pub const PENDING_TOTAL: usize = 64;
/// Addresses remembered per member besides its configured ones (oldest forgotten first).
const LEARNED_PER_MEMBER: usize = 8;

/// Why the gate refused a pending inbound connection.
#[derive(Debug, thiserror::Error)]
#[error("pending inbound budget of {0} is full")]
pub struct PendingRefused(&'static str);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Transport {
    Tcp,
    Udp,
}

/// A transport-level source or listening address: IP, port and TCP or UDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct SocketKey {
    ip: IpAddr,
    port: u16,
    transport: Transport,
}

impl SocketKey {
    /// The IP and port of `/ip4|ip6/.../tcp|udp/...`; `None` for anything else and for
    /// unspecified IPs or port 0 (nothing a connection can come from).
    pub(crate) fn of(addr: &Multiaddr) -> Option<Self> {
        let mut it = addr.iter();
        let ip = match it.next()? {
            Protocol::Ip4(ip) => IpAddr::V4(ip),
            Protocol::Ip6(ip) => ip
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(ip)),
            _ => return None,
        };
        let (port, transport) = match it.next()? {
            Protocol::Tcp(p) => (p, Transport::Tcp),
            Protocol::Udp(p) => (p, Transport::Udp),
            _ => return None,
        };
        if ip.is_unspecified() || port == 0 {
            return None;
        }
        Some(Self {
            ip,
            port,
            transport,
        })
    }
}

/// The per-IP bucket of `ip`: the address itself for IPv4, its /64 for IPv6.
fn ip_bucket(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Slot {
    Member(PeerId),
    /// Source IP bucket, and whether it counts against [`PENDING_TOTAL`].
    Ip(IpAddr, bool),
}

/// The behaviour that enforces the budgets (no protocol of its own).
#[derive(Default)]
pub struct InboundGate {
    /// Configured member addresses (replaced as a whole by [`InboundGate::set_configured`]).
    configured: HashMap<SocketKey, PeerId>,
    /// Addresses members were seen at or announced, newest last per member.
    learned: HashMap<PeerId, VecDeque<SocketKey>>,
    learned_at: HashMap<SocketKey, PeerId>,
    members: HashSet<PeerId>,
    pending: HashMap<ConnectionId, Slot>,
    per_member: HashMap<PeerId, usize>,
    per_ip: HashMap<IpAddr, usize>,
    total: usize,
}

impl InboundGate {
    /// A gate for `members` (the allow list); only their addresses are ever learned.
    pub fn new(members: impl IntoIterator<Item = PeerId>) -> Self {
        Self {
            members: members.into_iter().collect(),
            ..Default::default()
        }
    }

    /// Records a configured address of `peer`.
    pub fn configure(&mut self, peer: PeerId, addr: &Multiaddr) {
        if let Some(key) = SocketKey::of(addr)
            && self.members.contains(&peer)
        {
            self.configured.insert(key, peer);
        }
    }

    /// Replaces every configured address (an operator's reload); addresses learned stay.
    pub fn set_configured<'a>(&mut self, addrs: impl IntoIterator<Item = (PeerId, &'a Multiaddr)>) {
        self.configured.clear();
        for (peer, addr) in addrs {
            self.configure(peer, addr);
        }
    }

    /// Records an address `peer` was seen at or announced. Ignored for non-members.
    pub fn learn(&mut self, peer: PeerId, addr: &Multiaddr) {
        let Some(key) = SocketKey::of(addr) else {
            return;
        };
        if !self.members.contains(&peer) || self.configured.contains_key(&key) {
            return;
        }
        if let Some(previous) = self.learned_at.insert(key, peer)
            && let Some(list) = self.learned.get_mut(&previous)
        {
            list.retain(|k| *k != key);
        }
        let list = self.learned.entry(peer).or_default();
        list.push_back(key);
        while list.len() > LEARNED_PER_MEMBER {
            if let Some(old) = list.pop_front() {
                self.learned_at.remove(&old);
            }
        }
    }

    fn member_at(&self, key: &SocketKey) -> Option<PeerId> {
        self.configured
            .get(key)
            .or_else(|| self.learned_at.get(key))
            .copied()
    }

    fn is_member_host(&self, ip: IpAddr) -> bool {
        self.configured
            .keys()
            .chain(self.learned_at.keys())
            .any(|k| k.ip == ip)
    }

    /// Takes a slot for a connection from `remote`, or says which budget is full.
    fn admit(&mut self, id: ConnectionId, remote: &Multiaddr) -> Result<(), PendingRefused> {
        let key = SocketKey::of(remote);
        if let Some(peer) = key.as_ref().and_then(|k| self.member_at(k)) {
            let n = self.per_member.entry(peer).or_default();
            if *n >= MEMBER_PENDING {
                return Err(PendingRefused("a member address"));
            }
            *n += 1;
            self.pending.insert(id, Slot::Member(peer));
            return Ok(());
        }
        // A source that is not IP (never seen on TCP or QUIC) shares one bucket.
        let ip = key
            .map(|k| k.ip)
            .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        let counted = !key.is_some_and(|k| self.is_member_host(k.ip));
        let bucket = ip_bucket(ip);
        if self.per_ip.get(&bucket).copied().unwrap_or(0) >= PENDING_PER_IP {
            return Err(PendingRefused("a source IP"));
        }
        if counted && self.total >= PENDING_TOTAL {
            return Err(PendingRefused("unknown sources"));
        }
        *self.per_ip.entry(bucket).or_default() += 1;
        if counted {
            self.total += 1;
        }
        self.pending.insert(id, Slot::Ip(bucket, counted));
        Ok(())
    }

    fn release(&mut self, id: ConnectionId) {
        match self.pending.remove(&id) {
            Some(Slot::Member(peer)) => {
                if let Some(n) = self.per_member.get_mut(&peer) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_member.remove(&peer);
                    }
                }
            }
            Some(Slot::Ip(bucket, counted)) => {
                if let Some(n) = self.per_ip.get_mut(&bucket) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.per_ip.remove(&bucket);
                    }
                }
                if counted {
                    self.total = self.total.saturating_sub(1);
                }
            }
            None => {}
        }
    }

    /// Pending inbound connections holding a slot.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.pending.len()
    }
}

impl NetworkBehaviour for InboundGate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.admit(connection_id, remote_addr)
            .map_err(ConnectionDenied::new)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _peer: PeerId,
        _local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.release(connection_id);
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection_id: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            // Denied by the allow list (or any behaviour), timed out, or failed: the slot
            // is free again. A connection refused here is not in `pending`.
            FromSwarm::ListenFailure(f) => self.release(f.connection_id),
            FromSwarm::ConnectionEstablished(e) => {
                // Every behaviour accepted it, so `peer_id` is a member.
                self.release(e.connection_id);
                self.learn(e.peer_id, e.endpoint.get_remote_address());
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_outsider_cannot_take_a_members_slot() {
        let member = PeerId::random();
        let mut gate = InboundGate::new([member]);
        gate.configure(member, &addr("/ip4/127.0.0.1/tcp/4000"));
        // The outsider fills its IP's budget from 127.0.0.1 and the total from others.
        let mut admitted = 0;
        for i in 0..PENDING_PER_IP + 5 {
            let from = addr(&format!("/ip4/127.0.0.1/tcp/{}", 50_000 + i));
            admitted += usize::from(gate.admit(ConnectionId::new_unchecked(i), &from).is_ok());
        }
        assert_eq!(admitted, PENDING_PER_IP);
        let mut others = 0;
        for i in 0..PENDING_TOTAL * 2 {
            let from = addr(&format!("/ip4/10.0.{}.{}/tcp/5000", i / 200, i % 200 + 1));
            let id = ConnectionId::new_unchecked(1000 + i);
            others += usize::from(gate.admit(id, &from).is_ok());
        }
        assert_eq!(others, PENDING_TOTAL);
        // The member still gets its slots, from its configured address.
        let from = addr("/ip4/127.0.0.1/tcp/4000");
        for i in 0..MEMBER_PENDING {
            assert!(
                gate.admit(ConnectionId::new_unchecked(5000 + i), &from)
                    .is_ok()
            );
        }
        assert!(
            gate.admit(ConnectionId::new_unchecked(5100), &from)
                .is_err()
        );
        // Slots come back when connections end.
        gate.release(ConnectionId::new_unchecked(5000));
        assert!(gate.admit(ConnectionId::new_unchecked(5101), &from).is_ok());
        let before = gate.pending();
        for i in 0..PENDING_PER_IP {
            gate.release(ConnectionId::new_unchecked(i));
        }
        assert_eq!(gate.pending(), before - PENDING_PER_IP);
        let from = addr("/ip4/127.0.0.1/tcp/60000");
        assert!(gate.admit(ConnectionId::new_unchecked(6000), &from).is_ok());
    }

    #[test]
    fn learned_addresses_are_bounded_and_only_for_members() {
        let member = PeerId::random();
        let stranger = PeerId::random();
        let mut gate = InboundGate::new([member]);
        gate.learn(stranger, &addr("/ip4/10.0.0.9/tcp/1"));
        assert!(
            gate.member_at(&SocketKey::of(&addr("/ip4/10.0.0.9/tcp/1")).unwrap())
                .is_none()
        );
        for p in 1..=20u16 {
            gate.learn(member, &addr(&format!("/ip4/10.0.0.1/udp/{p}/quic-v1")));
        }
        assert_eq!(gate.learned_at.len(), LEARNED_PER_MEMBER);
        let newest = SocketKey::of(&addr("/ip4/10.0.0.1/udp/20")).unwrap();
        assert_eq!(gate.member_at(&newest), Some(member));
        // TCP and UDP ports are distinct; unspecified addresses are never sources.
        assert!(
            gate.member_at(&SocketKey::of(&addr("/ip4/10.0.0.1/tcp/20")).unwrap())
                .is_none()
        );
        assert!(SocketKey::of(&addr("/ip4/0.0.0.0/tcp/20")).is_none());
        // A member's host (other port) is capped per IP but not by the total.
        let mut gate = InboundGate::new([member]);
        gate.configure(member, &addr("/ip4/10.0.0.1/tcp/4000"));
        for i in 0..PENDING_TOTAL {
            let from = addr(&format!("/ip4/10.1.{}.{}/tcp/5000", i / 200, i % 200 + 1));
            assert!(gate.admit(ConnectionId::new_unchecked(i), &from).is_ok());
        }
        let host = addr("/ip4/10.0.0.1/tcp/40000");
        assert!(gate.admit(ConnectionId::new_unchecked(900), &host).is_ok());
        let stranger_ip = addr("/ip4/10.2.0.1/tcp/40000");
        assert!(
            gate.admit(ConnectionId::new_unchecked(901), &stranger_ip)
                .is_err()
        );
    }
}
