//! RocksDB backend: the same store contract as the in-memory backend, refusal of unknown
//! schemas and column families, and the deterministic simulation run on RocksDB stores
//! (crash = the machine and its DB handle dropped, restart = reopened from disk).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backstop_agreement::contract::{Reopen, check_store_contract};
use backstop_agreement::kv::{Cf, Kv, KvError, WriteBatch};
use backstop_agreement::sim::{self, Disk};
use backstop_agreement::state::{SCHEMA_KEY, StoreError as StateError};
use backstop_store::{BLOCK_CACHE, MEMTABLE_BUDGET, RocksKv, StoreError, open_node_store};
use tempfile::TempDir;

struct Dir(TempDir);

impl Reopen for Dir {
    type Kv = RocksKv;
    fn open(&mut self) -> RocksKv {
        RocksKv::open(self.0.path()).unwrap()
    }
}

#[test]
fn rocksdb_keeps_the_store_contract() {
    check_store_contract(|| Dir(tempfile::tempdir().unwrap()));
}

#[test]
fn unknown_schema_version_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_node_store(dir.path()).unwrap());
    {
        let mut kv = RocksKv::open(dir.path()).unwrap();
        let mut b = WriteBatch::default();
        b.put(Cf::Meta, SCHEMA_KEY.to_vec(), 7u32.to_le_bytes().to_vec());
        kv.write(b, true).unwrap();
    }
    let err = open_node_store(dir.path()).unwrap_err();
    assert!(matches!(
        err,
        StoreError::State(StateError::UnknownSchema { found: 7 })
    ));
    let text = err.to_string();
    assert!(
        text.contains("schema version 7") && text.contains("reads version 2"),
        "{text}"
    );
}

#[test]
fn unknown_column_family_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = rocksdb::DB::open_cf(&opts, dir.path(), ["meta", "from_the_future"]).unwrap();
        drop(db);
    }
    match open_node_store(dir.path()) {
        Err(StoreError::UnknownColumnFamily(name)) => assert_eq!(name, "from_the_future"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_second_process_handle_cannot_open_the_same_store() {
    let dir = tempfile::tempdir().unwrap();
    let _first = open_node_store(dir.path()).unwrap();
    assert!(
        open_node_store(dir.path()).is_err(),
        "RocksDB's lock refuses a second opener"
    );
}

struct RocksDisk(TempDir);

impl Disk for RocksDisk {
    type Kv = RocksKv;
    fn open(&mut self, node: usize) -> Result<RocksKv, KvError> {
        RocksKv::open(self.0.path().join(node.to_string())).map_err(|e| KvError(e.to_string()))
    }
}

#[test]
fn simulation_on_rocksdb_matches_memory_and_holds_the_invariants() {
    // A few seeds (RocksDB opens and synced writes are slow in debug); chosen from the
    // generator so that crashes happen. The trace must equal the in-memory run's.
    let seeds: u64 = std::env::var("BACKSTOP_SIM_ROCKS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut crashes = 0;
    for seed in 0..seeds {
        let disk = RocksDisk(tempfile::tempdir().unwrap());
        let on_rocks = sim::run_on(seed, disk).unwrap_or_else(|e| {
            panic!("{e}\n  replay: BACKSTOP_SIM_SEED={seed} cargo test -p backstop-agreement --test sim")
        });
        let in_memory = sim::run(seed).unwrap();
        assert_eq!(on_rocks.trace_hash, in_memory.trace_hash, "seed {seed}");
        crashes += on_rocks.crashes;
    }
    println!("{seeds} seeds on RocksDB ok, {crashes} crashes and restarts");
    assert!(
        crashes > 0,
        "some seed crashes and restarts a node from RocksDB"
    );
}

/// A node writes records for every incident and never deletes them: the store's memory must
/// not grow with them. 24 MiB of records (what some 2,000 incidents write) leave the
/// memtables within their budget and the block cache within its size, and everything
/// written reads back.
#[test]
fn memory_stays_bounded_however_much_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut kv = RocksKv::open(dir.path()).unwrap();
    let value = vec![0x5a; 1024];
    let records = 24 * 1024;
    for i in 0..records {
        let mut b = WriteBatch::default();
        let cf = [Cf::Incidents, Cf::Attestations, Cf::Certificates][i % 3];
        b.put(cf, (i as u64).to_be_bytes().to_vec(), value.clone());
        kv.write(b, false).unwrap();
    }
    let mut read = 0;
    for cf in [Cf::Incidents, Cf::Attestations, Cf::Certificates] {
        read += kv.scan(cf).unwrap().len();
    }
    assert_eq!(read, records);
    let m = kv.memory().unwrap();
    eprintln!("after {records} records of 1 KiB: {m:?}");
    // RocksDB flushes once the budget is passed, so one memtable's worth may be over it.
    assert!(
        m.memtables <= (MEMTABLE_BUDGET + (2 << 20)) as u64,
        "memtables hold {} bytes",
        m.memtables
    );
    assert!(m.block_cache <= BLOCK_CACHE as u64, "{m:?}");
}
