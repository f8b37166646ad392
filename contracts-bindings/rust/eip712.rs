//! EIP-712 digests of everything a guardian signs, and the signature blob the vault reads.
//!
//! Every signed struct is bound to one vault by the domain `(name, version, chainId,
//! verifyingContract)`; [`VaultId`] names that vault. The vault accepts a blob of packed
//! 65-byte signatures `r || s || v` from distinct guardians in strictly ascending signer
//! order; [`pack_signatures`] produces exactly that, or an error, never a blob the vault
//! would reject for its shape.

use alloy::primitives::{Address, B256, Bytes};
use alloy::signers::{Signature, SignerSync, local::PrivateKeySigner};
use alloy::sol_types::{Eip712Domain, SolStruct};

pub use crate::bindings::IBackstopVault::{
    ClearAlert, Draw, FreezeMember, Leg, LegRelease, Pause, RaiseAlert, RotateGuardians, SetLimits,
    SetMember, UnfreezeMember, Unpause,
};

/// EIP-712 domain name of every vault.
pub const DOMAIN_NAME: &str = "BackstopVault";
/// EIP-712 domain version of every vault.
pub const DOMAIN_VERSION: &str = "1";
/// Length of one packed signature.
pub const SIGNATURE_LEN: usize = 65;

/// One vault: the chain it lives on and its address. Names the EIP-712 domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VaultId {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Vault contract address.
    pub address: Address,
}

impl VaultId {
    /// The vault's EIP-712 domain.
    pub fn domain(&self) -> Eip712Domain {
        Eip712Domain::new(
            Some(DOMAIN_NAME.into()),
            Some(DOMAIN_VERSION.into()),
            Some(alloy::primitives::U256::from(self.chain_id)),
            Some(self.address),
            None,
        )
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A struct that guardians sign for a vault.
pub trait Signable: SolStruct + sealed::Sealed {
    /// The EIP-712 digest of `self` under `vault`'s domain; what the vault verifies.
    fn digest(&self, vault: &VaultId) -> B256 {
        self.eip712_signing_hash(&vault.domain())
    }
}

macro_rules! signable {
    ($($t:ty),* $(,)?) => {$(
        impl sealed::Sealed for $t {}
        impl Signable for $t {}
    )*};
}

signable!(
    Draw,
    LegRelease,
    FreezeMember,
    UnfreezeMember,
    Pause,
    Unpause,
    RaiseAlert,
    ClearAlert,
    SetMember,
    SetLimits,
    RotateGuardians,
);

/// Why a set of guardian signatures cannot be packed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// Two signatures of the same guardian.
    #[error("guardian {0} signed twice")]
    DuplicateSigner(Address),
    /// The signature does not recover to the guardian that claims it.
    #[error("signature claimed by {claimed} recovers to {recovered}")]
    WrongSigner {
        /// Guardian the signature was attributed to.
        claimed: Address,
        /// Address the signature actually recovers to.
        recovered: Address,
    },
    /// The signature does not recover to any address.
    #[error("signature claimed by {claimed} does not recover: {reason}")]
    Unrecoverable {
        /// Guardian the signature was attributed to.
        claimed: Address,
        /// Why recovery failed.
        reason: String,
    },
}

/// A guardian's signature over one digest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuardianSignature {
    /// The guardian (its chain signer address).
    pub signer: Address,
    /// Its secp256k1 signature.
    pub signature: Signature,
}

impl GuardianSignature {
    /// Checks that the signature over `digest` recovers to `signer`.
    pub fn verify(&self, digest: B256) -> Result<(), SignatureError> {
        let recovered = self
            .signature
            .recover_address_from_prehash(&digest)
            .map_err(|e| SignatureError::Unrecoverable {
                claimed: self.signer,
                reason: e.to_string(),
            })?;
        if recovered != self.signer {
            return Err(SignatureError::WrongSigner {
                claimed: self.signer,
                recovered,
            });
        }
        Ok(())
    }
}

/// Signs `digest` with a guardian key.
pub fn sign_digest(
    key: &PrivateKeySigner,
    digest: B256,
) -> Result<GuardianSignature, alloy::signers::Error> {
    Ok(GuardianSignature {
        signer: key.address(),
        signature: key.sign_hash_sync(&digest)?,
    })
}

/// Packs signatures in the vault's format: `r || s || v` (v = 27 or 28), 65 bytes each,
/// sorted by strictly ascending signer address. Refuses a guardian that appears twice.
/// Does not check the signatures themselves; see [`GuardianSignature::verify`].
pub fn pack_signatures(signatures: &[GuardianSignature]) -> Result<Bytes, SignatureError> {
    let mut sorted: Vec<&GuardianSignature> = signatures.iter().collect();
    sorted.sort_by_key(|s| s.signer);
    let mut out = Vec::with_capacity(sorted.len() * SIGNATURE_LEN);
    for (i, s) in sorted.iter().enumerate() {
        if i > 0 && sorted[i - 1].signer == s.signer {
            return Err(SignatureError::DuplicateSigner(s.signer));
        }
        out.extend_from_slice(&s.signature.as_bytes());
    }
    Ok(out.into())
}
