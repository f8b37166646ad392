// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {console2} from "forge-std/console2.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BackstopVault} from "../src/BackstopVault.sol";
import {IBackstopVault} from "../src/IBackstopVault.sol";
import {MockToken} from "../src/fixtures/MockToken.sol";
import {BaseTest} from "./utils/BaseTest.sol";
import {VaultHelpers} from "./utils/VaultFixture.sol";

/// @notice Gas of the payout paths by number of signatures. Every scenario has its own vault,
///         token and (empty) recipient, so each measured call starts from cold storage, even
///         when several are measured in one test; the recipient's first token balance makes
///         these the expensive case. The budgets are execution gas as `gasleft()` sees it around
///         the call (no intrinsic transaction cost): the contract runs without isolation even
///         under `--gas-report`, which would otherwise add the 21k base and calldata cost.
/// forge-config: default.isolate = false
contract BackstopVaultGasTest is BaseTest, VaultHelpers {
    /// @dev Was 100,000 (measured 99,527) before the per-member coverage window, which costs
    ///      releaseLeg two cold storage reads and one nonzero-to-nonzero store more (the member's
    ///      slot holding `coverageLimit` and its `CoverageUse` record: 2 x 2,100 + 2,900 = 7,100
    ///      gas by EVM pricing, plus its arithmetic; `setMember` makes the record's slot nonzero,
    ///      so no payout pays a zero-to-nonzero store for it). Savings elsewhere in the path (the
    ///      ecrecover precompile called directly, about 220 gas per signature; the recipient read
    ///      once; one `drawOf` lookup; the record read and written as one word) pay for the
    ///      arithmetic: measured 106,687, rounded up to the next 1,000.
    uint256 internal constant RELEASE_BUDGET_3_OF_4 = 107_000;
    uint256 internal constant PER_SIGNATURE_BUDGET = 7_000;
    uint256 internal constant REGISTER_BUDGET_3_OF_4 = 160_000;
    uint256 internal constant PAYOUT = 100_000e6;
    /// @dev Home chain of the member on the release vaults: any chain but this one.
    uint64 internal constant MEMBER_HOME = 1;

    struct Release {
        BackstopVault vault;
        address recipient;
        IBackstopVault.LegRelease leg;
        bytes signatures;
    }

    /// @dev Release scenarios by `n * 100 + k`: k signatures of a set of n guardians.
    mapping(uint256 key => Release) internal releases;

    BackstopVault internal homeVault;
    IBackstopVault.Draw internal draw;
    bytes internal drawSignatures;

    function setUp() public {
        vm.warp(START_TIME);
        addSet(4, 3, 2);
        addSet(7, 5, 3);
        addSet(10, 7, 4);

        // A home vault of a 3-of-4 set for registerDraw.
        uint256[] memory keys = keySet(1, 4);
        homeVault = deployVault(keys, 3, 2);
        registerMember(homeVault, keys, 3, MEMBER, address(uint160(uint256(keccak256("home recipient")))), HOME_CHAIN);
        IBackstopVault.Draw memory d =
            twoLegDraw(homeVault, BackstopVault(address(0xBEEF)), 0, 400_000e6, 100_000e6, 200_000e6);
        drawSignatures = signatures(keys, 3, homeVault.hashDraw(d));
        draw.member = d.member;
        draw.seq = d.seq;
        draw.gap = d.gap;
        draw.amount = d.amount;
        draw.deadline = d.deadline;
        draw.legDeadline = d.legDeadline;
        for (uint256 i = 0; i < d.legs.length; ++i) {
            draw.legs.push(d.legs[i]);
        }
    }

    /// @dev One release vault per signature count k in [t, n].
    function addSet(uint256 n, uint8 t, uint8 p) internal {
        uint256[] memory keys = keySet(1, n);
        for (uint256 k = t; k <= n; ++k) {
            BackstopVault v = deployVault(keys, t, p);
            address payee = address(uint160(uint256(keccak256(abi.encode("recipient", n, k)))));
            registerMember(v, keys, t, MEMBER, payee, MEMBER_HOME);
            IBackstopVault.LegRelease memory leg =
                legRelease(keccak256(abi.encode("draw", n, k)), 0, PAYOUT, deadlineIn(1 days));
            Release storage r = releases[n * 100 + k];
            r.vault = v;
            r.recipient = payee;
            r.leg = leg;
            r.signatures = signatures(keys, k, v.hashLegRelease(leg));
        }
    }

    function deployVault(uint256[] memory keys, uint8 t, uint8 p) internal returns (BackstopVault v) {
        MockToken token = new MockToken("Pool USD", "pUSD");
        v = new BackstopVault(IERC20(address(token)), "Backstop", "bSTOP", addressesOf(keys), t, p, defaultLimits());
        depositFor(v, address(uint160(uint256(keccak256("lp")))), LIQUIDITY);
    }

    /// @dev Gas of one releaseLeg call, measured around the external call.
    function measureRelease(uint256 n, uint256 k) internal returns (uint256 used) {
        Release storage r = releases[n * 100 + k];
        BackstopVault v = r.vault;
        IBackstopVault.LegRelease memory leg = r.leg;
        bytes memory blob = r.signatures;
        uint256 before = gasleft();
        v.releaseLeg(leg, blob);
        used = before - gasleft();
        assertEq(IERC20(v.asset()).balanceOf(r.recipient), PAYOUT, "leg paid");
        console2.log("releaseLeg %d-of-%d signatures: gas %d", k, n, used);
    }

    function test_gas_releaseLeg_3of4() public {
        assertLe(measureRelease(4, 3), RELEASE_BUDGET_3_OF_4);
    }

    function test_gas_releaseLeg_4of4() public {
        assertLe(measureRelease(4, 4), RELEASE_BUDGET_3_OF_4 + PER_SIGNATURE_BUDGET);
    }

    function test_gas_releaseLeg_5of7() public {
        assertLe(measureRelease(7, 5), RELEASE_BUDGET_3_OF_4 + 2 * PER_SIGNATURE_BUDGET);
    }

    function test_gas_releaseLeg_7of7() public {
        assertLe(measureRelease(7, 7), RELEASE_BUDGET_3_OF_4 + 4 * PER_SIGNATURE_BUDGET);
    }

    function test_gas_releaseLeg_7of10() public {
        assertLe(measureRelease(10, 7), RELEASE_BUDGET_3_OF_4 + 4 * PER_SIGNATURE_BUDGET);
    }

    function test_gas_releaseLeg_10of10() public {
        assertLe(measureRelease(10, 10), RELEASE_BUDGET_3_OF_4 + 7 * PER_SIGNATURE_BUDGET);
    }

    /// @notice Each further signature costs at most `PER_SIGNATURE_BUDGET`, whatever the set size.
    function test_gas_releaseLeg_marginalCostPerSignature() public {
        uint256[3] memory sizes = [uint256(4), 7, 10];
        uint256[3] memory thresholds = [uint256(3), 5, 7];
        uint256 base = measureRelease(4, 3);
        assertLe(base, RELEASE_BUDGET_3_OF_4, "3-of-4");
        for (uint256 s = 0; s < 3; ++s) {
            uint256 previous = s == 0 ? base : measureRelease(sizes[s], thresholds[s]);
            // The set size itself costs nothing: t signatures cost the same from any set.
            assertLe(previous, base + (thresholds[s] - 3) * PER_SIGNATURE_BUDGET, "t-of-n");
            for (uint256 k = thresholds[s] + 1; k <= sizes[s]; ++k) {
                uint256 used = measureRelease(sizes[s], k);
                console2.log("  marginal cost of signature %d: %d", k, used - previous);
                assertLe(used - previous, PER_SIGNATURE_BUDGET, "marginal signature");
                previous = used;
            }
        }
    }

    function test_gas_registerDraw_3of4() public {
        IBackstopVault.Draw memory d = draw;
        bytes memory blob = drawSignatures;
        uint256 before = gasleft();
        homeVault.registerDraw(d, blob);
        uint256 used = before - gasleft();
        console2.log("registerDraw 3-of-4 signatures, 2 legs: gas %d", used);
        assertEq(homeVault.nextSeq(MEMBER), 1);
        assertLe(used, REGISTER_BUDGET_3_OF_4);
    }
}
