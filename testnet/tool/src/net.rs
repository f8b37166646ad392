//! A handle on a running testnet: chain reads and writes through anvil's key 0 (the
//! deployer, which also drives the mock members and oracles), and the nodes' gRPC API.
//!
//! Invariants: every chain or API call is bounded by [`CALL_TIMEOUT`] (a hung RPC is an
//! error, never a hang); every transaction is waited for until mined and must succeed; the
//! mock members' assets are never lowered by a gap ([`Net::open_gap`] raises liabilities),
//! since a fall in assets is what the exploit detector looks for.

use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::primitives::{Address, B256, I256, U256};
use alloy::providers::ext::AnvilApi;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::signers::local::PrivateKeySigner;
use anyhow::{Context, Result, anyhow, bail};
use backstop_api::AdminRequest;
use backstop_api::proto::{
    Breaker, Chain as ApiChain, GetIncidentRequest, GetStatusRequest, GetStressReportRequest,
    Incident, IncidentPhase, ListBreakersRequest, ListChainsRequest, ListIncidentsRequest,
    NodeStatus, StressReport,
};
use backstop_contracts::bindings::{BackstopVault, MockMember, MockOracle, MockToken};
use backstop_contracts::testing::{ORACLE_ANSWER, UNIT};

use crate::state::{ChainState, MemberState, NodeState, Proc, State};

/// Anvil's dev key 0: deployer, depositor, and sender of every drill transaction.
pub const DEV_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";

/// Bound of one chain or API call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// How often waits poll.
pub const POLL: Duration = Duration::from_millis(250);

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// `f` within [`CALL_TIMEOUT`]; `what` names it in errors.
pub async fn bounded<T, E>(what: &str, f: impl IntoFuture<Output = Result<T, E>>) -> Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(CALL_TIMEOUT, f.into_future()).await {
        Ok(r) => r.map_err(Into::into).with_context(|| what.to_owned()),
        Err(_) => bail!("{what}: no answer within {} s", CALL_TIMEOUT.as_secs()),
    }
}

/// Address of anvil's key 0.
pub fn dev_address() -> Result<Address> {
    let key: PrivateKeySigner = DEV_KEY.parse().context("anvil's dev key")?;
    Ok(key.address())
}

/// A provider over `url` whose wallet is anvil's key 0.
pub fn dev_provider(url: &str) -> Result<DynProvider> {
    let key: PrivateKeySigner = DEV_KEY.parse().context("anvil's dev key")?;
    Ok(ProviderBuilder::new()
        .wallet(key)
        .connect_http(url.parse().with_context(|| format!("RPC URL {url}"))?)
        .erased())
}

/// Sends `call` and waits until it is mined; fails if it reverted. Returns its hash.
pub async fn mined<P: Provider, D: CallDecoder>(
    what: &str,
    call: CallBuilder<P, D>,
) -> Result<B256> {
    let receipt = tokio::time::timeout(Duration::from_secs(60), async {
        call.send()
            .await?
            .get_receipt()
            .await
            .map_err(anyhow::Error::from)
    })
    .await
    .map_err(|_| anyhow!("{what}: not mined within 60 s"))?
    .with_context(|| what.to_owned())?;
    if !receipt.status() {
        bail!("{what}: reverted in {}", receipt.transaction_hash);
    }
    Ok(receipt.transaction_hash)
}

/// Polls `f` every [`POLL`] until it returns true or `timeout` passes; errors count as "not
/// yet". Returns whether it held.
pub async fn wait_until(timeout: Duration, f: impl AsyncFnMut() -> Result<bool>) -> bool {
    wait_every(timeout, POLL, f).await
}

/// [`wait_until`], polling every `poll`.
pub async fn wait_every(
    timeout: Duration,
    poll: Duration,
    mut f: impl AsyncFnMut() -> Result<bool>,
) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if matches!(f().await, Ok(true)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(poll).await;
    }
}

