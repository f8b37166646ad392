//! Parsing of single configuration values (addresses, ids, keys, multiaddrs, URLs, names,
//! amounts) from their TOML text.
//!
//! Invariants:
//! - every parser is strict: one spelling family per kind of value, exact lengths, no zero
//!   address or zero id, mixed-case addresses must carry a valid EIP-55 checksum;
//! - an error names the kind of value, echoes at most [`ECHO_MAX`] characters of the offending
//!   text (escaped) and says why; no secret is ever a config value, so echoing is safe;
//! - values are parsed while deserializing, so errors carry the TOML key path and position.

use alloy::primitives::{Address, B256, U256};
use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};
use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::path::PathBuf;
use url::Url;

/// Most characters of an offending value echoed in an error.
pub(crate) const ECHO_MAX: usize = 160;

/// The offending text, quoted, escaped and truncated to [`ECHO_MAX`] characters.
pub(crate) fn echo(s: &str) -> String {
    if s.chars().count() > ECHO_MAX {
        let head: String = s.chars().take(ECHO_MAX).collect();
        format!("{head:?}…")
    } else {
        format!("{s:?}")
    }
}

/// A value spelled as a TOML string (or, for amounts, an integer).
pub(crate) trait ConfigValue: Sized {
    /// What the value is, for "invalid {WHAT} ...".
    const WHAT: &'static str;
    /// What was expected, for type errors.
    const EXPECTING: &'static str;
    /// Parses the text; the error is the reason only.
    fn parse_value(s: &str) -> Result<Self, String>;
    /// The value of a TOML integer, when integers are accepted.
    fn from_u64(_v: u64) -> Option<Self> {
        None
    }
}

/// A [`ConfigValue`] deserialized from TOML.
#[derive(Debug, Clone)]
pub(crate) struct Parsed<T>(pub T);

impl<'de, T: ConfigValue> Deserialize<'de> for Parsed<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor::<T>(PhantomData))
            .map(Parsed)
    }
}

struct ValueVisitor<T>(PhantomData<T>);

impl<'de, T: ConfigValue> Visitor<'de> for ValueVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(T::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<T, E> {
        T::parse_value(s)
            .map_err(|reason| E::custom(format!("invalid {} {}: {reason}", T::WHAT, echo(s))))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::from_u64(v).ok_or_else(|| E::invalid_type(Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        match u64::try_from(v) {
            Ok(v) => self.visit_u64(v),
            Err(_) => Err(E::invalid_type(Unexpected::Signed(v), &self)),
        }
    }
}

/// Decodes an even number of hex digits, saying where the first bad digit is (by position,
/// never by value).
pub(crate) fn decode_hex(digits: &str) -> Result<Vec<u8>, String> {
    if let Some(i) = digits.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("invalid hex digit at position {}", i + 1));
    }
    if !digits.len().is_multiple_of(2) {
        return Err("odd number of digits".into());
    }
    hex::decode(digits).map_err(|_| "invalid hex".into())
}

fn strip_0x(s: &str) -> Option<&str> {
    s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))
}

impl ConfigValue for Address {
    const WHAT: &'static str = "address";
    const EXPECTING: &'static str = "an address (\"0x\" and 40 hex digits)";

    fn parse_value(s: &str) -> Result<Self, String> {
        let digits = s
            .strip_prefix("0x")
            .ok_or("expected \"0x\" followed by 40 hex digits")?;
        let bytes = decode_hex(digits)?;
        if bytes.len() != 20 {
            return Err(format!("expected 20 bytes, got {}", bytes.len()));
        }
        let address = Address::from_slice(&bytes);
        let upper = digits.chars().any(|c| c.is_ascii_uppercase());
        let lower = digits.chars().any(|c| c.is_ascii_lowercase());
        if upper && lower && address.to_checksum(None) != s {
            return Err(
                "bad EIP-55 checksum (write it in lower case, or with the right capitals)".into(),
            );
        }
        if address.is_zero() {
            return Err("the zero address is not allowed".into());
        }
        Ok(address)
    }
}

impl ConfigValue for B256 {
    const WHAT: &'static str = "id";
    const EXPECTING: &'static str = "a 32-byte id (\"0x\" and 64 hex digits)";

