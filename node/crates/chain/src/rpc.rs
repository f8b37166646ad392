//! RPC access to one chain over several endpoints, with timeouts, retries and failover.
//!
//! [`RpcPool`] holds the endpoints of one chain (HTTP or websocket URLs). Every request runs
//! under a timeout; a transport failure, a timeout or an invalid answer moves the pool to
//! the next endpoint and retries after an exponential backoff with jitter ([`Backoff`]),
//! up to the configured number of attempts. An answer the node gives deliberately (a
//! JSON-RPC error such as a revert) is final and returned at once.
//!
//! Invariants:
//! - an endpoint is used only after it proved to serve the configured chain id;
//! - an answer is returned only after validation: a block must have the number asked for
//!   and a hash equal to the hash of its header; undecodable or empty answers are errors
//!   ([`CallError::Invalid`]), never values.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Bytes;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::transports::{RpcError as AlloyRpcError, TransportError};

use crate::retry::{Backoff, JitterSource, SplitMix64};
use crate::tracker::BlockRef;

/// Endpoints and fault handling of one chain.
#[derive(Clone, Debug)]
pub struct RpcConfig {
    /// EIP-155 chain id every endpoint must serve.
    pub chain_id: u64,
    /// Endpoint URLs (`http(s)://` or `ws(s)://`), in order of preference.
    pub urls: Vec<String>,
    /// Timeout of one request (and of connecting to an endpoint).
    pub request_timeout: Duration,
    /// Retries.
    pub backoff: Backoff,
}

impl RpcConfig {
    /// A config with default timeout (2 s) and backoff.
    pub fn new(chain_id: u64, urls: Vec<String>) -> Self {
        Self {
            chain_id,
            urls,
            request_timeout: Duration::from_secs(2),
            backoff: Backoff::default(),
        }
    }
}

/// Failure of one request on one endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The endpoint could not be reached or answered too late: retried elsewhere.
    #[error("transport: {0}")]
    Transport(String),
    /// The answer is garbage or inconsistent: retried elsewhere, never used.
    #[error("invalid answer: {0}")]
    Invalid(String),
    /// The node answered with a JSON-RPC error (a revert, a refused transaction): final.
    #[error("node error {code}: {message}")]
    Rejected {
        /// JSON-RPC error code.
        code: i64,
        /// Error message.
        message: String,
        /// Revert data, if any.
        data: Option<Bytes>,
    },
}

impl CallError {
    fn retryable(&self) -> bool {
        !matches!(self, CallError::Rejected { .. })
    }
}

impl From<TransportError> for CallError {
    fn from(e: TransportError) -> Self {
        match e {
            AlloyRpcError::ErrorResp(p) => CallError::Rejected {
                code: p.code,
                data: p.as_revert_data(),
                message: p.message.to_string(),
            },
            AlloyRpcError::NullResp => CallError::Invalid("null response".into()),
            AlloyRpcError::DeserError { err, text } => {
                let mut text = text;
                text.truncate(200);
                CallError::Invalid(format!("undecodable response ({err}): {text}"))
            }
            other => CallError::Transport(other.to_string()),
        }
    }
}

impl From<alloy::contract::Error> for CallError {
    fn from(e: alloy::contract::Error) -> Self {
        match e {
            alloy::contract::Error::TransportError(t) => t.into(),
            other => CallError::Invalid(other.to_string()),
        }
    }
}

/// Failure of a request after retries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcError {
    /// No configured endpoint.
    #[error("chain {0}: no RPC endpoint configured")]
    NoEndpoints(u64),
    /// Every attempt failed.
    #[error("chain {chain_id}: {what} failed after {attempts} attempts: {last}")]
    Exhausted {
        /// Chain.
        chain_id: u64,
        /// Request.
        what: &'static str,
        /// Attempts made.
        attempts: u32,
        /// Last failure.
        last: CallError,
    },
    /// The node refused the request (final).
    #[error("chain {chain_id}: {what}: {error}")]
    Rejected {
        /// Chain.
        chain_id: u64,
        /// Request.
        what: &'static str,
        /// The refusal ([`CallError::Rejected`]).
        error: CallError,
    },
}

