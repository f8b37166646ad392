// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IBackstopVault} from "../../src/IBackstopVault.sol";
import {AaveV3Member} from "../../src/members/AaveV3Member.sol";

/// @notice A hostile Aave pool (and its own oracle, addresses provider and debt token) for the
///         reentrancy test: one account without collateral owes 100 units of the pool token,
///         and when the adapter repays it, `repay` calls back into every entry point of the
///         adapter and records which of them got through.
contract AaveV3HostilePool {
    AaveV3Member public adapter;
    address public immutable TOKEN;
    address public immutable VICTIM;
    /// @notice Reentrant calls that did not revert (must stay 0).
    uint256 public reentered;
    /// @notice Reentrant calls refused by the guard (`ReentrancyGuardReentrantCall` or
    ///         `ReentrantRead`).
    uint256 public refused;
    /// @notice Reentrant calls that reverted for another reason (must stay 0).
    uint256 public otherFailures;
    /// @notice Whether `repay` was called at all.
    bool public repayCalled;

    bytes4 private constant GUARD = bytes4(keccak256("ReentrancyGuardReentrantCall()"));

    struct Reserve {
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

    constructor(address token, address victim) {
        TOKEN = token;
        VICTIM = victim;
    }

    function setAdapter(AaveV3Member a) external {
        adapter = a;
    }

    // --- pool views
    function getReserveData(address) external view returns (Reserve memory r) {
        r.configuration = (uint256(6) << 48) | (uint256(10_500) << 32) | (uint256(8_250) << 16);
        r.aTokenAddress = address(this);
        r.variableDebtTokenAddress = address(this);
        r.stableDebtTokenAddress = address(0);
    }

    function getReservesList() external view returns (address[] memory list) {
        list = new address[](1);
        list[0] = TOKEN;
    }

    function getConfiguration(address) external pure returns (uint256) {
        return (uint256(6) << 48) | (uint256(10_500) << 32) | (uint256(8_250) << 16);
    }

    function getUserAccountData(address user)
        external
        view
        returns (uint256, uint256, uint256, uint256, uint256, uint256)
    {
        if (user != VICTIM) return (0, 0, 0, 0, 0, type(uint256).max);
        return (0, 100 * 100, 0, 0, 0, 0);
    }

    function getUserEMode(address) external pure returns (uint256) {
        return 0;
    }

    function ADDRESSES_PROVIDER() external view returns (address) {
        return address(this);
    }

    function getPriceOracle() external view returns (address) {
        return address(this);
    }

    function getAssetPrice(address) external pure returns (uint256) {
        return 1e8;
    }

    /// @notice As the variable debt token: the victim owes 100 units.
    function balanceOf(address user) external view returns (uint256) {
        return user == VICTIM ? 100 : 0;
    }

    // --- the hostile part
    function repay(address, uint256 amount, uint256, address) external returns (uint256) {
        repayCalled = true;
        IBackstopVault.Draw memory d;
        d.member = adapter.MEMBER_ID();
        _try(abi.encodeCall(AaveV3Member.settle, ()));
        _try(abi.encodeCall(AaveV3Member.track, (address(0xBAD))));
        _try(abi.encodeCall(AaveV3Member.untrack, (VICTIM)));
        _try(abi.encodeCall(AaveV3Member.replace, (VICTIM, address(0xBAD))));
        _try(abi.encodeCall(AaveV3Member.bookDraw, (d)));
        _try(abi.encodeCall(AaveV3Member.bringHome, (d, 0)));
        _try(abi.encodeCall(AaveV3Member.solvency, ()));
        _try(abi.encodeCall(AaveV3Member.measure, ()));
        return amount;
    }

    function _try(bytes memory call) private {
        (bool ok, bytes memory ret) = address(adapter).call(call);
        if (ok) {
            ++reentered;
            return;
        }
        bytes4 selector = ret.length >= 4 ? bytes4(ret) : bytes4(0);
        if (selector == GUARD || selector == AaveV3Member.ReentrantRead.selector) ++refused;
        else ++otherFailures;
    }
}
