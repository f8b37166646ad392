//! Stable, bounded, seeded random-input driver over the same function as the cargo-fuzz
//! target (`fuzz/fuzz_targets/envelope.rs`): random bytes, and mutations of valid
//! envelopes and payloads (bit flips, truncation, splices), so that inputs reach deep
//! into decoding and validation. Any panic or broken invariant fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy::primitives::B256;
use backstop_p2p::Wire;
use backstop_p2p::fuzz::Harness;
use backstop_types::{GapObservation, IncidentKey, Message, Signal, SignalKind};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds(h: &Harness) -> Vec<Vec<u8>> {
    let msgs = [
        Message::Signal(Signal {
            kind: SignalKind::ChainHalt,
            subject: B256::repeat_byte(1),
            observed_at_ms: 5,
            evidence: vec![1; 40].into(),
        }),
        Message::GapObservation(GapObservation {
            key: IncidentKey {
                member: B256::repeat_byte(2),
                seq: 7,
            },
            home_chain_id: 1,
            block_number: 2,
            block_hash: B256::repeat_byte(3),
            assets: Default::default(),
            liabilities: Default::default(),
        }),
    ];
    let mut out = Vec::new();
    for m in &msgs {
        out.push(m.encode());
        out.push(h.seal(&m.encode()));
    }
    out
}

#[test]
fn seeded_random_inputs_never_break_validation() {
    let iterations: usize = std::env::var("FUZZ_DRIVER_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    let mut h = Harness::default();
    let seeds = seeds(&h);
    let mut rng = Rng(0x5eed_0000_b4c5_7009);
    for i in 0..iterations {
        let mut data = match rng.below(3) {
            0 => (0..rng.below(300))
                .map(|_| rng.next() as u8)
                .collect::<Vec<u8>>(),
            _ => seeds[rng.below(seeds.len())].clone(),
        };
        for _ in 0..=rng.below(4) {
            if data.is_empty() {
                break;
            }
            let at = rng.below(data.len());
            match rng.below(4) {
                0 => data[at] ^= 1 << rng.below(8),
                1 => data.truncate(at),
                2 => data.insert(at, rng.next() as u8),
                _ => {
                    let other = &seeds[rng.below(seeds.len())];
                    let from = rng.below(other.len());
                    data.splice(at..at, other[from..].iter().copied().take(rng.below(64)));
                }
            }
        }
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| h.run(&data)));
        assert!(result.is_ok(), "iteration {i} broke on input {data:02x?}");
    }
    // Unmutated seeds are accepted: the driver does reach the accept path.
    let mut fresh = Harness::default();
    fresh.run(&seeds[0]);
    assert_eq!(fresh.accepted(), 1);
    fresh.run(&seeds[2]);
    assert_eq!(fresh.accepted(), 2);
}
