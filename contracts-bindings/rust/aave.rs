//! A real Aave v3.0 market as a Backstop member (feature `testing`): the market deployed from
//! the published bytecode of npm `@aave/core-v3` (pinned by `testnet/install-tools`, linked
//! into `contracts-bindings/lib/@aave/core-v3`), its libraries linked here by hand, and the
//! [`AaveV3Member`] adapter over it.
//!
//! What it does: [`Artifact`] reads a hardhat artifact and links it ([`Artifact::link`]:
//! every 20-byte slot the artifact's `linkReferences` name is overwritten with the library's
//! address, after checking it holds the `__$…$__` placeholder); [`deploy_market`] deploys a
//! minimal market (addresses provider, ACL manager, Pool and PoolConfigurator behind their
//! proxies, the Aave oracle with Chainlink-style `MockAggregator` feeds, a WETH reserve as
//! collateral and the given pool token as the borrowable USDC-like reserve, both with a
//! zero-interest strategy); [`deploy_adapter`] deploys the member adapter; [`supply`],
//! [`borrow`] and [`new_feed`] are what users and the market's admin do.
//!
//! Invariants:
//! - the market is the forge fixture's (`test/utils/AaveV3Market.sol`) with one difference:
//!   the interest rate strategy is zero everywhere, so a debt does not grow between two reads
//!   and "exactly the deficit" holds on a chain whose clock runs;
//! - every transaction is waited for until mined and must succeed; failures are
//!   [`AaveError`]s naming the step, never panics.
#![allow(missing_docs, clippy::too_many_arguments, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, B256, Bytes, I256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol;
use alloy::sol_types::SolValue;

use crate::bindings::MockToken;
use crate::tools::repo_root;

sol!(
    #[sol(rpc, all_derives)]
    AaveV3Member,
    "artifacts/AaveV3Member.json"
);

sol! {
    /// `PoolAddressesProvider` (the admin part).
    #[sol(rpc)]
    interface IAaveAddressesProvider {
        function setACLAdmin(address newAclAdmin) external;
        function setACLManager(address newAclManager) external;
        function setPoolImpl(address newPoolImpl) external;
        function setPoolConfiguratorImpl(address newPoolConfiguratorImpl) external;
        function setPriceOracle(address newPriceOracle) external;
        function getPool() external view returns (address);
        function getPoolConfigurator() external view returns (address);
    }

    /// `ACLManager` (the admin part).
    #[sol(rpc)]
    interface IAaveAclManager {
        function addPoolAdmin(address admin) external;
    }

    /// `AaveOracle`: prices in USD with 8 decimals.
    #[sol(rpc)]
    interface IAaveOracle {
        function setAssetSources(address[] calldata assets, address[] calldata sources) external;
        function getAssetPrice(address asset) external view returns (uint256);
    }

    /// `ConfiguratorInputTypes.InitReserveInput` of Aave v3.0.
    #[derive(Debug)]
    struct InitReserveInput {
        address aTokenImpl;
        address stableDebtTokenImpl;
        address variableDebtTokenImpl;
        uint8 underlyingAssetDecimals;
        address interestRateStrategyAddress;
        address underlyingAsset;
        address treasury;
        address incentivesController;
        string aTokenName;
        string aTokenSymbol;
        string variableDebtTokenName;
        string variableDebtTokenSymbol;
        string stableDebtTokenName;
        string stableDebtTokenSymbol;
        bytes params;
    }

    /// `PoolConfigurator` (the admin part).
    #[sol(rpc)]
    interface IAavePoolConfigurator {
        function initReserves(InitReserveInput[] calldata input) external;
        function configureReserveAsCollateral(address asset, uint256 ltv, uint256 liquidationThreshold, uint256 liquidationBonus) external;
        function setReserveBorrowing(address asset, bool enabled) external;
    }

    /// `DataTypes.ReserveData` of Aave v3.0.
    #[derive(Debug)]
    struct AaveReserveData {
        uint256 configuration;
        uint128 liquidityIndex;
        uint128 currentLiquidityRate;
        uint128 variableBorrowIndex;
        uint128 currentVariableBorrowRate;
        uint128 currentStableBorrowRate;
        uint40 lastUpdateTimestamp;
        uint16 id;
        address aTokenAddress;
        address stableDebtTokenAddress;
        address variableDebtTokenAddress;
        address interestRateStrategyAddress;
        uint128 accruedToTreasury;
        uint128 unbacked;
        uint128 isolationModeTotalDebt;
    }

    /// `Pool` (the user part).
    #[sol(rpc)]
    interface IAavePool {
        function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external;
        function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode, address onBehalfOf) external;
        function liquidationCall(address collateralAsset, address debtAsset, address user, uint256 debtToCover, bool receiveAToken) external;
        function getUserAccountData(address user) external view returns (uint256 totalCollateralBase, uint256 totalDebtBase, uint256 availableBorrowsBase, uint256 currentLiquidationThreshold, uint256 ltv, uint256 healthFactor);
        function getReserveData(address asset) external view returns (AaveReserveData memory);
    }

    /// An ERC-20 with an open `mint` (Aave's `MintableERC20`, the project's `MockToken`).
    #[sol(rpc)]
    interface IMintableErc20 {
        function mint(address account, uint256 value) external;
        function approve(address spender, uint256 value) external returns (bool);
        function transfer(address to, uint256 value) external returns (bool);
        function balanceOf(address account) external view returns (uint256);
    }
}

