//! The signed gossip envelope: encoding, signing and bounded decoding.
//!
//! A node signs
//!
//! ```text
//! "backstop/gossip/v1" || u32be(version) || signer (32) || u64be(timestamp_ms)
//!     || u32be(len(payload)) || payload
//! ```
//!
//! with its ed25519 identity key. The domain tag keeps these signatures apart from
//! anything else the key signs (libp2p handshakes, gossipsub's own message signatures);
//! the length prefix makes the encoding injective; version, signer and timestamp are
//! bound so none can be swapped. `payload` is kept as the exact bytes that travelled, so
//! verification never depends on re-encoding.
//!
//! Invariant: [`Envelope::decode`] looks at no more than `max_len` bytes of input and
//! returns an envelope whose signer and signature have their exact lengths, or an error.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message as _;
use sha2::{Digest, Sha256};

use backstop_proto::gossip::v1 as pb;

use crate::message::Wire;
use backstop_types::Message;

/// Domain separation tag of envelope signatures.
pub const DOMAIN: &[u8] = b"backstop/gossip/v1";
/// Envelope format version produced by this code.
pub const ENVELOPE_VERSION: u32 = 1;

/// Why bytes are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Larger than the configured bound; not parsed.
    #[error("envelope of {len} bytes exceeds {max}")]
    Oversized {
        /// Input length.
        len: usize,
        /// Bound.
        max: usize,
    },
    /// Not a protobuf `SignedEnvelope`, or a field of the wrong length.
    #[error("undecodable envelope: {0}")]
    Undecodable(String),
}

/// A decoded, not yet verified, envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// Format version.
    pub version: u32,
    /// Claimed signer (ed25519 public key bytes).
    pub signer: [u8; 32],
    /// Creation time, ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Encoded payload, exactly as signed.
    pub payload: Vec<u8>,
    /// ed25519 signature.
    pub signature: [u8; 64],
}

impl Envelope {
    /// Decodes at most `max_len` bytes.
    pub fn decode(bytes: &[u8], max_len: usize) -> Result<Self, EnvelopeError> {
        if bytes.len() > max_len {
            return Err(EnvelopeError::Oversized {
                len: bytes.len(),
                max: max_len,
            });
        }
        let pb = pb::SignedEnvelope::decode(bytes)
            .map_err(|e| EnvelopeError::Undecodable(e.to_string()))?;
        let signer = pb.signer.as_slice().try_into().map_err(|_| {
            EnvelopeError::Undecodable(format!("signer has {} bytes", pb.signer.len()))
        })?;
        let signature = pb.signature.as_slice().try_into().map_err(|_| {
            EnvelopeError::Undecodable(format!("signature has {} bytes", pb.signature.len()))
        })?;
        Ok(Self {
            version: pb.version,
            signer,
            timestamp_ms: pb.timestamp_ms,
            payload: pb.payload,
            signature,
        })
    }

    /// Protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        pb::SignedEnvelope {
            version: self.version,
            signer: self.signer.to_vec(),
            timestamp_ms: self.timestamp_ms,
            payload: self.payload.clone(),
            signature: self.signature.to_vec(),
        }
        .encode_to_vec()
    }

    /// The bytes the signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        signing_bytes(self.version, &self.signer, self.timestamp_ms, &self.payload)
    }

    /// Content id: SHA-256 of the signing bytes. Two envelopes with the same id carry the
    /// same signed content (whatever their signature bytes).
    pub fn content_id(&self) -> [u8; 32] {
        Sha256::digest(self.signing_bytes()).into()
    }

    /// Verifies the signature against `key` (strict: no malleable or small-order forms).
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        key.verify_strict(
            &self.signing_bytes(),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }
}

/// The bytes an envelope signature covers.
pub fn signing_bytes(
    version: u32,
    signer: &[u8; 32],
    timestamp_ms: u64,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(DOMAIN.len() + 4 + 32 + 8 + 4 + payload.len());
    out.extend_from_slice(DOMAIN);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(signer);
    out.extend_from_slice(&timestamp_ms.to_be_bytes());
    // Payloads are bounded far below 4 GiB by the envelope size limit.
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Signs arbitrary payload bytes into an envelope (used for messages and by tests that
/// need envelopes around payloads no honest node would produce).
pub fn seal(key: &SigningKey, timestamp_ms: u64, payload: Vec<u8>) -> Envelope {
    let signer = key.verifying_key().to_bytes();
    let signature = key
        .sign(&signing_bytes(
            ENVELOPE_VERSION,
            &signer,
            timestamp_ms,
            &payload,
        ))
        .to_bytes();
    Envelope {
        version: ENVELOPE_VERSION,
        signer,
        timestamp_ms,
        payload,
        signature,
    }
}

/// Signs `message` and returns the encoded envelope, ready to gossip.
pub fn sign(key: &SigningKey, timestamp_ms: u64, message: &Message) -> Vec<u8> {
    seal(key, timestamp_ms, message.encode()).encode()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sealed_envelope_verifies_and_round_trips() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let env = seal(&key, 1234, b"payload".to_vec());
        assert!(env.verify(&key.verifying_key()));
        let decoded = Envelope::decode(&env.encode(), 1024).unwrap();
        assert_eq!(decoded, env);
        assert!(decoded.verify(&key.verifying_key()));
    }

    #[test]
    fn every_signed_field_is_bound() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let env = seal(&key, 1234, b"payload".to_vec());
        let mut e = env.clone();
        e.timestamp_ms += 1;
        assert!(!e.verify(&key.verifying_key()));
        let mut e = env.clone();
        e.payload.push(0);
        assert!(!e.verify(&key.verifying_key()));
        let mut e = env.clone();
        e.version = 2;
        assert!(!e.verify(&key.verifying_key()));
        assert!(!env.verify(&other.verifying_key()));
    }

    #[test]
    fn domain_separates_from_a_plain_signature() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let env = seal(&key, 1, b"x".to_vec());
        let mut forged = env.clone();
        forged.signature = key.sign(b"x").to_bytes();
        assert!(!forged.verify(&key.verifying_key()));
    }

    #[test]
    fn decode_is_bounded_and_checks_lengths() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let bytes = seal(&key, 1, vec![0; 100]).encode();
        assert!(matches!(
            Envelope::decode(&bytes, bytes.len() - 1),
            Err(EnvelopeError::Oversized { .. })
        ));
        let short_signer = pb::SignedEnvelope {
            version: 1,
            signer: vec![1; 31],
            timestamp_ms: 1,
            payload: vec![],
            signature: vec![0; 64],
        }
        .encode_to_vec();
        assert!(matches!(
            Envelope::decode(&short_signer, 1024),
            Err(EnvelopeError::Undecodable(_))
        ));
        assert!(matches!(
            Envelope::decode(&[0xff, 0xff, 0xff], 1024),
            Err(EnvelopeError::Undecodable(_))
        ));
    }
}
