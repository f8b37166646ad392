//! Catch-up: how a node that restarted or was partitioned gets the messages of
//! still-open incidents it missed (gossipsub does not replay).
//!
//! A node keeps the envelopes worth replaying in a [`CatchUpStore`] (injected; the node's
//! agreement layer decides when an incident closes). On every new connection to a
//! consortium peer it asks that peer for pages of its store over the request-response
//! protocol [`PROTOCOL`]; every envelope received is re-validated by the same
//! [`crate::validation::Validator`] as gossip, so a serving peer can withhold but never
//! forge or alter anything.
//!
//! Invariants: requests and responses are length-prefixed and bounded
//! ([`MAX_REQUEST_BYTES`], [`MAX_RESPONSE_BYTES`]); a page holds at most
//! [`MAX_PAGE_ENVELOPES`] envelopes; a node fetches at most [`MAX_PAGES_PER_PEER`] pages
//! per connection and serves at most [`MAX_SERVED_PER_MINUTE`] per peer per minute;
//! [`MemoryCatchUpStore`] holds at most its capacity
//! and never serves an envelope of a closed incident.

use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use backstop_proto::gossip::v1 as pb;

use crate::validation::Validated;
use backstop_types::IncidentKey;

/// Request-response protocol name.
pub const PROTOCOL: &str = "/backstop/catchup/1";
/// Largest encoded request.
pub const MAX_REQUEST_BYTES: usize = 1024;
/// Largest encoded response.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// Most envelopes in one page.
pub const MAX_PAGE_ENVELOPES: usize = 256;
/// Most pages a node fetches from one peer per connection.
pub const MAX_PAGES_PER_PEER: usize = 64;
/// Most pages a node serves to one peer per minute (two full catch-ups).
pub const MAX_SERVED_PER_MINUTE: usize = 2 * MAX_PAGES_PER_PEER;

/// One page of a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CatchUpPage {
    /// Encoded envelopes.
    pub envelopes: Vec<Vec<u8>>,
    /// Cursor of the next page.
    pub next_cursor: u64,
    /// Nothing after this page.
    pub done: bool,
}

/// The envelopes a node serves to peers that catch up.
pub trait CatchUpStore: Send + Sync + 'static {
    /// Called with every envelope this node accepted or published. The store keeps what
    /// belongs to still-open incidents.
    fn record(&self, message: &Validated);

    /// Up to `max_envelopes` envelopes, at most `max_bytes` in total, from `cursor` on.
    /// The cursor is opaque to the caller; 0 starts from the beginning.
    fn page(&self, cursor: u64, max_envelopes: usize, max_bytes: usize) -> CatchUpPage;
}

#[derive(Debug, Default)]
struct MemoryInner {
    next: u64,
    entries: BTreeMap<u64, (IncidentKey, [u8; 32], Vec<u8>)>,
    ids: HashSet<[u8; 32]>,
    closed: HashSet<IncidentKey>,
}

/// An in-memory store of the envelopes of open incidents, bounded, oldest evicted first.
#[derive(Debug)]
pub struct MemoryCatchUpStore {
    inner: Mutex<MemoryInner>,
    capacity: usize,
}

impl MemoryCatchUpStore {
    /// A store holding at most `capacity` envelopes.
    pub fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(MemoryInner::default()),
            capacity: capacity.max(1),
        }
    }

    /// Closes `incident`: its envelopes are dropped and later ones are not kept.
    pub fn close(&self, incident: IncidentKey) {
        let mut inner = self.lock();
        inner.closed.insert(incident);
        let gone: Vec<u64> = inner
            .entries
            .iter()
            .filter(|(_, (k, _, _))| *k == incident)
            .map(|(c, _)| *c)
            .collect();
        for c in gone {
            if let Some((_, id, _)) = inner.entries.remove(&c) {
                inner.ids.remove(&id);
            }
        }
    }

    /// Reopens `incident` (it resolved without a draw and its gap came back): its envelopes
    /// are kept again.
    pub fn reopen(&self, incident: IncidentKey) {
        self.lock().closed.remove(&incident);
    }

    /// Number of envelopes held.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryInner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters to readers (each operation is a few map updates), so recover the guard.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl CatchUpStore for MemoryCatchUpStore {
    fn record(&self, message: &Validated) {
        let Some(incident) = message.message.incident() else {
            return;
        };
        let mut inner = self.lock();
        if inner.closed.contains(&incident) || !inner.ids.insert(message.content_id) {
            return;
        }
        let cursor = inner.next;
        inner.next += 1;
        inner.entries.insert(
            cursor,
            (incident, message.content_id, message.envelope.clone()),
        );
        while inner.entries.len() > self.capacity {
            if let Some((_, (_, id, _))) = inner.entries.pop_first() {
                inner.ids.remove(&id);
            }
        }
    }

    fn page(&self, cursor: u64, max_envelopes: usize, max_bytes: usize) -> CatchUpPage {
        let inner = self.lock();
        let mut page = CatchUpPage {
            next_cursor: cursor,
            done: true,
            ..Default::default()
        };
        let mut bytes = 0;
        for (c, (_, _, env)) in inner.entries.range(cursor..) {
            if page.envelopes.len() >= max_envelopes || bytes + env.len() > max_bytes {
                page.done = false;
                break;
            }
            bytes += env.len();
            page.envelopes.push(env.clone());
            page.next_cursor = c + 1;
        }
        page
    }
}