/// Where `testnet/install-tools` links the package, relative to the repository root.
pub const ARTIFACTS: &str = "contracts-bindings/lib/@aave/core-v3/artifacts/contracts";

/// Aave's libraries the Pool and the PoolConfigurator link, in deployment order (FlashLoanLogic
/// links BorrowLogic, so it comes after it).
pub const LIBRARIES: [&str; 8] = [
    "SupplyLogic",
    "BorrowLogic",
    "LiquidationLogic",
    "EModeLogic",
    "BridgeLogic",
    "PoolLogic",
    "FlashLoanLogic",
    "ConfiguratorLogic",
];

/// WETH's price at deployment (USD, 8 decimals).
pub const WETH_PRICE: i64 = 2_000 * 100_000_000;
/// The pool token's price (USD, 8 decimals).
pub const POOL_TOKEN_PRICE: i64 = 100_000_000;
/// WETH as collateral: LTV, liquidation threshold, liquidation bonus (basis points).
pub const WETH_LTV: u64 = 8_000;
/// See [`WETH_LTV`].
pub const WETH_THRESHOLD: u64 = 8_250;
/// See [`WETH_LTV`] (10000 + a 5% bonus).
pub const WETH_BONUS: u64 = 10_500;
/// Gas limit of a user's Pool call (`supply`, `borrow`, `liquidationCall`, the adapter's
/// `settle`): `eth_estimateGas` underestimates Aave's borrow, which then runs out of gas.
pub const USER_GAS: u64 = 3_000_000;
/// Variable rate mode of `borrow` and `repay`.
pub const VARIABLE: u64 = 2;

/// Why a step failed.
#[derive(Debug, thiserror::Error)]
pub enum AaveError {
    /// An artifact is missing or malformed, or cannot be linked.
    #[error("Aave artifact {path}: {reason}")]
    Artifact {
        /// Artifact path under [`ARTIFACTS`].
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A transaction or call failed.
    #[error("{step}: {reason}")]
    Chain {
        /// What was done.
        step: String,
        /// Why it failed.
        reason: String,
    },
}

fn chain_err(step: &str, e: impl std::fmt::Display) -> AaveError {
    AaveError::Chain {
        step: step.to_owned(),
        reason: e.to_string(),
    }
}

/// One slot a library's address goes into: `length` bytes at byte `start` of the bytecode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct LinkRef {
    /// Byte offset in the creation bytecode.
    pub start: usize,
    /// Always 20.
    pub length: usize,
}

