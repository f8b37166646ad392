//! Guardian keys in a PKCS#11 token (an HSM, or SoftHSM2 in tests): the private key is
//! generated in the token or imported into it, marked sensitive and not extractable, and
//! every signature is made by the token (`CKM_ECDSA` over the 32-byte digest).
//!
//! A token answers ECDSA as 64 bytes `r || s`, with no recovery id and possibly a high `s`.
//! [`TokenSigner::sign`] lowers `s` (the vault, like OpenZeppelin's ECDSA, refuses high `s`)
//! and finds the recovery id by recovering the key's address with each of the two.
//!
//! Invariants:
//! - a key is addressed by its token's label and its own label; exactly one private and one
//!   public key on secp256k1 must carry that label, or opening fails naming both labels;
//! - [`TokenSigner::open`] signs a test digest that must recover to the public key's address:
//!   a node never starts with a token key it cannot use;
//! - one logged-in session, used under a lock (PKCS#11 sessions are not shared across
//!   threads); the PIN is not kept after login.

use crate::SignerError;
use alloy::primitives::{Address, B256, Signature, U256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use backstop_contracts::eip712::GuardianSignature;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use std::path::PathBuf;
use std::sync::Mutex;

/// DER encoding of the secp256k1 curve's OID (1.3.132.0.10), the token's `CKA_EC_PARAMS`.
pub const SECP256K1_OID: [u8; 7] = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a];

/// Which key of which token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenSpec {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The key's label (`CKA_LABEL` of its private and public objects).
    pub key: String,
}

impl TokenSpec {
    fn err(&self, op: &'static str, reason: impl ToString) -> SignerError {
        SignerError::Token {
            token: self.token.clone(),
            key: self.key.clone(),
            op,
            reason: reason.to_string(),
        }
    }
}

/// A guardian key held by a PKCS#11 token, with a logged-in session.
pub struct TokenSigner {
    spec: TokenSpec,
    session: Mutex<Session>,
    key: ObjectHandle,
    address: Address,
}

impl std::fmt::Debug for TokenSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSigner")
            .field("spec", &self.spec)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl TokenSigner {
    /// Loads the module, logs in to the token with `pin`, finds the key and checks that it
    /// signs for its address.
    pub fn open(spec: &TokenSpec, pin: &str) -> Result<Self, SignerError> {
        let session = login(spec, pin)?;
        let key = find_one(&session, spec, ObjectClass::PRIVATE_KEY)?;
        let public = find_one(&session, spec, ObjectClass::PUBLIC_KEY)?;
        let address = public_address(&session, spec, public)?;
        let signer = Self {
            spec: spec.clone(),
            session: Mutex::new(session),
            key,
            address,
        };
        let probe = keccak256(b"backstop guardian key check");
        signer.sign(probe)?.verify(probe).map_err(|e| {
            spec.err(
                "check",
                format!("the private key does not sign for the public key's address: {e}"),
            )
        })?;
        Ok(signer)
    }

    /// Generates a new secp256k1 key pair in the token (sensitive, not extractable) and
    /// returns its address. Refuses a label already used in the token.
    pub fn generate(spec: &TokenSpec, pin: &str) -> Result<Address, SignerError> {
        let session = login(spec, pin)?;
        refuse_existing(&session, spec)?;
        let label = Attribute::Label(spec.key.as_bytes().to_vec());
        let public = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::KeyType(KeyType::EC),
            Attribute::Verify(true),
            Attribute::EcParams(SECP256K1_OID.to_vec()),
            label.clone(),
        ];
        let private = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            label,
        ];
        let (public, _) = session
            .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)
            .map_err(|e| spec.err("generate", e))?;
        public_address(&session, spec, public)
    }

    /// Imports an existing key into the token (sensitive, not extractable from then on) and
    /// returns its address. Refuses a label already used in the token.
    pub fn import(
        spec: &TokenSpec,
        pin: &str,
        key: &PrivateKeySigner,
    ) -> Result<Address, SignerError> {
        let session = login(spec, pin)?;
        refuse_existing(&session, spec)?;
        let label = Attribute::Label(spec.key.as_bytes().to_vec());
        let params = Attribute::EcParams(SECP256K1_OID.to_vec());
        let private = [
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            params.clone(),
            Attribute::Value(key.to_bytes().to_vec()),
            label.clone(),
        ];
        let point = uncompressed_point(key);
        let public = [
            Attribute::Class(ObjectClass::PUBLIC_KEY),
            Attribute::KeyType(KeyType::EC),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            params,
            Attribute::EcPoint(der_octet_string(&point)),
            label,
        ];
        session
            .create_object(&private)
            .map_err(|e| spec.err("import private key", e))?;
        let public = session
            .create_object(&public)
            .map_err(|e| spec.err("import public key", e))?;
        public_address(&session, spec, public)
    }

    /// The key's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// `pkcs11 token "<token>" key "<key>"`, for logs.
    pub fn describe(&self) -> String {
        format!(
            "PKCS#11 token {:?}, key {:?}",
            self.spec.token, self.spec.key
        )
    }

    /// Has the token sign `digest`; returns the signature with low `s` and its recovery id.
    pub fn sign(&self, digest: B256) -> Result<GuardianSignature, SignerError> {
        let raw = {
            let session = self
                .session
                .lock()
                .map_err(|_| self.spec.err("sign", "session lock poisoned"))?;
            session
                .sign(&Mechanism::Ecdsa, self.key, digest.as_slice())
                .map_err(|e| self.spec.err("sign", e))?
        };
        if raw.len() != 64 {
            return Err(self
                .spec
                .err("sign", format!("{} bytes, not r || s (64)", raw.len())));
        }
        let r = U256::from_be_slice(&raw[..32]);
        let s = U256::from_be_slice(&raw[32..]);
        for parity in [false, true] {
            let candidate = Signature::new(r, s, parity);
            let signature = candidate.normalize_s().unwrap_or(candidate);
            if signature.recover_address_from_prehash(&digest).ok() == Some(self.address) {
                return Ok(GuardianSignature {
                    signer: self.address,
                    signature,
                });
            }
        }
        Err(self
            .spec
            .err("sign", "the signature recovers to neither parity's address"))
    }
}