#[cfg(feature = "network")]
mod codec {
    use std::io;

    use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use prost::Message as _;

    use super::{MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES, pb};

    /// Bounded length-prefixed protobuf codec of the catch-up protocol.
    #[derive(Clone, Copy, Debug, Default)]
    pub struct CatchUpCodec;

    pub(super) async fn read_frame<T: AsyncRead + Unpin + Send>(
        io: &mut T,
        max: usize,
    ) -> io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        io.read_exact(&mut len).await?;
        let len = u32::from_be_bytes(len) as usize;
        if len > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame of {len} bytes exceeds {max}"),
            ));
        }
        let mut buf = vec![0u8; len];
        io.read_exact(&mut buf).await?;
        Ok(buf)
    }

    pub(super) async fn write_frame<T: AsyncWrite + Unpin + Send>(
        io: &mut T,
        bytes: &[u8],
        max: usize,
    ) -> io::Result<()> {
        if bytes.len() > max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("frame of {} bytes exceeds {max}", bytes.len()),
            ));
        }
        io.write_all(&(bytes.len() as u32).to_be_bytes()).await?;
        io.write_all(bytes).await?;
        io.close().await
    }

    fn invalid(e: prost::DecodeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    impl libp2p::request_response::Codec for CatchUpCodec {
        type Protocol = libp2p::StreamProtocol;
        type Request = pb::CatchUpRequest;
        type Response = pb::CatchUpResponse;

        async fn read_request<T>(
            &mut self,
            _: &Self::Protocol,
            io: &mut T,
        ) -> io::Result<Self::Request>
        where
            T: AsyncRead + Unpin + Send,
        {
            let buf = read_frame(io, MAX_REQUEST_BYTES).await?;
            pb::CatchUpRequest::decode(buf.as_slice()).map_err(invalid)
        }

        async fn read_response<T>(
            &mut self,
            _: &Self::Protocol,
            io: &mut T,
        ) -> io::Result<Self::Response>
        where
            T: AsyncRead + Unpin + Send,
        {
            let buf = read_frame(io, MAX_RESPONSE_BYTES).await?;
            pb::CatchUpResponse::decode(buf.as_slice()).map_err(invalid)
        }

        async fn write_request<T>(
            &mut self,
            _: &Self::Protocol,
            io: &mut T,
            req: Self::Request,
        ) -> io::Result<()>
        where
            T: AsyncWrite + Unpin + Send,
        {
            write_frame(io, &req.encode_to_vec(), MAX_REQUEST_BYTES).await
        }

        async fn write_response<T>(
            &mut self,
            _: &Self::Protocol,
            io: &mut T,
            res: Self::Response,
        ) -> io::Result<()>
        where
            T: AsyncWrite + Unpin + Send,
        {
            write_frame(io, &res.encode_to_vec(), MAX_RESPONSE_BYTES).await
        }
    }
}

#[cfg(feature = "network")]
pub use codec::CatchUpCodec;