/// A hardhat artifact's creation code and link references.
#[derive(Clone, Debug)]
pub struct Artifact {
    /// Path under [`ARTIFACTS`].
    pub path: String,
    /// Creation bytecode as hex (no `0x`), placeholders included.
    pub bytecode: String,
    /// `source file -> library name -> slots`.
    pub link_references: BTreeMap<String, BTreeMap<String, Vec<LinkRef>>>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawArtifact {
    bytecode: String,
    #[serde(default)]
    link_references: BTreeMap<String, BTreeMap<String, Vec<LinkRef>>>,
}

impl Artifact {
    /// Reads the artifact at `path` under [`ARTIFACTS`] (e.g.
    /// `protocol/pool/Pool.sol/Pool.json`).
    pub fn read(path: &str) -> Result<Artifact, AaveError> {
        let err = |reason: String| AaveError::Artifact {
            path: path.to_owned(),
            reason,
        };
        let file: PathBuf = repo_root().join(ARTIFACTS).join(path);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            err(format!(
                "reading {}: {e} (run testnet/install-tools)",
                file.display()
            ))
        })?;
        let raw: RawArtifact =
            serde_json::from_str(&text).map_err(|e| err(format!("parsing: {e}")))?;
        Ok(Artifact {
            path: path.to_owned(),
            bytecode: raw.bytecode.trim_start_matches("0x").to_owned(),
            link_references: raw.link_references,
        })
    }

    /// The artifact of library `name` (`protocol/libraries/logic/<name>.sol/<name>.json`).
    pub fn library(name: &str) -> Result<Artifact, AaveError> {
        Artifact::read(&format!("protocol/libraries/logic/{name}.sol/{name}.json"))
    }

    /// The creation code with every library the link references name set to its address in
    /// `libraries` (by library name). Fails if a referenced library is not given, a slot does
    /// not hold a placeholder, or a placeholder is left anywhere.
    pub fn link(&self, libraries: &BTreeMap<String, Address>) -> Result<Bytes, AaveError> {
        let err = |reason: String| AaveError::Artifact {
            path: self.path.clone(),
            reason,
        };
        let mut code = self.bytecode.clone();
        for (source, libs) in &self.link_references {
            for (name, refs) in libs {
                let address = libraries
                    .get(name)
                    .ok_or_else(|| err(format!("library {source}:{name} not deployed yet")))?;
                let hex = alloy::hex::encode(address.as_slice());
                for r in refs {
                    let at = 2 * r.start;
                    if r.length != 20 || code.get(at..at + 3) != Some("__$") {
                        return Err(err(format!(
                            "no placeholder for {name} at byte {} (length {})",
                            r.start, r.length
                        )));
                    }
                    code.replace_range(at..at + 40, &hex);
                }
            }
        }
        if code.contains("__$") {
            return Err(err("a placeholder is left unlinked".into()));
        }
        alloy::hex::decode(&code)
            .map(Bytes::from)
            .map_err(|e| err(format!("bytecode is not hex: {e}")))
    }
}

/// A deployed market.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AaveMarket {
    /// `PoolAddressesProvider`.
    pub addresses_provider: Address,
    /// `ACLManager`.
    pub acl_manager: Address,
    /// The Pool (its proxy).
    pub pool: Address,
    /// The PoolConfigurator (its proxy).
    pub pool_configurator: Address,
    /// `AaveOracle`.
    pub oracle: Address,
    /// WETH (`MintableERC20`, 18 decimals): the collateral reserve.
    pub weth: Address,
    /// The pool token: the borrowable reserve.
    pub pool_token: Address,
    /// WETH's feed at deployment.
    pub weth_feed: Address,
    /// The pool token's feed.
    pub pool_token_feed: Address,
    /// The interest rate strategy of both reserves (zero everywhere).
    pub strategy: Address,
    /// Variable debt token of the pool-token reserve.
    pub pool_token_variable_debt: Address,
}

/// What [`deploy_market`] cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeployCost {
    /// Transactions sent.
    pub transactions: u64,
    /// Gas used by all of them.
    pub gas: u64,
}

/// Sends `tx` and waits for a successful receipt.
async fn send(
    provider: &DynProvider,
    cost: &mut DeployCost,
    step: &str,
    tx: TransactionRequest,
) -> Result<TransactionReceipt, AaveError> {
    let receipt = provider
        .send_transaction(tx)
        .await
        .map_err(|e| chain_err(step, e))?
        .get_receipt()
        .await
        .map_err(|e| chain_err(step, e))?;
    if !receipt.status() {
        return Err(chain_err(
            step,
            format!("reverted in {}", receipt.transaction_hash),
        ));
    }
    cost.transactions += 1;
    cost.gas += receipt.gas_used;
    Ok(receipt)
}