/// Loads the module, finds the token by label and logs in as its user.
fn login(spec: &TokenSpec, pin: &str) -> Result<Session, SignerError> {
    let module_err = |reason: String| SignerError::Module {
        module: spec.module.clone(),
        reason,
    };
    let ctx = Pkcs11::new(&spec.module).map_err(|e| module_err(e.to_string()))?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, Function::Initialize)) => {}
        Err(e) => return Err(module_err(e.to_string())),
    }
    let slot = find_token(&ctx, spec)?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| spec.err("open session", e))?;
    let pin = AuthPin::new(pin.into());
    match session.login(UserType::User, Some(&pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, Function::Login)) => Ok(session),
        Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => Err(spec.err("login", "wrong PIN")),
        Err(e) => Err(spec.err("login", e)),
    }
}

fn find_token(ctx: &Pkcs11, spec: &TokenSpec) -> Result<Slot, SignerError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| SignerError::Module {
            module: spec.module.clone(),
            reason: e.to_string(),
        })?;
    let mut present = Vec::new();
    for slot in slots {
        let Ok(info) = ctx.get_token_info(slot) else {
            continue;
        };
        let label = info.label().trim_end().to_owned();
        if label == spec.token {
            return Ok(slot);
        }
        present.push(format!("{label:?}"));
    }
    Err(SignerError::TokenNotFound {
        token: spec.token.clone(),
        present: if present.is_empty() {
            "none".to_owned()
        } else {
            present.join(", ")
        },
    })
}

fn find_one(
    session: &Session,
    spec: &TokenSpec,
    class: ObjectClass,
) -> Result<ObjectHandle, SignerError> {
    let template = [
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(spec.key.as_bytes().to_vec()),
    ];
    let found = session
        .find_objects(&template)
        .map_err(|e| spec.err("find key", e))?;
    let what = if class == ObjectClass::PRIVATE_KEY {
        "private"
    } else {
        "public"
    };
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(spec.err("find key", format!("no EC {what} key with this label"))),
        many => Err(spec.err(
            "find key",
            format!(
                "{} EC {what} keys carry this label; labels must be unique",
                many.len()
            ),
        )),
    }
}

fn refuse_existing(session: &Session, spec: &TokenSpec) -> Result<(), SignerError> {
    let found = session
        .find_objects(&[Attribute::Label(spec.key.as_bytes().to_vec())])
        .map_err(|e| spec.err("find key", e))?;
    if found.is_empty() {
        Ok(())
    } else {
        Err(spec.err(
            "create key",
            "a key with this label exists; refusing to add another",
        ))
    }
}

/// The address of a public key object on secp256k1.
fn public_address(
    session: &Session,
    spec: &TokenSpec,
    public: ObjectHandle,
) -> Result<Address, SignerError> {
    let attrs = session
        .get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])
        .map_err(|e| spec.err("read public key", e))?;
    let mut params = None;
    let mut point = None;
    for a in attrs {
        match a {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    if params.as_deref() != Some(&SECP256K1_OID[..]) {
        return Err(spec.err("read public key", "not a secp256k1 key"));
    }
    let point = point.ok_or_else(|| spec.err("read public key", "no EC point"))?;
    let xy = point_xy(&point).ok_or_else(|| {
        spec.err(
            "read public key",
            format!(
                "EC point of {} bytes is not an uncompressed point",
                point.len()
            ),
        )
    })?;
    Ok(Address::from_slice(&keccak256(xy)[12..]))
}

/// `X || Y` of an uncompressed point, raw (`04 X Y`) or wrapped in a DER OCTET STRING.
fn point_xy(point: &[u8]) -> Option<&[u8]> {
    match point {
        [0x04, 0x41, 0x04, xy @ ..] if xy.len() == 64 => Some(xy),
        [0x04, xy @ ..] if xy.len() == 64 => Some(xy),
        _ => None,
    }
}

fn uncompressed_point(key: &PrivateKeySigner) -> [u8; 65] {
    let mut point = [0u8; 65];
    point[0] = 0x04;
    point[1..].copy_from_slice(key.public_key().as_slice());
    point
}

fn der_octet_string(bytes: &[u8; 65]) -> Vec<u8> {
    let mut out = Vec::with_capacity(67);
    out.extend_from_slice(&[0x04, 0x41]);
    out.extend_from_slice(bytes);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn points_raw_and_wrapped() {
        let key = PrivateKeySigner::random();
        let point = uncompressed_point(&key);
        let wrapped = der_octet_string(&point);
        let want = Address::from_slice(&keccak256(&point[1..])[12..]);
        assert_eq!(want, key.address());
        assert_eq!(point_xy(&point), Some(&point[1..]));
        assert_eq!(point_xy(&wrapped), Some(&point[1..]));
        assert_eq!(point_xy(&point[..33]), None);
        assert_eq!(point_xy(&[]), None);
    }
}