impl RpcError {
    /// The node's refusal, if this is one.
    pub fn rejection(&self) -> Option<(&i64, &str, Option<&Bytes>)> {
        match self {
            RpcError::Rejected {
                error:
                    CallError::Rejected {
                        code,
                        message,
                        data,
                    },
                ..
            } => Some((code, message.as_str(), data.as_ref())),
            _ => None,
        }
    }

    /// Whether the node refused a call because it reverted (JSON-RPC code 3, or an
    /// "execution reverted" message as some nodes answer with -32000): a fact of the state
    /// read, unlike an unknown block or a refused request.
    pub fn is_revert(&self) -> bool {
        self.rejection().is_some_and(|(code, message, _)| {
            *code == 3 || message.to_ascii_lowercase().contains("revert")
        })
    }
}

struct Endpoint {
    url: String,
    provider: tokio::sync::Mutex<Option<DynProvider>>,
}

/// The endpoints of one chain.
pub struct RpcPool {
    config: RpcConfig,
    /// Replaced whole by [`RpcPool::set_urls`]; a request works on the list it started
    /// with.
    endpoints: std::sync::RwLock<Arc<Vec<Arc<Endpoint>>>>,
    current: AtomicUsize,
    jitter: Mutex<Box<dyn JitterSource>>,
    /// Requests sent, by what they asked ([`RpcPool::call`]'s `what`: a fixed set of names,
    /// so the map stays small).
    requests: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::fmt::Debug for RpcPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcPool")
            .field("chain_id", &self.config.chain_id)
            .field("urls", &self.urls())
            .field("current", &self.current.load(Ordering::Relaxed))
            .finish()
    }
}

fn endpoint(url: &str) -> Arc<Endpoint> {
    Arc::new(Endpoint {
        url: url.to_owned(),
        provider: tokio::sync::Mutex::new(None),
    })
}

impl RpcPool {
    /// A pool over `config`'s endpoints with clock-seeded jitter. Connects lazily.
    pub fn new(config: RpcConfig) -> Self {
        Self::with_jitter(config, Box::new(SplitMix64::from_clock()))
    }

    /// A pool with an explicit jitter source (deterministic in tests).
    pub fn with_jitter(config: RpcConfig, jitter: Box<dyn JitterSource>) -> Self {
        let endpoints = config.urls.iter().map(|u| endpoint(u)).collect();
        Self {
            config,
            endpoints: std::sync::RwLock::new(Arc::new(endpoints)),
            current: AtomicUsize::new(0),
            jitter: Mutex::new(jitter),
            requests: Mutex::new(BTreeMap::new()),
        }
    }