/// Sends a contract call and waits for a successful receipt.
pub async fn call<P: Provider, D: alloy::contract::CallDecoder>(
    step: &str,
    c: alloy::contract::CallBuilder<P, D>,
) -> Result<TransactionReceipt, AaveError> {
    let receipt = c
        .send()
        .await
        .map_err(|e| chain_err(step, e))?
        .get_receipt()
        .await
        .map_err(|e| chain_err(step, e))?;
    if !receipt.status() {
        return Err(chain_err(
            step,
            format!("reverted in {}", receipt.transaction_hash),
        ));
    }
    Ok(receipt)
}

/// Counts `receipt` in `cost`.
fn tally(cost: &mut DeployCost, receipt: TransactionReceipt) {
    cost.transactions += 1;
    cost.gas += receipt.gas_used;
}

/// Deploys `code ++ args`; returns the new contract's address.
async fn create(
    provider: &DynProvider,
    cost: &mut DeployCost,
    what: &str,
    code: Bytes,
    args: Vec<u8>,
) -> Result<Address, AaveError> {
    let mut init = code.to_vec();
    init.extend_from_slice(&args);
    let step = format!("deploying {what}");
    let tx = TransactionRequest::default().with_deploy_code(Bytes::from(init));
    let receipt = send(provider, cost, &step, tx).await?;
    receipt
        .contract_address
        .ok_or_else(|| chain_err(&step, "no contract address in the receipt"))
}

/// Deploys the artifact at `path`, linking `libraries`.
async fn deploy_artifact(
    provider: &DynProvider,
    cost: &mut DeployCost,
    path: &str,
    libraries: &BTreeMap<String, Address>,
    args: Vec<u8>,
) -> Result<Address, AaveError> {
    let code = Artifact::read(path)?.link(libraries)?;
    create(provider, cost, path, code, args).await
}

/// A Chainlink-style feed answering `answer` (USD, 8 decimals): Aave's `MockAggregator`.
pub async fn new_feed(provider: &DynProvider, answer: I256) -> Result<Address, AaveError> {
    feed(provider, &mut DeployCost::default(), answer).await
}

async fn feed(
    provider: &DynProvider,
    cost: &mut DeployCost,
    answer: I256,
) -> Result<Address, AaveError> {
    deploy_artifact(
        provider,
        cost,
        "mocks/oracle/CLAggregators/MockAggregator.sol/MockAggregator.json",
        &BTreeMap::new(),
        answer.abi_encode(),
    )
    .await
}