/// Raw pool-token units as `12,345.5 pUSD`.
pub fn pusd(raw: U256) -> String {
    let unit = U256::from(UNIT);
    let whole = (raw / unit).to_string();
    let frac = (raw % unit).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if frac == "0" {
        format!("{grouped} pUSD")
    } else {
        let frac = format!("{frac:0>6}");
        format!("{grouped}.{} pUSD", frac.trim_end_matches('0'))
    }
}

/// `units` whole pool-token units, raw.
pub fn units(units: u64) -> U256 {
    U256::from(units) * U256::from(UNIT)
}

/// A decimal amount string from the API.
pub fn amount(text: &str) -> Result<U256> {
    text.parse::<U256>()
        .with_context(|| format!("amount {text:?} from the API"))
}

/// The on-chain subject of a chain: its id as a 32-byte big-endian word (as
/// `backstop_node::policy::chain_subject`).
pub fn chain_subject(chain_id: u64) -> B256 {
    B256::from(U256::from(chain_id))
}

/// The incident id the API uses: `0x<member>:<seq>`.
pub fn incident_id(member: B256, seq: u64) -> String {
    format!("{member}:{seq}")
}

/// The phase of an API incident, by name (`closed`).
pub fn phase_name(i: &Incident) -> String {
    IncidentPhase::try_from(i.phase)
        .map(|p| {
            p.as_str_name()
                .trim_start_matches("INCIDENT_PHASE_")
                .to_lowercase()
        })
        .unwrap_or_else(|_| format!("phase {}", i.phase))
}

/// The incident is closed.
pub fn is_closed(i: &Incident) -> bool {
    i.phase == IncidentPhase::Closed as i32
}

/// A running testnet, opened from its state directory.
pub struct Net {
    /// The state directory (`.testnet/`).
    pub dir: PathBuf,
    /// What it is made of.
    pub state: State,
    /// One provider per chain (in `state.chains` order), wallet = anvil key 0.
    providers: Vec<DynProvider>,
}

impl Net {
    /// Opens the testnet recorded in `dir`; fails if there is none.
    pub fn open(dir: &Path) -> Result<Net> {
        let state = State::load(dir)?.ok_or_else(|| {
            anyhow!(
                "no testnet is up ({} has no state.json): run testnet/up",
                dir.display()
            )
        })?;
        Net::with_state(dir, state)
    }

    /// A handle on `state`.
    pub fn with_state(dir: &Path, state: State) -> Result<Net> {
        let providers = state
            .chains
            .iter()
            .map(|c| dev_provider(&c.rpc))
            .collect::<Result<Vec<_>>>()?;
        Ok(Net {
            dir: dir.to_owned(),
            state,
            providers,
        })
    }

    /// Writes the state back.
    pub fn save(&self) -> Result<()> {
        self.state.save(&self.dir)
    }

    /// Chain ids, in order.
    pub fn chain_ids(&self) -> Vec<u64> {
        self.state.chains.iter().map(|c| c.chain_id).collect()
    }

    /// Index of chain `chain_id`.
    fn index(&self, chain_id: u64) -> Result<usize> {
        self.state
            .chains
            .iter()
            .position(|c| c.chain_id == chain_id)
            .with_context(|| format!("the testnet has no chain {chain_id}"))
    }

    /// The chain `chain_id`.
    pub fn chain(&self, chain_id: u64) -> Result<&ChainState> {
        self.state.chain(chain_id)
    }

    /// The provider of chain `chain_id`.
    pub fn provider(&self, chain_id: u64) -> Result<&DynProvider> {
        Ok(&self.providers[self.index(chain_id)?])
    }