    fn endpoints(&self) -> Arc<Vec<Arc<Endpoint>>> {
        self.endpoints
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The endpoint URLs, in order of preference.
    pub fn urls(&self) -> Vec<String> {
        self.endpoints().iter().map(|e| e.url.clone()).collect()
    }

    /// Replaces the endpoints (an operator's configuration reload): connections to URLs
    /// kept are kept, requests under way finish on the list they started with, and the
    /// next ones start at the first URL. Returns whether anything changed.
    pub fn set_urls(&self, urls: &[String]) -> bool {
        let mut slot = self.endpoints.write().unwrap_or_else(|p| p.into_inner());
        if slot.iter().map(|e| &e.url).eq(urls.iter()) {
            return false;
        }
        let kept = |u: &String| slot.iter().find(|e| e.url == *u).cloned();
        let next: Vec<Arc<Endpoint>> = urls
            .iter()
            .map(|u| kept(u).unwrap_or_else(|| endpoint(u)))
            .collect();
        *slot = Arc::new(next);
        self.current.store(0, Ordering::Relaxed);
        true
    }

    /// Requests sent so far (every attempt counts), by what they asked.
    pub fn requests(&self) -> BTreeMap<&'static str, u64> {
        self.requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn count(&self, what: &'static str) {
        let mut requests = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        *requests.entry(what).or_default() += 1;
    }

    /// Chain id served.
    pub fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// URL of the endpoint in use.
    pub fn current_url(&self) -> Option<String> {
        let eps = self.endpoints();
        let i = self.current.load(Ordering::Relaxed) % eps.len().max(1);
        eps.get(i).map(|e| e.url.clone())
    }

    /// Whether some endpoint is a websocket (subscriptions available).
    pub fn has_ws(&self) -> bool {
        self.ws_endpoint().is_some()
    }

    fn ws_endpoint(&self) -> Option<Arc<Endpoint>> {
        self.endpoints()
            .iter()
            .find(|e| e.url.starts_with("ws://") || e.url.starts_with("wss://"))
            .cloned()
    }

    /// A provider on the first websocket endpoint, for subscriptions. Requests go through
    /// [`Self::call`] and its failover order instead: alloy's websocket transport leaves
    /// Nagle's algorithm on, which costs tens of milliseconds per burst of concurrent
    /// requests on loopback (see the `pinned_reads` benchmark), so list an HTTP URL first.
    pub async fn ws_provider(&self) -> Result<DynProvider, CallError> {
        let ep = self
            .ws_endpoint()
            .ok_or_else(|| CallError::Transport("no websocket endpoint".into()))?;
        match self.provider(&ep).await {
            Ok(p) => Ok(p),
            Err(e) => {
                *ep.provider.lock().await = None;
                Err(e)
            }
        }
    }

    async fn provider(&self, ep: &Endpoint) -> Result<DynProvider, CallError> {
        let mut slot = ep.provider.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let timeout = self.config.request_timeout;
        let connect = ProviderBuilder::new()
            .disable_recommended_fillers()
            .connect(&ep.url);
        let p = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| CallError::Transport(format!("connecting to {} timed out", ep.url)))?
            .map_err(CallError::from)?
            .erased();
        let chain_id = tokio::time::timeout(timeout, p.get_chain_id())
            .await
            .map_err(|_| CallError::Transport(format!("eth_chainId on {} timed out", ep.url)))??;
        if chain_id != self.config.chain_id {
            return Err(CallError::Invalid(format!(
                "{} serves chain {chain_id}, expected {}",
                ep.url, self.config.chain_id
            )));
        }
        *slot = Some(p.clone());
        Ok(p)
    }

    /// The provider of the endpoint in use (connecting, with failover, if needed).
    pub async fn current_provider(&self) -> Result<DynProvider, RpcError> {
        self.call("connect", |p| async move { Ok(p) }).await
    }

