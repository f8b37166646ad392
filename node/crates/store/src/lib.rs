//! RocksDB storage of a Backstop node: the [`Kv`] backend of the agreement state
//! (`backstop_agreement::state::NodeStore`), sign-guard included.
//!
//! One column family per [`Cf`] (`meta`, `sign_guard`, `incidents`, `proposals`,
//! `attestations`, `certificates`, `submissions`, `actions`). Invariants:
//! - a write asked to be synced uses `WriteOptions::set_sync(true)`: the sign-guard record is
//!   on disk (WAL fsynced) before the guard answers, so it survives kill -9 and power loss;
//! - a batch is applied atomically (one RocksDB `WriteBatch`);
//! - [`open_node_store`] refuses a directory holding column families this build does not
//!   know, or a schema version other than `backstop_agreement::state::SCHEMA_VERSION`;
//! - RocksDB's lock file keeps a second process from opening the same directory;
//! - its memory is bounded whatever the history it holds: every memtable together stays
//!   within [`MEMTABLE_BUDGET`] (RocksDB flushes past it) and the block cache, index and
//!   filter blocks included, within [`BLOCK_CACHE`] ([`RocksKv::memory`] reports both).

use backstop_agreement::kv::{Cf, Entries, Kv, KvError, Order, WriteBatch};
use backstop_agreement::state::{self, NodeStore};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamilyDescriptor, DB, Direction, IteratorMode, Options,
    WriteOptions,
};
use std::path::Path;

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// The directory holds a column family this build does not know.
    #[error("unknown column family {0:?}: the store was written by another version")]
    UnknownColumnFamily(String),
    /// The node state refused the store (schema version, corruption).
    #[error(transparent)]
    State(#[from] state::StoreError),
}

/// Most memory all memtables together may hold (bytes): RocksDB's default is 64 MiB per
/// column family, which a node writing every incident's records reaches only after hours,
/// so memory grew with every incident until then.
pub const MEMTABLE_BUDGET: usize = 8 << 20;
/// Size of the block cache shared by every column family, index and filter blocks
/// included (bytes).
pub const BLOCK_CACHE: usize = 8 << 20;
/// Size of one memtable (bytes) before it is flushed.
const MEMTABLE_SIZE: usize = 1 << 20;

/// Memory held by the store (bytes), as RocksDB reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Every memtable of every column family.
    pub memtables: u64,
    /// The block cache.
    pub block_cache: u64,
}

/// The node state on RocksDB.
pub struct RocksKv {
    db: DB,
    cache: Cache,
}

impl std::fmt::Debug for RocksKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksKv")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

/// Options of every column family: small memtables, the shared bounded block cache.
fn cf_options(cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    let mut o = Options::default();
    o.set_block_based_table_factory(&table);
    o.set_write_buffer_size(MEMTABLE_SIZE);
    o
}

fn kv_err(e: rocksdb::Error) -> KvError {
    KvError(e.to_string())
}

impl RocksKv {
    /// Opens (or creates) the database at `path` with every column family.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let cache = Cache::new_lru_cache(BLOCK_CACHE);
        let mut opts = cf_options(&cache);
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        if let Ok(existing) = DB::list_cf(&Options::default(), path) {
            for name in existing {
                if name != "default" && !Cf::ALL.iter().any(|cf| cf.name() == name) {
                    return Err(StoreError::UnknownColumnFamily(name));
                }
            }
        }
        let cfs = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), cf_options(&cache)));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Self { db, cache })
    }

    /// The memory the store holds now.
    pub fn memory(&self) -> Result<StoreMemory, StoreError> {
        let mut memtables = 0u64;
        for cf in Cf::ALL {
            let h = self.handle(cf).map_err(state::StoreError::from)?;
            memtables += self
                .db
                .property_int_value_cf(h, "rocksdb.cur-size-all-mem-tables")?
                .unwrap_or(0);
        }
        Ok(StoreMemory {
            memtables,
            block_cache: self.cache.get_usage() as u64,
        })
    }

    /// Persists everything written so far (memtables and the write-ahead log); called at
    /// shutdown. Synced writes (the sign-guard) are durable without it.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        self.db.flush()?;
        Ok(())
    }

    fn handle(&self, cf: Cf) -> Result<&rocksdb::ColumnFamily, KvError> {
        self.db
            .cf_handle(cf.name())
            .ok_or_else(|| KvError(format!("column family {} missing", cf.name())))
    }
}

impl Kv for RocksKv {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.db.get_cf(self.handle(cf)?, key).map_err(kv_err)
    }

    fn write(&mut self, batch: WriteBatch, sync: bool) -> Result<(), KvError> {
        let mut b = rocksdb::WriteBatch::default();
        for op in batch.ops {
            let h = self.handle(op.cf)?;
            match op.value {
                Some(v) => b.put_cf(h, op.key, v),
                None => b.delete_cf(h, op.key),
            }
        }
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(b, &wo).map_err(kv_err)
    }

    fn scan_prefix(
        &self,
        cf: Cf,
        prefix: &[u8],
        order: Order,
        limit: usize,
    ) -> Result<Entries, KvError> {
        let h = self.handle(cf)?;
        // A descending scan starts at the first key past every key with the prefix.
        let upper = successor(prefix);
        let mode = match (order, &upper) {
            (Order::Ascending, _) => IteratorMode::From(prefix, Direction::Forward),
            (Order::Descending, Some(u)) => IteratorMode::From(u, Direction::Reverse),
            (Order::Descending, None) => IteratorMode::End,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(h, mode) {
            let (k, v) = item.map_err(kv_err)?;
            if upper.as_deref() == Some(&*k) {
                continue;
            }
            if !k.starts_with(prefix) || out.len() == limit {
                break;
            }
            out.push((k.into_vec(), v.into_vec()));
        }
        Ok(out)
    }
}

/// The least key greater than every key starting with `prefix`, or `None` when there is
/// none (the prefix is empty or all `0xff`).
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut s = prefix.to_vec();
    while let Some(last) = s.pop() {
        if last < u8::MAX {
            s.push(last + 1);
            return Some(s);
        }
    }
    None
}

/// Opens the node state at `path`: RocksDB with every column family, schema checked.
pub fn open_node_store(path: impl AsRef<Path>) -> Result<NodeStore<RocksKv>, StoreError> {
    Ok(NodeStore::open(RocksKv::open(path)?)?)
}