    /// Member `i`.
    pub fn member(&self, i: usize) -> Result<&MemberState> {
        self.state
            .members
            .get(i)
            .with_context(|| format!("the testnet has no member {i}"))
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> Result<&NodeState> {
        self.state
            .nodes
            .get(i)
            .with_context(|| format!("the testnet has no node {i}"))
    }

    /// The vault of chain `chain_id`.
    pub fn vault(
        &self,
        chain_id: u64,
    ) -> Result<BackstopVault::BackstopVaultInstance<DynProvider>> {
        Ok(BackstopVault::new(
            self.chain(chain_id)?.vault,
            self.provider(chain_id)?.clone(),
        ))
    }

    /// Latest block number of chain `chain_id`.
    pub async fn head(&self, chain_id: u64) -> Result<u64> {
        bounded(
            &format!("eth_blockNumber on chain {chain_id}"),
            self.provider(chain_id)?.get_block_number(),
        )
        .await
    }

    /// Seconds since the latest block of chain `chain_id` was mined (by its timestamp).
    pub async fn head_age_s(&self, chain_id: u64) -> Result<u64> {
        let block = bounded(
            &format!("latest block of chain {chain_id}"),
            self.provider(chain_id)?
                .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest),
        )
        .await?
        .with_context(|| format!("chain {chain_id} has no latest block"))?;
        Ok((now_ms() / 1000).saturating_sub(block.header.timestamp))
    }

    /// Pool-token balance of `who` on chain `chain_id`.
    pub async fn balance(&self, chain_id: u64, who: Address) -> Result<U256> {
        let c = self.chain(chain_id)?;
        let token = MockToken::new(c.token, self.provider(chain_id)?.clone());
        bounded(
            &format!("balanceOf on chain {chain_id}"),
            token.balanceOf(who).call(),
        )
        .await
    }

    /// Balances of member `i`'s recipient on every chain, in chain order.
    pub async fn recipients(&self, i: usize) -> Result<Vec<U256>> {
        let m = self.member(i)?;
        let mut out = Vec::new();
        for c in self.chain_ids() {
            out.push(self.balance(c, m.recipient_on(c)).await?);
        }
        Ok(out)
    }

    /// Every vault's pool-token balance, in chain order.
    pub async fn vault_balances(&self) -> Result<Vec<U256>> {
        let mut out = Vec::new();
        for c in &self.state.chains {
            out.push(self.balance(c.chain_id, c.vault).await?);
        }
        Ok(out)
    }

