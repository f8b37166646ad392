//! The node's guardian key: the secp256k1 key whose signatures move the pool's money.
//!
//! A guardian key is one of:
//! - [`GuardianKey::Local`]: a key in this process's memory, read from a plain key file (the
//!   testnet's form) or decrypted at start from an Ethereum keystore v3 file ([`keystore`]);
//! - [`GuardianKey::Token`]: a key that never leaves a PKCS#11 token ([`pkcs11`]); the node
//!   holds a logged-in session and asks the token for every signature.
//!
//! Both sign the same digests and produce the same [`GuardianSignature`] (low `s`, recovery id
//! found by recovering the address), so the agreement core, the vaults and the peers cannot
//! tell them apart. A remote signer (AWS or GCP KMS through `alloy-signer-aws` or
//! `alloy-signer-gcp`) plugs in as a third variant: it needs only [`GuardianKey::address`] and
//! a blocking [`GuardianKey::sign`] over a 32-byte digest (see docs/design.md).
//!
//! With the `testing` feature, [`testing`] creates SoftHSM2 tokens for tests.
//!
//! Invariants:
//! - a key is checked when it is opened: a token key signs a test digest that must recover
//!   to the key's address before the node uses it; a keystore's MAC must match its password;
//! - no error and no `Debug` output of this crate contains secret material (key bytes,
//!   passwords, PINs);
//! - a token key is a transaction sender only through a separate key: it signs digests, not
//!   transactions (the node refuses a token guardian on a chain without a sender key).

pub mod keystore;
pub mod pkcs11;
#[cfg(feature = "testing")]
pub mod testing;

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use backstop_agreement::GuardianSigner;
use backstop_agreement::machine::SignError;
use backstop_contracts::eip712::{GuardianSignature, sign_digest};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

pub use pkcs11::{TokenSigner, TokenSpec};

/// Why a guardian key could not be created, opened or used.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    /// A keystore file could not be read or written.
    #[error("keystore {}: {source}", path.display())]
    KeystoreIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A keystore file is not a keystore this node accepts.
    #[error("keystore {}: {reason}", path.display())]
    KeystoreFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The password does not open the keystore (its MAC does not match).
    #[error("keystore {}: wrong password (the keystore's MAC does not match)", path.display())]
    WrongPassword {
        /// The file.
        path: PathBuf,
    },
    /// A keystore file exists already; keys are never overwritten.
    #[error("keystore {}: already exists; refusing to overwrite a key", path.display())]
    KeystoreExists {
        /// The file.
        path: PathBuf,
    },
    /// The PKCS#11 module could not be loaded or initialised.
    #[error("PKCS#11 module {}: {reason}", module.display())]
    Module {
        /// The module's path.
        module: PathBuf,
        /// What failed.
        reason: String,
    },
    /// No token with this label is present.
    #[error("PKCS#11 token {token:?} not found (tokens present: {present})")]
    TokenNotFound {
        /// The label asked for.
        token: String,
        /// The labels present, comma-separated.
        present: String,
    },
    /// A PKCS#11 operation on a token's key failed.
    #[error("PKCS#11 token {token:?}, key {key:?}: {op}: {reason}")]
    Token {
        /// The token's label.
        token: String,
        /// The key's label.
        key: String,
        /// The operation.
        op: &'static str,
        /// What the token answered, or what is wrong.
        reason: String,
    },
    /// Signing failed.
    #[error("signing: {0}")]
    Sign(String),
}

/// The node's guardian key. `Debug` shows only its address and where it is held.
#[derive(Clone)]
pub enum GuardianKey {
    /// A key in this process's memory (plain key file, environment variable or keystore).
    Local(PrivateKeySigner),
    /// A key in a PKCS#11 token.
    Token(Arc<TokenSigner>),
}

impl GuardianKey {
    /// The guardian address.
    pub fn address(&self) -> Address {
        match self {
            Self::Local(k) => k.address(),
            Self::Token(t) => t.address(),
        }
    }

    /// The in-memory key, which can also sign transactions; `None` for a token key.
    pub fn local(&self) -> Option<&PrivateKeySigner> {
        match self {
            Self::Local(k) => Some(k),
            Self::Token(_) => None,
        }
    }

    /// Signs `digest` (blocking: a token answers in about a millisecond).
    pub fn sign(&self, digest: B256) -> Result<GuardianSignature, SignerError> {
        match self {
            Self::Local(k) => sign_digest(k, digest).map_err(|e| SignerError::Sign(e.to_string())),
            Self::Token(t) => t.sign(digest),
        }
    }

    /// Where the key is held, for logs and `backstop status`.
    pub fn location(&self) -> String {
        match self {
            Self::Local(_) => "in memory".to_owned(),
            Self::Token(t) => t.describe(),
        }
    }
}

impl From<PrivateKeySigner> for GuardianKey {
    fn from(key: PrivateKeySigner) -> Self {
        Self::Local(key)
    }
}

impl fmt::Debug for GuardianKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardianKey")
            .field("address", &self.address())
            .field("location", &self.location())
            .finish()
    }
}

impl GuardianSigner for GuardianKey {
    fn address(&self) -> Address {
        GuardianKey::address(self)
    }

    fn sign(&self, digest: B256) -> Result<GuardianSignature, SignError> {
        GuardianKey::sign(self, digest).map_err(|e| SignError(e.to_string()))
    }
}