    /// Runs `f` against an endpoint, with timeout, retries, backoff and failover.
    pub async fn call<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T, RpcError>
    where
        F: Fn(DynProvider) -> Fut,
        Fut: Future<Output = Result<T, CallError>>,
    {
        let chain_id = self.config.chain_id;
        let eps = self.endpoints();
        let n = eps.len();
        if n == 0 {
            return Err(RpcError::NoEndpoints(chain_id));
        }
        let attempts = self.config.backoff.max_attempts.max(1);
        let mut last = CallError::Transport("not tried".into());
        for attempt in 0..attempts {
            if attempt > 0 {
                let delay = {
                    let mut j = self.jitter.lock().unwrap_or_else(|p| p.into_inner());
                    self.config.backoff.delay(attempt - 1, j.as_mut())
                };
                tokio::time::sleep(delay).await;
            }
            let i = self.current.load(Ordering::Relaxed) % n;
            self.count(what);
            let result = match self.provider(&eps[i]).await {
                Ok(p) => tokio::time::timeout(self.config.request_timeout, f(p))
                    .await
                    .unwrap_or_else(|_| Err(CallError::Transport(format!("{what} timed out")))),
                Err(e) => Err(e),
            };
            match result {
                Ok(v) => return Ok(v),
                Err(e) if !e.retryable() => {
                    return Err(RpcError::Rejected {
                        chain_id,
                        what,
                        error: e,
                    });
                }
                Err(e) => {
                    tracing::debug!(chain_id, what, url = %eps[i].url, error = %e, attempt, "rpc attempt failed");
                    if matches!(e, CallError::Transport(_)) {
                        *eps[i].provider.lock().await = None;
                    }
                    if n > 1 {
                        let _ = self.current.compare_exchange(
                            i,
                            (i + 1) % n,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                        tracing::info!(chain_id, from = %eps[i].url, to = %eps[(i + 1) % n].url, "rpc failover");
                    }
                    last = e;
                }
            }
        }
        Err(RpcError::Exhausted {
            chain_id,
            what,
            attempts,
            last,
        })
    }

    /// Latest block number.
    pub async fn head_number(&self) -> Result<u64, RpcError> {
        self.call("eth_blockNumber", |p| async move {
            Ok(p.get_block_number().await?)
        })
        .await
    }

    /// The block at `number`, validated: its number is `number` and its hash is the hash of
    /// its header.
    pub async fn block_ref(&self, number: u64) -> Result<BlockRef, RpcError> {
        self.call("eth_getBlockByNumber", |p| async move {
            let block = p
                .get_block_by_number(number.into())
                .await?
                .ok_or_else(|| CallError::Invalid(format!("block {number} not found")))?;
            validate_header(number, &block.header)
        })
        .await
    }

    /// The block at `number` with its timestamp, validated like [`Self::block_ref`].
    pub async fn block_with_time(&self, number: u64) -> Result<(BlockRef, u64), RpcError> {
        self.call("eth_getBlockByNumber", |p| async move {
            let block = p
                .get_block_by_number(number.into())
                .await?
                .ok_or_else(|| CallError::Invalid(format!("block {number} not found")))?;
            let r = validate_header(number, &block.header)?;
            Ok((r, block.header.inner.timestamp))
        })
        .await
    }
}

/// Checks that an RPC header is block `number` and that its hash is its header's hash.
pub fn validate_header(
    number: u64,
    header: &alloy::rpc::types::Header,
) -> Result<BlockRef, CallError> {
    if header.inner.number != number {
        return Err(CallError::Invalid(format!(
            "asked block {number}, got {}",
            header.inner.number
        )));
    }
    let computed = header.inner.hash_slow();
    if computed != header.hash {
        return Err(CallError::Invalid(format!(
            "block {number}: hash {} is not the header's hash {computed}",
            header.hash
        )));
    }
    Ok(BlockRef {
        number,
        hash: header.hash,
        parent_hash: header.inner.parent_hash,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use alloy::primitives::B256;

    fn header(number: u64) -> alloy::rpc::types::Header {
        let inner = alloy::consensus::Header {
            number,
            parent_hash: B256::repeat_byte(1),
            gas_limit: 30_000_000,
            ..Default::default()
        };
        alloy::rpc::types::Header {
            hash: inner.hash_slow(),
            inner,
            total_difficulty: None,
            size: None,
        }
    }

    #[test]
    fn header_validation_rejects_wrong_number_and_forged_hash() {
        let h = header(7);
        let r = validate_header(7, &h).unwrap();
        assert_eq!(r.number, 7);
        assert_eq!(r.parent_hash, B256::repeat_byte(1));
        assert!(matches!(validate_header(8, &h), Err(CallError::Invalid(_))));
        let mut forged = h.clone();
        forged.hash = B256::repeat_byte(9);
        assert!(matches!(
            validate_header(7, &forged),
            Err(CallError::Invalid(_))
        ));
        let mut tampered = h;
        tampered.inner.parent_hash = B256::repeat_byte(2);
        assert!(matches!(
            validate_header(7, &tampered),
            Err(CallError::Invalid(_))
        ));
    }
}