    /// What each vault could pay now (`availableForPayout`), in chain order.
    pub async fn available(&self) -> Result<Vec<U256>> {
        let mut out = Vec::new();
        for c in self.chain_ids() {
            out.push(
                bounded(
                    &format!("availableForPayout on chain {c}"),
                    self.vault(c)?.availableForPayout().call(),
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// `alertLevel(subject)` on every vault, in chain order.
    pub async fn alert_levels(&self, subject: B256) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        for c in self.chain_ids() {
            out.push(
                bounded(
                    &format!("alertLevel on chain {c}"),
                    self.vault(c)?.alertLevel(subject).call(),
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// `isFrozen(member i)` on every vault, in chain order.
    pub async fn frozen(&self, i: usize) -> Result<Vec<bool>> {
        let id = self.member(i)?.id;
        let mut out = Vec::new();
        for c in self.chain_ids() {
            out.push(
                bounded(
                    &format!("isFrozen on chain {c}"),
                    self.vault(c)?.isFrozen(id).call(),
                )
                .await?,
            );
        }
        Ok(out)
    }

    /// The home vault's `nextSeq(member i)`: the seq of its next incident.
    pub async fn next_seq(&self, i: usize) -> Result<u64> {
        let m = self.member(i)?;
        bounded("nextSeq", self.vault(m.home_chain_id)?.nextSeq(m.id).call()).await
    }

    /// The home vault's `drawOf(member i, seq)` (zero until a draw is registered).
    pub async fn draw_of(&self, i: usize, seq: u64) -> Result<B256> {
        let m = self.member(i)?;
        bounded(
            "drawOf",
            self.vault(m.home_chain_id)?.drawOf(m.id, seq).call(),
        )
        .await
    }

    /// What member `i`'s `solvency()` reports: (assets, liabilities). (The mock's ABI is the
    /// member interface's, so this reads the Aave adapter too.)
    pub async fn solvency(&self, i: usize) -> Result<(U256, U256)> {
        let m = self.member(i)?;
        let r = bounded(
            "solvency()",
            MockMember::new(m.contract, self.provider(m.home_chain_id)?.clone())
                .solvency()
                .call(),
        )
        .await?;
        Ok((r.assets, r.liabilities))
    }

    /// How many of member `i`'s draws its mock protocol declares booked (`bookedDraws()`).
    pub async fn booked_draws(&self, i: usize) -> Result<u64> {
        let m = self.member(i)?;
        let mock = MockMember::new(m.contract, self.provider(m.home_chain_id)?.clone());
        bounded("bookedDraws()", mock.bookedDraws().call()).await
    }

    /// Sets what member `i`'s mock protocol reports.
    pub async fn set_solvency(&self, i: usize, assets: U256, liabilities: U256) -> Result<B256> {
        let m = self.member(i)?;
        let mock = MockMember::new(m.contract, self.provider(m.home_chain_id)?.clone());
        mined(
            &format!("setSolvency of {}", m.name),
            mock.setSolvency(assets, liabilities),
        )
        .await
    }

    /// Sets member `i`'s reported exposure to its oracle (`riskExposures()` of its mock
    /// protocol): equity changes by `delta` for a +100 % move of the oracle's price.
    pub async fn set_exposure(&self, i: usize, delta: I256) -> Result<B256> {
        let m = self.member(i)?;
        let mock = MockMember::new(m.contract, self.provider(m.home_chain_id)?.clone());
        mined(
            &format!("setExposure of {}", m.name),
            mock.setExposure(m.oracle, delta, I256::ZERO),
        )
        .await
    }

    /// Member `i`'s mock protocol reports no exposure; whether it reported any.
    pub async fn clear_exposures(&self, i: usize) -> Result<bool> {
        let m = self.member(i)?;
        if m.aave.is_some() {
            return Ok(false);
        }
        let mock = MockMember::new(m.contract, self.provider(m.home_chain_id)?.clone());
        let reported = bounded("riskExposures()", mock.riskExposures().call()).await?;
        if reported.is_empty() {
            return Ok(false);
        }
        mined(
            &format!("clearExposures of {}", m.name),
            mock.clearExposures(),
        )
        .await?;
        Ok(true)
    }

    /// Deposits `amount` raw units of freshly minted pool tokens into the vault of
    /// `chain_id` (shares to the dev account).
    pub async fn deposit(&self, chain_id: u64, amount: U256) -> Result<B256> {
        let c = self.chain(chain_id)?;
        let provider = self.provider(chain_id)?.clone();
        let token = MockToken::new(c.token, provider);
        let me = dev_address()?;
        mined("mint pool tokens", token.mint(me, amount)).await?;
        mined("approve the vault", token.approve(c.vault, amount)).await?;
        mined(
            &format!("deposit into the vault of chain {chain_id}"),
            self.vault(chain_id)?.deposit(amount, me),
        )
        .await
    }

    /// The block that mined transaction `tx` on chain `chain_id`.
    pub async fn block_of(&self, chain_id: u64, tx: B256) -> Result<u64> {
        bounded(
            &format!("receipt of {tx}"),
            self.provider(chain_id)?.get_transaction_receipt(tx),
        )
        .await?
        .and_then(|r| r.block_number)
        .with_context(|| format!("{tx} is not mined on chain {chain_id}"))
    }

    /// Opens a gap of `gap` raw units for member `i`: its liabilities rise to its assets +
    /// `gap` (its assets never fall here). Returns the incident's seq (the home vault's
    /// `nextSeq` read before).
    pub async fn open_gap(&mut self, i: usize, gap: U256) -> Result<u64> {
        let seq = self.next_seq(i).await?;
        let (assets, _) = self.solvency(i).await?;
        self.troubled(i)?;
        self.set_solvency(i, assets, assets + gap).await?;
        Ok(seq)
    }

    /// Member `i` books its loss and every payout: assets rise to its liabilities (no gap is
    /// left) and, in the same transaction, it declares every registered draw booked.
    /// Returns whether there was a gap. The Aave member books as its adapter allows
    /// ([`crate::aave::book_outstanding`]).
    pub async fn close_gap(&mut self, i: usize) -> Result<bool> {
        if self.member(i)?.aave.is_some() {
            let done = crate::aave::book_outstanding(self, i).await?;
            if !done.is_empty() {
                self.troubled(i)?;
            }
            return Ok(!done.is_empty());
        }
        let (assets, liabilities) = self.solvency(i).await?;
        let registered = self.next_seq(i).await?;
        let gap = assets < liabilities;
        if !gap && self.booked_draws(i).await? >= registered {
            return Ok(false);
        }
        let m = self.member(i)?;
        let mock = MockMember::new(m.contract, self.provider(m.home_chain_id)?.clone());
        mined(
            &format!("setBooks of {}", m.name),
            mock.setBooks(assets.max(liabilities), liabilities, registered),
        )
        .await?;
        if gap {
            self.troubled(i)?;
        }
        Ok(gap)
    }

    /// Once the home vault registered member `i`'s draw of `seq` (waiting at most
    /// `timeout`), the member books it: assets = liabilities and the draw declared booked,
    /// so that a gap left standing does not open the next incident. Returns the draw hash,
    /// `None` on timeout.
    pub async fn book(&mut self, i: usize, seq: u64, timeout: Duration) -> Result<Option<B256>> {
        let mut hash = B256::ZERO;
        let registered = wait_until(timeout, async || {
            hash = self.draw_of(i, seq).await?;
            Ok(!hash.is_zero())
        })
        .await;
        if !registered {
            return Ok(None);
        }
        self.close_gap(i).await?;
        Ok(Some(hash))
    }

    /// Records that member `i` is (still) in trouble now.
    pub fn troubled(&mut self, i: usize) -> Result<()> {
        let id = self.member(i)?.id;
        self.state.troubles.insert(id, now_ms());
        self.save()
    }

    /// Sets the answer of chain `chain_id`'s mock oracle (8 decimals).
    pub async fn set_oracle(&self, chain_id: u64, answer: I256) -> Result<B256> {
        let c = self.chain(chain_id)?;
        let oracle = MockOracle::new(c.oracle, self.provider(chain_id)?.clone());
        mined(
            &format!("setAnswer on chain {chain_id}"),
            oracle.setAnswer(answer),
        )
        .await
    }

    /// The answer of chain `chain_id`'s mock oracle.
    pub async fn oracle_answer(&self, chain_id: u64) -> Result<I256> {
        let c = self.chain(chain_id)?;
        let oracle = MockOracle::new(c.oracle, self.provider(chain_id)?.clone());
        let r = bounded("latestRoundData", oracle.latestRoundData().call()).await?;
        Ok(r.answer)
    }

    /// The default oracle answer (1.00).
    pub fn normal_answer() -> I256 {
        I256::from_raw(U256::from(ORACLE_ANSWER as u64))
    }

    /// Stops block production on chain `chain_id`.
    pub async fn halt(&self, chain_id: u64) -> Result<()> {
        let p = self.provider(chain_id)?;
        bounded("evm_setAutomine(false)", p.anvil_set_auto_mine(false)).await?;
        bounded("evm_setIntervalMining(0)", p.anvil_set_interval_mining(0)).await
    }

    /// Resumes block production on chain `chain_id` (a block a second).
    pub async fn resume(&self, chain_id: u64) -> Result<()> {
        let p = self.provider(chain_id)?;
        bounded("evm_setIntervalMining(1)", p.anvil_set_interval_mining(1)).await
    }

    /// Freezes chain `chain_id`'s anvil process (SIGSTOP): its RPC accepts connections but
    /// answers nothing, as an RPC endpoint that hangs; its state is kept.
    pub fn freeze_rpc(&self, chain_id: u64) -> Result<()> {
        Proc::anvil(self.chain(chain_id)?).signal("STOP")
    }

    /// Thaws a frozen anvil (SIGCONT): the RPC answers again.
    pub fn thaw_rpc(&self, chain_id: u64) -> Result<()> {
        Proc::anvil(self.chain(chain_id)?).signal("CONT")
    }

    /// Every node's API URL.
    pub fn apis(&self) -> Vec<String> {
        self.state.nodes.iter().map(|n| n.api.clone()).collect()
    }

    /// An admin request to node `i`; returns what it started.
    pub async fn admin(&self, i: usize, request: &AdminRequest) -> Result<String> {
        let n = self.node(i)?;
        bounded(
            &format!("{} on {}", request.method(), n.name),
            backstop_api::client::admin(&n.api, &self.state.admin_token, request),
        )
        .await
    }
}

/// `GetStatus` of the node at `url`.
pub async fn status(url: &str) -> Result<NodeStatus> {
    bounded(&format!("GetStatus on {url}"), async {
        let mut c = backstop_api::client::client(url).await?;
        c.get_status(GetStatusRequest {})
            .await?
            .into_inner()
            .status
            .ok_or_else(|| anyhow!("answered without a status"))
    })
    .await
}

/// `ListIncidents` of the node at `url`.
pub async fn incidents(url: &str, open_only: bool) -> Result<Vec<Incident>> {
    bounded(&format!("ListIncidents on {url}"), async {
        let mut c = backstop_api::client::client(url).await?;
        Ok::<_, anyhow::Error>(
            c.list_incidents(ListIncidentsRequest { open_only })
                .await?
                .into_inner()
                .incidents,
        )
    })
    .await
}

/// `GetIncident` of the node at `url`; `None` if it does not know the incident.
pub async fn incident(url: &str, member: B256, seq: u64) -> Result<Option<Incident>> {
    bounded(&format!("GetIncident on {url}"), async {
        let mut c = backstop_api::client::client(url).await?;
        match c
            .get_incident(GetIncidentRequest {
                id: incident_id(member, seq),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().incident),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(anyhow::Error::from(s)),
        }
    })
    .await
}

/// `ListChains` of the node at `url`.
pub async fn chains(url: &str) -> Result<Vec<ApiChain>> {
    bounded(&format!("ListChains on {url}"), async {
        let mut c = backstop_api::client::client(url).await?;
        Ok::<_, anyhow::Error>(
            c.list_chains(ListChainsRequest {})
                .await?
                .into_inner()
                .chains,
        )
    })
    .await
}

/// `ListBreakers` of the node at `url`.
pub async fn breakers(url: &str, active_only: bool) -> Result<Vec<Breaker>> {
    bounded(&format!("ListBreakers on {url}"), async {
        let mut c = backstop_api::client::client(url).await?;
        Ok::<_, anyhow::Error>(
            c.list_breakers(ListBreakersRequest { active_only })
                .await?
                .into_inner()
                .breakers,
        )
    })
    .await
}

/// `GetStressReport` of the node at `url`; an error before its first evaluation.
pub async fn stress(url: &str) -> Result<StressReport> {
    bounded(&format!("GetStressReport on {url}"), async {
        let mut c = backstop_api::client::client(url).await?;
        let answer = c
            .get_stress_report(GetStressReportRequest {})
            .await?
            .into_inner();
        answer
            .report
            .filter(|_| answer.evaluated)
            .ok_or_else(|| anyhow!("{url} has not evaluated the stress scenarios yet"))
    })
    .await
}
