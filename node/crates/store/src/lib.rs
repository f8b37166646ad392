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
//! - RocksDB's lock file keeps a second process from opening the same directory.

use backstop_agreement::kv::{Cf, Entries, Kv, KvError, WriteBatch};
use backstop_agreement::state::{self, NodeStore};
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteOptions};
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

/// The node state on RocksDB.
#[derive(Debug)]
pub struct RocksKv {
    db: DB,
}

fn kv_err(e: rocksdb::Error) -> KvError {
    KvError(e.to_string())
}

impl RocksKv {
    /// Opens (or creates) the database at `path` with every column family.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref();
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        if let Ok(existing) = DB::list_cf(&Options::default(), path) {
            for name in existing {
                if name != "default" && !Cf::ALL.iter().any(|cf| cf.name() == name) {
                    return Err(StoreError::UnknownColumnFamily(name));
                }
            }
        }
        let cfs = Cf::ALL
            .iter()
            .map(|cf| ColumnFamilyDescriptor::new(cf.name(), Options::default()));
        let db = DB::open_cf_descriptors(&opts, path, cfs)?;
        tracing::debug!(path = %path.display(), "store opened");
        Ok(Self { db })
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

    fn scan(&self, cf: Cf) -> Result<Entries, KvError> {
        self.db
            .iterator_cf(self.handle(cf)?, IteratorMode::Start)
            .map(|r| r.map(|(k, v)| (k.into_vec(), v.into_vec())).map_err(kv_err))
            .collect()
    }
}

/// Opens the node state at `path`: RocksDB with every column family, schema checked.
pub fn open_node_store(path: impl AsRef<Path>) -> Result<NodeStore<RocksKv>, StoreError> {
    Ok(NodeStore::open(RocksKv::open(path)?)?)
}