    fn parse_value(s: &str) -> Result<Self, String> {
        let digits = s
            .strip_prefix("0x")
            .ok_or("expected \"0x\" followed by 64 hex digits")?;
        let bytes = decode_hex(digits)?;
        if bytes.len() != 32 {
            return Err(format!("expected 32 bytes, got {}", bytes.len()));
        }
        let id = B256::from_slice(&bytes);
        if id.is_zero() {
            return Err("the zero id is not allowed".into());
        }
        Ok(id)
    }
}

/// An ed25519 public key, 32 bytes, checked to be a valid curve point.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ed25519Public(pub [u8; 32]);

impl ConfigValue for Ed25519Public {
    const WHAT: &'static str = "ed25519 public key";
    const EXPECTING: &'static str = "an ed25519 public key (64 hex digits)";

    fn parse_value(s: &str) -> Result<Self, String> {
        let digits = strip_0x(s).unwrap_or(s);
        let bytes = decode_hex(digits)?;
        let key: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| format!("expected 32 bytes, got {}", bytes.len()))?;
        libp2p_identity::ed25519::PublicKey::try_from_bytes(&key)
            .map_err(|_| "not a valid ed25519 public key".to_string())?;
        Ok(Ed25519Public(key))
    }
}

/// The ed25519 public key inside a PeerId, if it is an ed25519 (identity-multihash) PeerId.
pub(crate) fn ed25519_of_peer(peer: &PeerId) -> Option<[u8; 32]> {
    let bytes = peer.to_bytes();
    // Identity multihash: code 0x00, length (one varint byte here), protobuf public key.
    let (&[0x00, len], rest) = bytes.split_first_chunk::<2>()? else {
        return None;
    };
    if usize::from(len) != rest.len() {
        return None;
    }
    let public = libp2p_identity::PublicKey::try_decode_protobuf(rest).ok()?;
    let key = public.try_into_ed25519().ok()?.to_bytes();
    (peer_id_of(&key)? == *peer).then_some(key)
}

/// The PeerId of an ed25519 public key (None if the bytes are not a curve point).
pub fn peer_id_of(public_key: &[u8; 32]) -> Option<PeerId> {
    let key = libp2p_identity::ed25519::PublicKey::try_from_bytes(public_key).ok()?;
    Some(libp2p_identity::PublicKey::from(key).to_peer_id())
}

impl ConfigValue for PeerId {
    const WHAT: &'static str = "PeerId";
    const EXPECTING: &'static str = "a libp2p PeerId (\"12D3Koo...\")";

    fn parse_value(s: &str) -> Result<Self, String> {
        let peer: PeerId = s.parse().map_err(|e| format!("{e}"))?;
        ed25519_of_peer(&peer).ok_or("not the PeerId of an ed25519 key")?;
        Ok(peer)
    }
}

/// Where an address in the file is used: the rules differ.
fn check_multiaddr(addr: &Multiaddr, listen: bool, allow_p2p: bool) -> Result<(), String> {
    let mut it = addr.iter();
    match it.next() {
        Some(Protocol::Ip4(_) | Protocol::Ip6(_)) => {}
        Some(Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_)) if !listen => {}
        Some(_) if listen => return Err("must start with /ip4/ or /ip6/".into()),
        Some(_) => return Err("must start with /ip4/, /ip6/, /dns/, /dns4/ or /dns6/".into()),
        None => return Err("empty address".into()),
    }
    let port = match it.next() {
        Some(Protocol::Tcp(port)) => port,
        Some(Protocol::Udp(port)) => match it.next() {
            Some(Protocol::QuicV1) => port,
            _ => return Err("UDP is only used as /udp/PORT/quic-v1".into()),
        },
        _ => return Err("expected /tcp/PORT or /udp/PORT/quic-v1 after the host".into()),
    };
    if port == 0 && !listen {
        return Err("port 0 cannot be dialled".into());
    }
    match it.next() {
        None => Ok(()),
        Some(Protocol::P2p(_)) if allow_p2p => match it.next() {
            None => Ok(()),
            Some(_) => Err("/p2p/ must come last".into()),
        },
        Some(Protocol::P2p(_)) => Err("no /p2p/ suffix here".into()),
        Some(p) => Err(format!("unexpected /{} after the transport", p.tag())),
    }
}

fn parse_multiaddr(s: &str) -> Result<Multiaddr, String> {
    s.parse::<Multiaddr>().map_err(|e| format!("{e}"))
}

