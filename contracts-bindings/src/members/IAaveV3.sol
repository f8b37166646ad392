// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title The parts of Aave v3.0 (`@aave/core-v3` 1.19.x) the Aave member adapter reads
/// @notice Declared here rather than imported so that the Backstop contracts build without
///         Aave's sources; signatures and struct layouts match `IPool`, `IAaveOracle`,
///         `IPoolAddressesProvider` and `DataTypes` of that release.
interface IAaveV3Pool {
    /// @notice `DataTypes.ReserveConfigurationMap`: bits 0-15 LTV, 16-31 liquidation
    ///         threshold, 32-47 liquidation bonus (basis points, 10000 + bonus), 48-55
    ///         decimals, 56 active (see Aave's `ReserveConfiguration`).
    struct ReserveConfigurationMap {
        uint256 data;
    }

    /// @notice `DataTypes.ReserveData` of Aave v3.0.
    struct ReserveData {
        ReserveConfigurationMap configuration;
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

    /// @notice `DataTypes.EModeCategory`.
    struct EModeCategory {
        uint16 ltv;
        uint16 liquidationThreshold;
        uint16 liquidationBonus;
        address priceSource;
        string label;
    }

    function getUserAccountData(address user)
        external
        view
        returns (
            uint256 totalCollateralBase,
            uint256 totalDebtBase,
            uint256 availableBorrowsBase,
            uint256 currentLiquidationThreshold,
            uint256 ltv,
            uint256 healthFactor
        );

    function getReservesList() external view returns (address[] memory);

    function getConfiguration(address asset) external view returns (ReserveConfigurationMap memory);

    function getReserveData(address asset) external view returns (ReserveData memory);

    function getUserEMode(address user) external view returns (uint256);

    function getEModeCategoryData(uint8 id) external view returns (EModeCategory memory);

    function repay(address asset, uint256 amount, uint256 interestRateMode, address onBehalfOf)
        external
        returns (uint256);

    function ADDRESSES_PROVIDER() external view returns (IAaveV3AddressesProvider);
}

/// @notice `IPoolAddressesProvider` (the part read here).
interface IAaveV3AddressesProvider {
    function getPriceOracle() external view returns (address);
}

/// @notice `IAaveOracle` (the part read here): prices in the base currency, `BASE_CURRENCY_UNIT`
///         per unit of base currency (1e8 for USD).
interface IAaveV3Oracle {
    function getAssetPrice(address asset) external view returns (uint256);

    function BASE_CURRENCY_UNIT() external view returns (uint256);
}
