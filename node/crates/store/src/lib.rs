//! RocksDB storage of a Backstop node (placeholder until it lands).
