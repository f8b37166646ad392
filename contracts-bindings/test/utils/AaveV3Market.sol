// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Cheats} from "./BaseTest.sol";

/// @notice Cheatcodes of the pinned forge that the old `forge-std/Vm.sol` does not declare.
interface AaveCheats {
    function readFile(string calldata path) external view returns (string memory);
    function parseJsonString(string calldata json, string calldata key) external pure returns (string memory);
    function parseJsonKeys(string calldata json, string calldata key) external pure returns (string[] memory);
    function replace(string calldata input, string calldata from, string calldata to)
        external
        pure
        returns (string memory);
    function indexOf(string calldata input, string calldata key) external pure returns (uint256);
    function parseBytes(string calldata value) external pure returns (bytes memory);
    function toString(address value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function cool(address target) external;
}

// The parts of Aave v3.0's admin and user interfaces the fixture and the tests call.

interface IAddressesProviderAdmin {
    function setACLAdmin(address newAclAdmin) external;
    function setACLManager(address newAclManager) external;
    function setPoolImpl(address newPoolImpl) external;
    function setPoolConfiguratorImpl(address newPoolConfiguratorImpl) external;
    function setPriceOracle(address newPriceOracle) external;
    function getPool() external view returns (address);
    function getPoolConfigurator() external view returns (address);
    function getPriceOracle() external view returns (address);
}

interface IACLManagerAdmin {
    function addPoolAdmin(address admin) external;
}

interface IAaveOracleAdmin {
    function setAssetSources(address[] calldata assets, address[] calldata sources) external;
    function getAssetPrice(address asset) external view returns (uint256);
}

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

interface IPoolConfiguratorAdmin {
    function initReserves(InitReserveInput[] calldata input) external;
    function configureReserveAsCollateral(address asset, uint256 ltv, uint256 threshold, uint256 bonus) external;
    function setReserveBorrowing(address asset, bool enabled) external;
}

interface IPoolUser {
    function supply(address asset, uint256 amount, address onBehalfOf, uint16 referralCode) external;
    function borrow(address asset, uint256 amount, uint256 interestRateMode, uint16 referralCode, address onBehalfOf)
        external;
    function liquidationCall(
        address collateralAsset,
        address debtAsset,
        address user,
        uint256 debtToCover,
        bool receiveAToken
    ) external;
    function getUserAccountData(address user)
        external
        view
        returns (uint256, uint256, uint256, uint256, uint256, uint256);
    function getReserveData(address asset) external view returns (ReserveDataLite memory);
}

/// @notice `DataTypes.ReserveData` of Aave v3.0.
struct ReserveDataLite {
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

interface IMintable {
    function mint(address account, uint256 value) external;
}

/// @notice Deploys a minimal Aave v3.0 market from the real bytecode of the npm package
///         aave/core-v3's published artifacts (under `ARTIFACTS`, installed by
///         `testnet/install-tools`): addresses provider, ACL manager, Pool and PoolConfigurator
///         behind their proxies (the libraries deployed and linked by hand: each placeholder
///         `__$<first 17 bytes of keccak256(source:Name)>$__` of the artifact's link references
///         replaced by the library's address), the Aave oracle with Chainlink-style feeds
///         (Aave's `MockAggregator`), and two reserves: WETH (Aave's `MintableERC20`, 18
///         decimals; collateral LTV 80%, threshold 82.5%, bonus 5%) and the given USDC-like pool
///         token (6 decimals; borrowable). The deployer (this contract) is ACL admin and pool
///         admin.
abstract contract AaveV3Market is Cheats {
    AaveCheats internal constant avm = AaveCheats(address(uint160(uint256(keccak256("hevm cheat code")))));

    string internal constant ARTIFACTS = "lib/@aave/core-v3/artifacts/contracts/";
    string internal constant LOGIC = "protocol/libraries/logic/";

    uint256 internal constant WETH_PRICE = 2_000e8;
    uint256 internal constant USDC_PRICE = 1e8;
    uint256 internal constant WETH_LTV = 8_000;
    uint256 internal constant WETH_THRESHOLD = 8_250;
    uint256 internal constant WETH_BONUS = 10_500;

    IAddressesProviderAdmin internal provider;
    IACLManagerAdmin internal acl;
    IPoolUser internal pool;
    IPoolConfiguratorAdmin internal configurator;
    IAaveOracleAdmin internal oracle;
    address internal weth;
    address internal usdc;
    address internal wethFeed;
    address internal usdcFeed;
    address internal treasury = address(0x7EA5);
    /// @notice Gas of the whole market's deployment: every creation and admin call, less what
    ///         reading and linking the artifacts cost here (cheatcodes and string work, which
    ///         no real deployment pays).
    uint256 internal marketDeployGas;
    /// @notice Gas of the contract creations alone.
    uint256 internal marketCreateGas;
    uint256 private _artifactGas;
    /// @notice Every contract deployed from an artifact (proxies are created by the provider).
    address[] internal deployed;

    /// @notice Deploys the market with `usdc_` as its USDC reserve.
    function deployMarket(address usdc_) internal {
        uint256 gas0 = gasleft();
        usdc = usdc_;
        provider = IAddressesProviderAdmin(
            deploy(
                "protocol/configuration/PoolAddressesProvider.sol/PoolAddressesProvider.json",
                abi.encode("Backstop", address(this))
            )
        );
        provider.setACLAdmin(address(this));
        acl = IACLManagerAdmin(deploy("protocol/configuration/ACLManager.sol/ACLManager.json", abi.encode(provider)));
        provider.setACLManager(address(acl));
        acl.addPoolAdmin(address(this));

        // Libraries: the Pool links seven, FlashLoanLogic links BorrowLogic, the configurator one.
        string[8] memory names = [
            "SupplyLogic",
            "BorrowLogic",
            "LiquidationLogic",
            "EModeLogic",
            "BridgeLogic",
            "PoolLogic",
            "FlashLoanLogic",
            "ConfiguratorLogic"
        ];
        address[] memory libs = new address[](8);
        for (uint256 i = 0; i < 8; ++i) {
            libs[i] = deployLinked(libPath(names[i]), "", toDyn(names), libs, i);
        }
        address poolImpl = deployLinked("protocol/pool/Pool.sol/Pool.json", abi.encode(provider), toDyn(names), libs, 8);
        provider.setPoolImpl(poolImpl);
        pool = IPoolUser(provider.getPool());
        address configuratorImpl =
            deployLinked("protocol/pool/PoolConfigurator.sol/PoolConfigurator.json", "", toDyn(names), libs, 8);
        provider.setPoolConfiguratorImpl(configuratorImpl);
        configurator = IPoolConfiguratorAdmin(provider.getPoolConfigurator());

        weth =
            deploy("mocks/tokens/MintableERC20.sol/MintableERC20.json", abi.encode("Wrapped Ether", "WETH", uint8(18)));
        wethFeed = newFeed(int256(WETH_PRICE));
        usdcFeed = newFeed(int256(USDC_PRICE));
        address[] memory assets = new address[](2);
        address[] memory sources = new address[](2);
        (assets[0], assets[1], sources[0], sources[1]) = (weth, usdc, wethFeed, usdcFeed);
        oracle = IAaveOracleAdmin(
            deploy(
                "misc/AaveOracle.sol/AaveOracle.json",
                abi.encode(provider, assets, sources, address(0), address(0), uint256(1e8))
            )
        );
        provider.setPriceOracle(address(oracle));

        address aTokenImpl = deploy("protocol/tokenization/AToken.sol/AToken.json", abi.encode(pool));
        address stableImpl = deploy("protocol/tokenization/StableDebtToken.sol/StableDebtToken.json", abi.encode(pool));
        address variableImpl =
            deploy("protocol/tokenization/VariableDebtToken.sol/VariableDebtToken.json", abi.encode(pool));
        address strategy = deploy(
            "protocol/pool/DefaultReserveInterestRateStrategy.sol/DefaultReserveInterestRateStrategy.json",
            abi.encode(provider, 0.8e27, 0, 0.04e27, 0.75e27, 0.02e27, 0.75e27, 0.02e27, 0.05e27, 0.2e27)
        );
        InitReserveInput[] memory inputs = new InitReserveInput[](2);
        inputs[0] = reserveInput(aTokenImpl, stableImpl, variableImpl, strategy, weth, 18, "WETH");
        inputs[1] = reserveInput(aTokenImpl, stableImpl, variableImpl, strategy, usdc, 6, "USDC");
        configurator.initReserves(inputs);
        configurator.configureReserveAsCollateral(weth, WETH_LTV, WETH_THRESHOLD, WETH_BONUS);
        configurator.setReserveBorrowing(usdc, true);
        marketDeployGas = gas0 - gasleft() - _artifactGas;
    }

    /// @notice Marks every account of the market (and `extra`) cold, storage and address, so
    ///         that a measured call pays what a fresh `eth_call` pays.
    function coolMarket(address[] memory extra) internal {
        for (uint256 i = 0; i < deployed.length; ++i) {
            avm.cool(deployed[i]);
        }
        address[] memory reserves = new address[](2);
        (reserves[0], reserves[1]) = (weth, usdc);
        for (uint256 i = 0; i < 2; ++i) {
            ReserveDataLite memory r = pool.getReserveData(reserves[i]);
            avm.cool(r.aTokenAddress);
            avm.cool(r.stableDebtTokenAddress);
            avm.cool(r.variableDebtTokenAddress);
            avm.cool(reserves[i]);
        }
        avm.cool(address(pool));
        avm.cool(address(configurator));
        for (uint256 i = 0; i < extra.length; ++i) {
            avm.cool(extra[i]);
        }
    }

    /// @notice A Chainlink-style feed answering `answer` (8 decimals), Aave's `MockAggregator`.
    function newFeed(int256 answer) internal returns (address) {
        return deploy("mocks/oracle/CLAggregators/MockAggregator.sol/MockAggregator.json", abi.encode(answer));
    }

    /// @notice Points the Aave oracle's source for `asset` at a new feed answering `answer`
    ///         (the pool admin's `setAssetSources`; Aave's mock feeds have no setter).
    function setPrice(address asset, int256 answer) internal returns (address feed) {
        feed = newFeed(answer);
        address[] memory assets = new address[](1);
        address[] memory sources = new address[](1);
        (assets[0], sources[0]) = (asset, feed);
        oracle.setAssetSources(assets, sources);
    }

    function reserveInput(
        address aTokenImpl,
        address stableImpl,
        address variableImpl,
        address strategy,
        address asset,
        uint8 decimals,
        string memory symbol
    ) private view returns (InitReserveInput memory) {
        return InitReserveInput({
            aTokenImpl: aTokenImpl,
            stableDebtTokenImpl: stableImpl,
            variableDebtTokenImpl: variableImpl,
            underlyingAssetDecimals: decimals,
            interestRateStrategyAddress: strategy,
            underlyingAsset: asset,
            treasury: treasury,
            incentivesController: address(0),
            aTokenName: string.concat("Aave ", symbol),
            aTokenSymbol: string.concat("a", symbol),
            variableDebtTokenName: string.concat("Aave variable debt ", symbol),
            variableDebtTokenSymbol: string.concat("variableDebt", symbol),
            stableDebtTokenName: string.concat("Aave stable debt ", symbol),
            stableDebtTokenSymbol: string.concat("stableDebt", symbol),
            params: ""
        });
    }

    function libPath(string memory name) private pure returns (string memory) {
        return string.concat(LOGIC, name, ".sol/", name, ".json");
    }

    function toDyn(string[8] memory a) private pure returns (string[] memory out) {
        out = new string[](8);
        for (uint256 i = 0; i < 8; ++i) {
            out[i] = a[i];
        }
    }

    /// @notice Deploys the artifact at `path` (under `ARTIFACTS`), which links no library.
    function deploy(string memory path, bytes memory args) internal returns (address) {
        return deployLinked(path, args, new string[](0), new address[](0), 0);
    }

    /// @notice Deploys the artifact at `path` with the first `known` libraries of `names` linked
    ///         at `addrs`: each placeholder is replaced, and any placeholder left (a library
    ///         not yet deployed) fails the deployment. The link references name the libraries
    ///         by source file; each is checked to be one of `names`.
    function deployLinked(
        string memory path,
        bytes memory args,
        string[] memory names,
        address[] memory addrs,
        uint256 known
    ) internal returns (address a) {
        uint256 gas0 = gasleft();
        string memory json = avm.readFile(string.concat(ARTIFACTS, path));
        string memory code = avm.parseJsonString(json, ".bytecode");
        string[] memory sources = avm.parseJsonKeys(json, ".linkReferences");
        for (uint256 s = 0; s < sources.length; ++s) {
            require(
                avm.indexOf(sources[s], string.concat("contracts/", LOGIC)) == 0,
                string.concat("unexpected library source ", sources[s])
            );
        }
        for (uint256 i = 0; i < known; ++i) {
            string memory fqn = string.concat("contracts/", LOGIC, names[i], ".sol:", names[i]);
            string memory hash = avm.toString(keccak256(bytes(fqn)));
            string memory placeholder = string.concat("__$", substring(hash, 2, 36), "$__");
            string memory target = substring(avm.toString(addrs[i]), 2, 42);
            code = avm.replace(code, placeholder, target);
        }
        require(avm.indexOf(code, "__$") == type(uint256).max, string.concat("unlinked library in ", path));
        bytes memory initcode = bytes.concat(avm.parseBytes(code), args);
        uint256 gas1 = gasleft();
        _artifactGas += gas0 - gas1;
        assembly ("memory-safe") {
            a := create(0, add(initcode, 0x20), mload(initcode))
        }
        marketCreateGas += gas1 - gasleft();
        uint256 gas2 = gasleft();
        deployed.push(a); // bookkeeping of the fixture, not of the deployment
        _artifactGas += gas2 - gasleft();
        require(a != address(0), string.concat("deployment failed: ", path));
    }

    function substring(string memory s, uint256 from, uint256 to) private pure returns (string memory) {
        bytes memory b = bytes(s);
        bytes memory out = new bytes(to - from);
        for (uint256 i = from; i < to; ++i) {
            out[i - from] = b[i];
        }
        return string(out);
    }
}
