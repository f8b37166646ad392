//! Fuzz target: arbitrary bytes as a gossip envelope, a catch-up entry and a signed
//! payload, through decoding and the validator (see `backstop_p2p::fuzz`).
#![no_main]

use std::sync::{Mutex, OnceLock};

use backstop_p2p::fuzz::Harness;
use libfuzzer_sys::fuzz_target;

static HARNESS: OnceLock<Mutex<Harness>> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let harness = HARNESS.get_or_init(|| Mutex::new(Harness::default()));
    let mut harness = harness.lock().unwrap_or_else(|e| e.into_inner());
    harness.run(data);
});