/// A listen address: /ip4|ip6/.../tcp/PORT or /ip4|ip6/.../udp/PORT/quic-v1 (port 0 allowed).
#[derive(Debug, Clone)]
pub(crate) struct ListenAddr(pub Multiaddr);

impl ConfigValue for ListenAddr {
    const WHAT: &'static str = "listen multiaddr";
    const EXPECTING: &'static str = "a multiaddr such as \"/ip4/0.0.0.0/tcp/9000\"";

    fn parse_value(s: &str) -> Result<Self, String> {
        let addr = parse_multiaddr(s)?;
        check_multiaddr(&addr, true, false)?;
        Ok(ListenAddr(addr))
    }
}

/// An address others dial, without /p2p/ (external addresses).
#[derive(Debug, Clone)]
pub(crate) struct ExternalAddr(pub Multiaddr);

impl ConfigValue for ExternalAddr {
    const WHAT: &'static str = "multiaddr";
    const EXPECTING: &'static str = "a multiaddr such as \"/dns4/node.example/tcp/9000\"";

    fn parse_value(s: &str) -> Result<Self, String> {
        let addr = parse_multiaddr(s)?;
        check_multiaddr(&addr, false, false)?;
        Ok(ExternalAddr(addr))
    }
}

/// An address of a consortium node, optionally ending in /p2p/PEERID (checked against the
/// node's key during validation).
#[derive(Debug, Clone)]
pub(crate) struct DialAddr(pub Multiaddr);

impl ConfigValue for DialAddr {
    const WHAT: &'static str = "multiaddr";
    const EXPECTING: &'static str = "a multiaddr such as \"/dns4/node.example/tcp/9000\"";

    fn parse_value(s: &str) -> Result<Self, String> {
        let addr = parse_multiaddr(s)?;
        check_multiaddr(&addr, false, true)?;
        Ok(DialAddr(addr))
    }
}

/// An RPC endpoint URL.
#[derive(Debug, Clone)]
pub(crate) struct RpcUrl(pub Url);

impl ConfigValue for RpcUrl {
    const WHAT: &'static str = "URL";
    const EXPECTING: &'static str = "an http, https, ws or wss URL";

    fn parse_value(s: &str) -> Result<Self, String> {
        let url = Url::parse(s).map_err(|e| format!("{e}"))?;
        if !matches!(url.scheme(), "http" | "https" | "ws" | "wss") {
            return Err(format!(
                "scheme {:?} is not http, https, ws or wss",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("no host".into());
        }
        Ok(RpcUrl(url))
    }
}

impl ConfigValue for SocketAddr {
    const WHAT: &'static str = "socket address";
    const EXPECTING: &'static str = "a socket address such as \"127.0.0.1:8545\"";

    fn parse_value(s: &str) -> Result<Self, String> {
        s.parse()
            .map_err(|_| "expected IP:PORT, e.g. \"127.0.0.1:7070\" or \"[::1]:7070\"".into())
    }
}

impl ConfigValue for U256 {
    const WHAT: &'static str = "amount";
    const EXPECTING: &'static str = "a non-negative decimal integer (a string for large values)";

    fn parse_value(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty".into());
        }
        if let Some(i) = s.chars().position(|c| !c.is_ascii_digit()) {
            return Err(format!(
                "only decimal digits are allowed (position {})",
                i + 1
            ));
        }
        U256::from_str_radix(s, 10).map_err(|_| "larger than 2^256 - 1".into())
    }

    fn from_u64(v: u64) -> Option<Self> {
        Some(U256::from(v))
    }
}

/// Most characters of a name.
pub(crate) const NAME_MAX: usize = 64;

/// A name of a node, chain or member: 1 to [`NAME_MAX`] characters of `A-Za-z0-9._-`,
/// starting with a letter or digit.
#[derive(Debug, Clone)]
pub(crate) struct Name(pub String);

impl ConfigValue for Name {
    const WHAT: &'static str = "name";
    const EXPECTING: &'static str = "a name (letters, digits, '.', '_', '-')";

    fn parse_value(s: &str) -> Result<Self, String> {
        let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
        if s.is_empty() || s.len() > NAME_MAX {
            return Err(format!("must have 1 to {NAME_MAX} characters"));
        }
        if !first_ok
            || !s
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(
                "only letters, digits, '.', '_' and '-' are allowed, starting with a letter or digit"
                    .into(),
            );
        }
        Ok(Name(s.to_owned()))
    }
}