/// Builds the response to `request` from `store`, within every bound.
pub fn serve(store: &dyn CatchUpStore, request: &pb::CatchUpRequest) -> pb::CatchUpResponse {
    let max = (request.max_envelopes as usize).clamp(1, MAX_PAGE_ENVELOPES);
    // Leave room for protobuf framing: a tag and a length prefix per envelope, plus the
    // cursor and flag fields.
    let budget = MAX_RESPONSE_BYTES - 64 - max * 8;
    let mut page = store.page(request.cursor, max, budget);
    let mut used = 0;
    let mut keep = 0;
    for env in &page.envelopes {
        if keep == max || used + env.len() > budget {
            break;
        }
        used += env.len();
        keep += 1;
    }
    if keep < page.envelopes.len() {
        // A store that ignored the bounds: serve what fits and stop here rather than send
        // an answer the peer must refuse or a cursor that skips envelopes.
        tracing::warn!(
            returned = page.envelopes.len(),
            kept = keep,
            "catch-up store exceeded the page bounds"
        );
        page.envelopes.truncate(keep);
        page.done = true;
    }
    pb::CatchUpResponse {
        envelopes: page.envelopes,
        next_cursor: page.next_cursor,
        done: page.done,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use alloy::primitives::{B256, U256};
    use backstop_types::{GapObservation, Message};

    fn validated(member: u8, seq: u64, n: u8) -> Validated {
        let incident = IncidentKey {
            member: B256::repeat_byte(member),
            seq,
        };
        Validated {
            signer: 0,
            timestamp_ms: 0,
            content_id: [n; 32],
            message: Message::GapObservation(GapObservation {
                key: incident,
                home_chain_id: 1,
                block_number: u64::from(n),
                block_hash: B256::ZERO,
                assets: U256::ZERO,
                liabilities: U256::ZERO,
            }),
            envelope: vec![n; 100],
            catch_up: false,
        }
    }

    #[test]
    fn store_pages_in_order_within_bounds() {
        let s = MemoryCatchUpStore::new(100);
        for n in 0..10 {
            s.record(&validated(1, 0, n));
        }
        s.record(&validated(1, 0, 3)); // same content id: kept once
        assert_eq!(s.len(), 10);
        let p = s.page(0, 4, usize::MAX);
        assert_eq!(p.envelopes.len(), 4);
        assert!(!p.done);
        let p2 = s.page(p.next_cursor, 100, 250);
        assert_eq!(p2.envelopes, vec![vec![4u8; 100], vec![5u8; 100]]);
        assert!(!p2.done);
        let rest = s.page(p2.next_cursor, 100, usize::MAX);
        assert_eq!(rest.envelopes.len(), 4);
        assert!(rest.done);
        assert!(
            s.page(rest.next_cursor, 100, usize::MAX)
                .envelopes
                .is_empty()
        );
    }

    #[test]
    fn store_forgets_closed_incidents_and_is_bounded() {
        let s = MemoryCatchUpStore::new(3);
        s.record(&validated(1, 0, 1));
        s.record(&validated(2, 0, 2));
        s.close(IncidentKey {
            member: B256::repeat_byte(1),
            seq: 0,
        });
        assert_eq!(s.len(), 1);
        s.record(&validated(1, 0, 9)); // closed: not kept
        assert_eq!(s.len(), 1);
        for n in 10..15 {
            s.record(&validated(3, 0, n));
        }
        let all = s.page(0, 100, usize::MAX).envelopes;
        assert_eq!(all, vec![vec![12u8; 100], vec![13; 100], vec![14; 100]]);
    }

    struct Greedy;
    impl CatchUpStore for Greedy {
        fn record(&self, _: &Validated) {}
        fn page(&self, _: u64, _: usize, _: usize) -> CatchUpPage {
            CatchUpPage {
                envelopes: vec![vec![0; 1024]; 10_000],
                next_cursor: 7,
                done: false,
            }
        }
    }

    #[test]
    fn serve_enforces_bounds_on_a_store_that_ignores_them() {
        let r = serve(
            &Greedy,
            &pb::CatchUpRequest {
                cursor: 0,
                max_envelopes: 1_000_000,
            },
        );
        assert_eq!(r.envelopes.len(), MAX_PAGE_ENVELOPES);
        assert!(
            r.done,
            "a truncated page must not hand out a cursor that skips"
        );
        use prost::Message as _;
        assert!(r.encode_to_vec().len() <= MAX_RESPONSE_BYTES);
    }

    #[cfg(feature = "network")]
    #[test]
    fn codec_refuses_oversized_frames() {
        use futures::executor::block_on;
        use futures::io::Cursor;
        let mut big = (MAX_RESPONSE_BYTES as u32 + 1).to_be_bytes().to_vec();
        big.extend_from_slice(&[0; 16]);
        let err =
            block_on(codec::read_frame(&mut Cursor::new(big), MAX_RESPONSE_BYTES)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        let mut out = Cursor::new(Vec::new());
        block_on(codec::write_frame(&mut out, &[1, 2, 3], 8)).unwrap();
        let back = block_on(codec::read_frame(&mut Cursor::new(out.into_inner()), 8)).unwrap();
        assert_eq!(back, vec![1, 2, 3]);
        let mut out = Cursor::new(Vec::new());
        assert!(block_on(codec::write_frame(&mut out, &[0; 9], 8)).is_err());
        // Truncated frame.
        let err =
            block_on(codec::read_frame(&mut Cursor::new(vec![0, 0, 0, 5, 1]), 8)).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