/// Deploys a market whose borrowable reserve is `pool_token` (6 decimals), through
/// `provider`, whose wallet `admin` becomes ACL admin and pool admin. Returns the market and
/// what deploying it cost.
pub async fn deploy_market(
    provider: &DynProvider,
    admin: Address,
    pool_token: Address,
) -> Result<(AaveMarket, DeployCost), AaveError> {
    let mut cost = DeployCost::default();
    let none = BTreeMap::new();
    let p = provider.clone();
    let ap = deploy_artifact(
        provider,
        &mut cost,
        "protocol/configuration/PoolAddressesProvider.sol/PoolAddressesProvider.json",
        &none,
        ("Backstop".to_owned(), admin).abi_encode_params(),
    )
    .await?;
    let addresses = IAaveAddressesProvider::new(ap, p.clone());
    tally(
        &mut cost,
        call("setACLAdmin", addresses.setACLAdmin(admin)).await?,
    );
    let acl = deploy_artifact(
        provider,
        &mut cost,
        "protocol/configuration/ACLManager.sol/ACLManager.json",
        &none,
        ap.abi_encode(),
    )
    .await?;
    tally(
        &mut cost,
        call("setACLManager", addresses.setACLManager(acl)).await?,
    );
    tally(
        &mut cost,
        call(
            "addPoolAdmin",
            IAaveAclManager::new(acl, p.clone()).addPoolAdmin(admin),
        )
        .await?,
    );

    let mut libraries = BTreeMap::new();
    for name in LIBRARIES {
        let code = Artifact::library(name)?.link(&libraries)?;
        let at = create(provider, &mut cost, name, code, Vec::new()).await?;
        libraries.insert(name.to_owned(), at);
    }
    let pool_impl = deploy_artifact(
        provider,
        &mut cost,
        "protocol/pool/Pool.sol/Pool.json",
        &libraries,
        ap.abi_encode(),
    )
    .await?;
    tally(
        &mut cost,
        call("setPoolImpl", addresses.setPoolImpl(pool_impl)).await?,
    );
    let pool = addresses
        .getPool()
        .call()
        .await
        .map_err(|e| chain_err("getPool", e))?;
    let configurator_impl = deploy_artifact(
        provider,
        &mut cost,
        "protocol/pool/PoolConfigurator.sol/PoolConfigurator.json",
        &libraries,
        Vec::new(),
    )
    .await?;
    tally(
        &mut cost,
        call(
            "setPoolConfiguratorImpl",
            addresses.setPoolConfiguratorImpl(configurator_impl),
        )
        .await?,
    );
    let configurator = addresses
        .getPoolConfigurator()
        .call()
        .await
        .map_err(|e| chain_err("getPoolConfigurator", e))?;

    let weth = deploy_artifact(
        provider,
        &mut cost,
        "mocks/tokens/MintableERC20.sol/MintableERC20.json",
        &none,
        // uint8 decimals: ABI-encoded as a full word, like a uint256.
        (
            "Wrapped Ether".to_owned(),
            "WETH".to_owned(),
            U256::from(18),
        )
            .abi_encode_params(),
    )
    .await?;
    let weth_feed = feed(
        provider,
        &mut cost,
        I256::try_from(WETH_PRICE).expect("small"),
    )
    .await?;
    let pool_token_feed = feed(
        provider,
        &mut cost,
        I256::try_from(POOL_TOKEN_PRICE).expect("small"),
    )
    .await?;
    let oracle = deploy_artifact(
        provider,
        &mut cost,
        "misc/AaveOracle.sol/AaveOracle.json",
        &none,
        (
            ap,
            vec![weth, pool_token],
            vec![weth_feed, pool_token_feed],
            Address::ZERO,
            Address::ZERO,
            U256::from(100_000_000u64),
        )
            .abi_encode_params(),
    )
    .await?;
    tally(
        &mut cost,
        call("setPriceOracle", addresses.setPriceOracle(oracle)).await?,
    );

    let a_token = deploy_artifact(
        provider,
        &mut cost,
        "protocol/tokenization/AToken.sol/AToken.json",
        &none,
        pool.abi_encode(),
    )
    .await?;
    let stable = deploy_artifact(
        provider,
        &mut cost,
        "protocol/tokenization/StableDebtToken.sol/StableDebtToken.json",
        &none,
        pool.abi_encode(),
    )
    .await?;
    let variable = deploy_artifact(
        provider,
        &mut cost,
        "protocol/tokenization/VariableDebtToken.sol/VariableDebtToken.json",
        &none,
        pool.abi_encode(),
    )
    .await?;
    // Zero interest: base rate and every slope 0 (the ratios at Aave's usual 80% / 20%).
    let ray = U256::from(10).pow(U256::from(27));
    let strategy = deploy_artifact(
        provider,
        &mut cost,
        "protocol/pool/DefaultReserveInterestRateStrategy.sol/DefaultReserveInterestRateStrategy.json",
        &none,
        (
            ap,
            ray * U256::from(8) / U256::from(10),
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
            U256::ZERO,
            ray * U256::from(2) / U256::from(10),
        )
            .abi_encode_params(),
    )
    .await?;
    let input = |asset: Address, decimals: u8, symbol: &str| InitReserveInput {
        aTokenImpl: a_token,
        stableDebtTokenImpl: stable,
        variableDebtTokenImpl: variable,
        underlyingAssetDecimals: decimals,
        interestRateStrategyAddress: strategy,
        underlyingAsset: asset,
        treasury: Address::repeat_byte(0x7E),
        incentivesController: Address::ZERO,
        aTokenName: format!("Aave {symbol}"),
        aTokenSymbol: format!("a{symbol}"),
        variableDebtTokenName: format!("Aave variable debt {symbol}"),
        variableDebtTokenSymbol: format!("variableDebt{symbol}"),
        stableDebtTokenName: format!("Aave stable debt {symbol}"),
        stableDebtTokenSymbol: format!("stableDebt{symbol}"),
        params: Bytes::new(),
    };
    let configure = IAavePoolConfigurator::new(configurator, p.clone());
    tally(
        &mut cost,
        call(
            "initReserves",
            configure.initReserves(vec![input(weth, 18, "WETH"), input(pool_token, 6, "pUSD")]),
        )
        .await?,
    );
    tally(
        &mut cost,
        call(
            "configureReserveAsCollateral",
            configure.configureReserveAsCollateral(
                weth,
                U256::from(WETH_LTV),
                U256::from(WETH_THRESHOLD),
                U256::from(WETH_BONUS),
            ),
        )
        .await?,
    );
    tally(
        &mut cost,
        call(
            "setReserveBorrowing",
            configure.setReserveBorrowing(pool_token, true),
        )
        .await?,
    );
    let reserve = IAavePool::new(pool, p.clone())
        .getReserveData(pool_token)
        .call()
        .await
        .map_err(|e| chain_err("getReserveData", e))?;
    Ok((
        AaveMarket {
            addresses_provider: ap,
            acl_manager: acl,
            pool,
            pool_configurator: configurator,
            oracle,
            weth,
            pool_token,
            weth_feed,
            pool_token_feed,
            strategy,
            pool_token_variable_debt: reserve.variableDebtTokenAddress,
        },
        cost,
    ))
}

