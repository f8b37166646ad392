//! The key-value interface the node state is kept in, and an in-memory implementation.
//!
//! A [`Kv`] has named column families ([`Cf`]) and applies a [`WriteBatch`] atomically; a
//! write with `sync = true` is durable when it returns (the RocksDB implementation in
//! `backstop-store` uses a synced WAL write). [`MemoryKv`] keeps the same contract in
//! memory; its handle is cloneable so that a simulated crash drops the state machine but
//! keeps "the disk".

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Column families of the node state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Cf {
    /// Schema version and other metadata.
    Meta,
    /// What this node signed: one digest per key.
    SignGuard,
    /// Incidents and their progress.
    Incidents,
    /// Accepted draw proposals.
    Proposals,
    /// Verified attestations, by digest and signer.
    Attestations,
    /// Certificates formed.
    Certificates,
    /// Submissions sent.
    Submissions,
    /// Threshold actions seen.
    Actions,
    /// Closed incidents, oldest opened first: kept for operators and deep reorgs, pruned
    /// past their retention, never read whole at start-up.
    Closed,
    /// Per member, what its closed incidents leave for later ones (see
    /// `state::MemberRecord`).
    Members,
}

impl Cf {
    /// Every column family.
    pub const ALL: [Cf; 10] = [
        Cf::Meta,
        Cf::SignGuard,
        Cf::Incidents,
        Cf::Proposals,
        Cf::Attestations,
        Cf::Certificates,
        Cf::Submissions,
        Cf::Actions,
        Cf::Closed,
        Cf::Members,
    ];

    /// Its name on disk.
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "meta",
            Cf::SignGuard => "sign_guard",
            Cf::Incidents => "incidents",
            Cf::Proposals => "proposals",
            Cf::Attestations => "attestations",
            Cf::Certificates => "certificates",
            Cf::Submissions => "submissions",
            Cf::Actions => "actions",
            Cf::Closed => "closed",
            Cf::Members => "members",
        }
    }
}

/// A backend failure (I/O, corruption). The node cannot go on safely after one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("storage backend: {0}")]
pub struct KvError(pub String);

/// One put (`Some`) or delete (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOp {
    /// Column family.
    pub cf: Cf,
    /// Key.
    pub key: Vec<u8>,
    /// New value, or `None` to delete.
    pub value: Option<Vec<u8>>,
}

/// Writes applied atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    /// Operations, in order.
    pub ops: Vec<BatchOp>,
}

impl WriteBatch {
    /// Adds a put.
    pub fn put(&mut self, cf: Cf, key: Vec<u8>, value: Vec<u8>) -> &mut Self {
        self.ops.push(BatchOp {
            cf,
            key,
            value: Some(value),
        });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, cf: Cf, key: Vec<u8>) -> &mut Self {
        self.ops.push(BatchOp {
            cf,
            key,
            value: None,
        });
        self
    }
}

/// Entries of a column family, in the order asked for.
pub type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Which end of a column family a scan starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Lowest key first.
    Ascending,
    /// Highest key first.
    Descending,
}

/// A key-value store with column families.
pub trait Kv {
    /// The value at `key`.
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// Applies `batch` atomically; durable on return when `sync`.
    fn write(&mut self, batch: WriteBatch, sync: bool) -> Result<(), KvError>;
    /// At most `limit` entries of `cf` whose key starts with `prefix`, in `order`.
    fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        order: Order,
        limit: usize,
    ) -> Result<Entries, KvError>;

    /// Every entry of `cf`, ascending key.
    fn scan(&self, cf: Cf) -> Result<Entries, KvError> {
        self.scan_prefix(cf, &[], Order::Ascending, usize::MAX)
    }
}

type Tables = BTreeMap<Cf, BTreeMap<Vec<u8>, Vec<u8>>>;

/// In-memory [`Kv`]; clones share the same data (a simulated disk).
#[derive(Clone, Debug, Default)]
pub struct MemoryKv {
    inner: Arc<Mutex<MemoryInner>>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    tables: Tables,
    synced_writes: u64,
}

impl MemoryKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of writes made with `sync = true`.
    pub fn synced_writes(&self) -> u64 {
        self.lock().map(|i| i.synced_writes).unwrap_or(0)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, MemoryInner>, KvError> {
        self.inner
            .lock()
            .map_err(|_| KvError("memory store lock poisoned".into()))
    }
}

impl Kv for MemoryKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Ok(self
            .lock()?
            .tables
            .get(&cf)
            .and_then(|t| t.get(key))
            .cloned())
    }

    fn write(&mut self, batch: WriteBatch, sync: bool) -> Result<(), KvError> {
        let mut inner = self.lock()?;
        for op in batch.ops {
            let table = inner.tables.entry(op.cf).or_default();
            match op.value {
                Some(v) => {
                    table.insert(op.key, v);
                }
                None => {
                    table.remove(&op.key);
                }
            }
        }
        if sync {
            inner.synced_writes += 1;
        }
        Ok(())
    }

    fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        order: Order,
        limit: usize,
    ) -> Result<Entries, KvError> {
        let inner = self.lock()?;
        let Some(table) = inner.tables.get(&cf) else {
            return Ok(Vec::new());
        };
        let range = table
            .range(prefix.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix));
        let clone = |(k, v): (&Vec<u8>, &Vec<u8>)| (k.clone(), v.clone());
        Ok(match order {
            Order::Ascending => range.take(limit).map(clone).collect(),
            Order::Descending => {
                let all: Vec<_> = range.collect();
                all.into_iter().rev().take(limit).map(clone).collect()
            }
        })
    }
}