/// The name of an environment variable: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
#[derive(Debug, Clone)]
pub(crate) struct EnvName(pub String);

impl ConfigValue for EnvName {
    const WHAT: &'static str = "environment variable name";
    const EXPECTING: &'static str = "an environment variable name";

    fn parse_value(s: &str) -> Result<Self, String> {
        let first_ok = s
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !first_ok || s.len() > 128 || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err("expected [A-Za-z_][A-Za-z0-9_]*, at most 128 characters".into());
        }
        Ok(EnvName(s.to_owned()))
    }
}

/// A file system path as written (resolved against the config file's directory later).
#[derive(Debug, Clone)]
pub(crate) struct FilePath(pub PathBuf);

impl ConfigValue for FilePath {
    const WHAT: &'static str = "path";
    const EXPECTING: &'static str = "a file system path";

    fn parse_value(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("empty".into());
        }
        if s.len() > 4096 || s.contains('\0') {
            return Err("not a usable path".into());
        }
        Ok(FilePath(PathBuf::from(s)))
    }
}

/// A `tracing` filter: comma-separated directives `LEVEL`, `TARGET` or `TARGET=LEVEL`.
#[derive(Debug, Clone)]
pub(crate) struct LogFilter(pub String);

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

impl ConfigValue for LogFilter {
    const WHAT: &'static str = "log filter";
    const EXPECTING: &'static str = "a log filter such as \"info,backstop_p2p=debug\"";

    fn parse_value(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 1024 {
            return Err("must have 1 to 1024 characters".into());
        }
        for directive in s.split(',') {
            let directive = directive.trim();
            if directive.is_empty() {
                return Err("empty directive".into());
            }
            let target_ok = |t: &str| {
                !t.is_empty()
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | ':' | '-' | '.'))
            };
            let level_ok = |l: &str| LEVELS.contains(&l.to_ascii_lowercase().as_str());
            let ok = match directive.split_once('=') {
                Some((target, level)) => target_ok(target) && level_ok(level),
                None => level_ok(directive) || target_ok(directive),
            };
            if !ok {
                return Err(format!(
                    "bad directive {}: expected LEVEL, TARGET or TARGET=LEVEL, LEVEL one of {}",
                    echo(directive),
                    LEVELS.join(", ")
                ));
            }
        }
        Ok(LogFilter(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            Address::parse_value("0x12").unwrap_err(),
            "expected 20 bytes, got 1"
        );
        assert_eq!(
            Address::parse_value("0x123").unwrap_err(),
            "odd number of digits"
        );
        assert!(Address::parse_value("0x0000000000000000000000000000000000000000").is_err());
        assert!(Address::parse_value("0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed").is_ok());
        assert!(Address::parse_value("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed").is_ok());
        assert!(Address::parse_value("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD").is_err());
    }

    #[test]
    fn multiaddrs() {
        assert!(ListenAddr::parse_value("/ip4/0.0.0.0/tcp/0").is_ok());
        assert!(ListenAddr::parse_value("/ip4/0.0.0.0/udp/0/quic-v1").is_ok());
        assert!(ListenAddr::parse_value("/dns4/x/tcp/1").is_err());
        assert!(DialAddr::parse_value("/dns4/x/tcp/1").is_ok());
        assert!(DialAddr::parse_value("/ip4/1.2.3.4/udp/1").is_err());
        assert!(ExternalAddr::parse_value("/ip4/1.2.3.4/tcp/0").is_err());
    }

    #[test]
    fn peer_ids() {
        let key = [7u8; 32];
        let secret = ed25519_dalek::SigningKey::from_bytes(&key);
        let public = secret.verifying_key().to_bytes();
        let peer = peer_id_of(&public).unwrap();
        assert_eq!(ed25519_of_peer(&peer), Some(public));
        assert!(PeerId::parse_value(&peer.to_string()).is_ok());
    }

    #[test]
    fn amounts_and_filters() {
        assert!(
            U256::parse_value(
                "115792089237316195423570985008687907853269984665640564039457584007913129639936"
            )
            .is_err()
        );
        assert!(U256::parse_value("1e5").is_err());
        assert!(LogFilter::parse_value("info,backstop_p2p=debug").is_ok());
        assert!(LogFilter::parse_value("info,,debug").is_err());
        assert!(LogFilter::parse_value("x=loud").is_err());
    }
}