/// Bounds the adapter believes (USD, 8 decimals): the pool token within 0.90..1.10, any
/// reserve below 10 million.
pub const MIN_POOL_TOKEN_PRICE: u64 = 90_000_000;
/// See [`MIN_POOL_TOKEN_PRICE`].
pub const MAX_POOL_TOKEN_PRICE: u64 = 110_000_000;
/// See [`MIN_POOL_TOKEN_PRICE`].
pub const MAX_ASSET_PRICE: u64 = 10_000_000 * 100_000_000;

/// Deploys the [`AaveV3Member`] adapter of `market` for member `member_id` homed on `vault`:
/// at most `max_tracked` accounts, `bookkeeper` may declare remote legs unpaid.
pub async fn deploy_adapter(
    provider: &DynProvider,
    market: &AaveMarket,
    vault: Address,
    member_id: B256,
    bookkeeper: Address,
    max_tracked: u64,
) -> Result<Address, AaveError> {
    let config = AaveV3Member::Config {
        pool: market.pool,
        poolToken: market.pool_token,
        maxTracked: U256::from(max_tracked),
        minPoolTokenPrice: U256::from(MIN_POOL_TOKEN_PRICE),
        maxPoolTokenPrice: U256::from(MAX_POOL_TOKEN_PRICE),
        maxAssetPrice: U256::from(MAX_ASSET_PRICE),
        vault,
        memberId: member_id,
        bookkeeper,
    };
    AaveV3Member::deploy(provider.clone(), config)
        .await
        .map(|c| *c.address())
        .map_err(|e| chain_err("deploying AaveV3Member", e))
}

/// `who` (the wallet of `provider`) is given `amount` of `asset` (its open `mint`) and
/// supplies it to the market.
pub async fn supply(
    provider: &DynProvider,
    market: &AaveMarket,
    who: Address,
    asset: Address,
    amount: U256,
) -> Result<(), AaveError> {
    let token = IMintableErc20::new(asset, provider.clone());
    call("mint", token.mint(who, amount)).await?;
    call("approve the Pool", token.approve(market.pool, amount)).await?;
    call(
        "supply",
        IAavePool::new(market.pool, provider.clone())
            .supply(asset, amount, who, 0)
            .gas(USER_GAS),
    )
    .await?;
    Ok(())
}

/// `who` (the wallet of `provider`) borrows `amount` of the pool token at the variable rate.
pub async fn borrow(
    provider: &DynProvider,
    market: &AaveMarket,
    who: Address,
    amount: U256,
) -> Result<B256, AaveError> {
    call(
        "borrow",
        IAavePool::new(market.pool, provider.clone())
            .borrow(market.pool_token, amount, U256::from(VARIABLE), 0, who)
            .gas(USER_GAS),
    )
    .await
    .map(|r| r.transaction_hash)
}

/// `who`'s variable debt in the pool token (raw units).
pub async fn variable_debt(
    provider: &DynProvider,
    market: &AaveMarket,
    who: Address,
) -> Result<U256, AaveError> {
    MockToken::new(market.pool_token_variable_debt, provider.clone())
        .balanceOf(who)
        .call()
        .await
        .map_err(|e| chain_err("variable debt balanceOf", e))
}
