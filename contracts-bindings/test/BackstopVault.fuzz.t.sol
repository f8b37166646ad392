// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BackstopVault} from "../src/BackstopVault.sol";
import {IBackstopVault} from "../src/IBackstopVault.sol";
import {MockToken} from "../src/fixtures/MockToken.sol";
import {BaseTest} from "./utils/BaseTest.sol";
import {Signers} from "./utils/Signers.sol";
import {VaultFixture} from "./utils/VaultFixture.sol";

/// @notice Fuzz tests of payouts and depositor round trips against reference models.
contract BackstopVaultFuzzTest is VaultFixture {
    function min(uint256 a, uint256 b) internal pure returns (uint256) {
        return a < b ? a : b;
    }

    /// @dev Leg amount in [1, max], or 0 (leg left out) for one seed in four.
    function legAmount(uint256 seed, uint256 max) internal pure returns (uint256) {
        return seed % 4 == 0 ? 0 : bound(seed >> 2, 1, max);
    }

    /// @notice registerDraw succeeds exactly when the draw is within gap - deductible, the cap,
    ///         the bucket and the reserve floor, and then pays exactly the home leg.
    function testFuzz_registerDraw_outcomeMatchesModel(
        uint256 gap,
        uint256 remoteSeed,
        uint256 homeSeed,
        uint256 thirdSeed,
        uint256 capacity,
        uint256 floor
    ) public {
        gap = bound(gap, 0, 1_000_000e6);
        capacity = bound(capacity, 0, 2 * uint256(BUCKET_CAPACITY));
        floor = bound(floor, 0, LIQUIDITY);
        IBackstopVault.Limits memory l = defaultLimits();
        l.bucketCapacity = uint128(capacity);
        l.reserveFloor = floor;
        changeLimits(home, l);

        uint256 remoteAmount = legAmount(remoteSeed, 300_000e6);
        uint256 homeAmount = legAmount(homeSeed, 300_000e6);
        uint256 thirdAmount = legAmount(thirdSeed, 300_000e6);
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 0, gap, remoteAmount, homeAmount);
        if (thirdAmount > 0) {
            IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](d.legs.length + 1);
            for (uint256 i = 0; i < d.legs.length; ++i) {
                legs[i] = d.legs[i];
            }
            legs[d.legs.length] =
                IBackstopVault.Leg({chainId: THIRD_CHAIN, vault: address(0xC0FFEE), amount: thirdAmount});
            d.legs = legs;
            d.amount += thirdAmount;
        }
        bytes memory blob = sigs(home.hashDraw(d), T);

        uint256 coverable = gap > DEDUCTIBLE ? gap - DEDUCTIBLE : 0;
        uint256 bucket = min(BUCKET_CAPACITY, capacity); // the level is capped by the new capacity
        bytes memory expected;
        if (d.amount > coverable) {
            expected = abi.encodeWithSelector(IBackstopVault.DrawExceedsGap.selector, d.amount, coverable);
        } else if (d.amount > CAP) {
            expected = abi.encodeWithSelector(IBackstopVault.DrawExceedsCap.selector, d.amount, CAP);
        } else if (homeAmount > bucket) {
            expected = abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, homeAmount, bucket);
        } else if (homeAmount > 0 && LIQUIDITY - homeAmount < floor) {
            expected = abi.encodeWithSelector(IBackstopVault.ReserveHit.selector, homeAmount, LIQUIDITY, floor);
        }

        if (expected.length > 0) {
            vm.expectRevert(expected);
            home.registerDraw(d, blob);
            assertEq(home.nextSeq(MEMBER), 0);
            assertEq(homeToken.balanceOf(address(home)), LIQUIDITY);
        } else {
            bytes32 drawHash = home.registerDraw(d, blob);
            assertEq(home.drawOf(MEMBER, 0), drawHash);
            assertEq(home.nextSeq(MEMBER), 1);
            assertEq(homeToken.balanceOf(recipient), homeAmount, "paid exactly the home leg");
            assertEq(homeToken.balanceOf(address(home)), LIQUIDITY - homeAmount);
            assertEq(home.bucketAvailable(), bucket - homeAmount);
        }
    }

    /// @notice releaseLeg pays a leg within cap, bucket and reserve exactly once.
    function testFuzz_releaseLeg_paysOnceWithinLimits(uint256 amount, uint256 capacity, uint256 floor) public {
        amount = bound(amount, 0, uint256(CAP) + 1);
        capacity = bound(capacity, 0, uint256(CAP));
        floor = bound(floor, 0, LIQUIDITY);
        vm.chainId(REMOTE_CHAIN);
        IBackstopVault.Limits memory l = defaultLimits();
        l.bucketCapacity = uint128(capacity);
        l.reserveFloor = floor;
        changeLimits(remote, l);

        // The remote vault cannot see the home chain: it trusts the guardians' release.
        IBackstopVault.LegRelease memory rel = legRelease(keccak256("registered draw"), 0, amount, deadlineIn(1 days));
        bytes memory blob = sigs(remote.hashLegRelease(rel), T);

        bytes memory expected;
        if (amount == 0) {
            expected = abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector);
        } else if (amount > CAP) {
            expected = abi.encodeWithSelector(IBackstopVault.DrawExceedsCap.selector, amount, CAP);
        } else if (amount > capacity) {
            expected = abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, amount, capacity);
        } else if (LIQUIDITY - amount < floor) {
            expected = abi.encodeWithSelector(IBackstopVault.ReserveHit.selector, amount, LIQUIDITY, floor);
        }
        if (expected.length > 0) {
            vm.expectRevert(expected);
            remote.releaseLeg(rel, blob);
            assertEq(remote.drawOf(MEMBER, 0), bytes32(0));
            return;
        }
        remote.releaseLeg(rel, blob);
        assertEq(remoteToken.balanceOf(recipient), amount);
        assertEq(remote.drawOf(MEMBER, 0), rel.drawHash);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.LegAlreadyPaid.selector, MEMBER, 0, rel.drawHash));
        remote.releaseLeg(rel, blob);
    }

    /// @notice The outflow bucket follows `min(capacity, level + refill * elapsed)` across payouts,
    ///         and refuses one unit more than it holds.
    function testFuzz_bucket_refillMatchesModel(
        uint256 capacity,
        uint256 refill,
        uint256[4] calldata amounts,
        uint256[4] calldata waits
    ) public {
        capacity = bound(capacity, 1, BUCKET_CAPACITY);
        refill = bound(refill, 0, 1_000e6);
        changeLimits(
            home,
            IBackstopVault.Limits({
                bucketCapacity: uint128(capacity),
                refillPerSecond: uint128(refill),
                reserveFloor: 0,
                withdrawCooldown: COOLDOWN,
                emergencyDuration: EMERGENCY_DURATION
            })
        );
        uint256 level = capacity; // the full default bucket, capped by the new capacity

        for (uint256 i = 0; i < 4; ++i) {
            uint256 elapsed = bound(waits[i], 0, 1 days);
            vm.warp(block.timestamp + elapsed);
            uint256 available = min(capacity, level + refill * elapsed);
            assertEq(home.bucketAvailable(), available, "bucket vs model");

            uint256 balance = homeToken.balanceOf(address(home));
            uint64 seq = home.nextSeq(MEMBER);
            if (available < CAP && available < balance) {
                IBackstopVault.Draw memory over = twoLegDraw(home, remote, seq, 10 * uint256(CAP), 0, available + 1);
                bytes memory overSigs = sigs(home.hashDraw(over), T);
                vm.expectRevert(abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, available + 1, available));
                home.registerDraw(over, overSigs);
            }

            uint256 amount = bound(amounts[i], 0, min(min(available, CAP), balance));
            if (amount > 0) register(twoLegDraw(home, remote, seq, 10 * uint256(CAP), 0, amount));
            level = available - amount;
            assertEq(home.bucketAvailable(), level, "bucket after payout");
        }
    }

    /// @notice A depositor who deposits, requests and redeems never gets back more than deposited,
    ///         whatever the share price was before (a donation) or became after (a payout).
    function testFuzz_depositRedeem_roundTripNeverProfits(uint256 assets, uint256 donation, uint256 payout) public {
        assets = bound(assets, 1, 1e15 * 1e6);
        donation = donation % 2 == 0 ? 0 : bound(donation >> 1, 1, 10 * LIQUIDITY);
        payout = payout % 2 == 0 ? 0 : bound(payout >> 1, 1, CAP);
        if (donation > 0) homeToken.mint(address(home), donation);
        // Price per share before the deposit, rounded up: the most a deposit can lose to rounding.
        uint256 pricePerShare = (home.totalAssets() + home.totalSupply()) / (home.totalSupply() + 1) + 1;

        address depositor = makeAddr("depositor");
        uint256 shares = depositFor(home, depositor, assets);
        if (payout > 0) register(twoLegDraw(home, remote, 0, 10 * uint256(CAP), 0, payout));

        vm.startPrank(depositor);
        if (shares > 0) {
            home.requestRedeem(shares);
            vm.warp(block.timestamp + COOLDOWN);
            home.redeem(shares, depositor, depositor);
        }
        vm.stopPrank();
        uint256 received = homeToken.balanceOf(depositor);

        assertLe(received, assets, "never more than deposited");
        if (payout == 0) assertGe(received + pricePerShare, assets, "rounding loss within one share");
        if (payout == 0 && donation == 0) assertEq(received, assets, "exact at par");
        assertEq(home.balanceOf(depositor), 0);
        assertEq(home.balanceOf(address(home)), 0, "no escrow left");
    }

    /// @notice Withdrawing by assets also never returns more than deposited.
    function testFuzz_depositWithdraw_roundTripNeverProfits(uint256 assets, uint256 payout) public {
        assets = bound(assets, 1, 1e15 * 1e6);
        payout = bound(payout, 0, CAP);
        address depositor = makeAddr("depositor");
        uint256 shares = depositFor(home, depositor, assets);
        if (payout > 0) register(twoLegDraw(home, remote, 0, 10 * uint256(CAP), 0, payout));

        vm.startPrank(depositor);
        home.requestRedeem(shares);
        vm.warp(block.timestamp + COOLDOWN);
        uint256 maxAssets = home.maxWithdraw(depositor);
        if (maxAssets > 0) home.withdraw(maxAssets, depositor, depositor);
        vm.stopPrank();

        assertEq(homeToken.balanceOf(depositor), maxAssets);
        assertLe(maxAssets, assets);
        // Whatever dust of shares is left stays escrowed for the depositor.
        assertEq(home.balanceOf(address(home)), home.redeemRequest(depositor).shares);
    }

    /// @notice Emergency states expire exactly `emergencyDuration` after they are raised.
    function testFuzz_pause_expiresAfterDuration(uint256 duration, uint256 elapsed) public {
        duration = bound(duration, 1, 365 days);
        elapsed = bound(elapsed, 0, 2 * duration);
        IBackstopVault.Limits memory l = defaultLimits();
        l.emergencyDuration = uint64(duration);
        changeLimits(home, l);
        pauseVault(home);
        freeze(home, MEMBER);
        vm.warp(block.timestamp + elapsed);
        assertEq(home.paused(), elapsed < duration);
        assertEq(home.isFrozen(MEMBER), elapsed < duration);
    }
}

/// @notice Fuzz tests of signature subsets over a 10-guardian vault (t = 7, p = 4).
contract BackstopVaultSignatureFuzzTest is BaseTest, Signers {
    uint256 internal constant N = 10;
    uint256 internal constant T = 7;
    uint256 internal constant P = 4;

    BackstopVault internal vault;
    uint256[] internal keys;
    address[] internal guardians;

    function setUp() public {
        keys = keySet(1, N);
        guardians = addressesOf(keys);
        MockToken token = new MockToken("Pool USD", "pUSD");
        vault = new BackstopVault(
            IERC20(address(token)),
            "Backstop",
            "bSTOP",
            guardians,
            uint8(T),
            uint8(P),
            IBackstopVault.Limits({
                bucketCapacity: 0, refillPerSecond: 0, reserveFloor: 0, withdrawCooldown: 0, emergencyDuration: 1 days
            })
        );
    }

    function popcount(uint256 mask) internal pure returns (uint256 count) {
        for (; mask != 0; mask &= mask - 1) {
            ++count;
        }
    }

    function raiseAction(uint256 salt) internal view returns (IBackstopVault.RaiseAlert memory) {
        return IBackstopVault.RaiseAlert({
            subject: keccak256("subject"),
            level: 1,
            id: keccak256(abi.encode(salt)),
            deadline: uint64(block.timestamp + 1 hours)
        });
    }

    /// @notice Any ascending subset of at least t guardians lifts; any smaller one is refused.
    function testFuzz_signatures_thresholdSubsets(uint256 mask) public {
        mask = bound(mask, 0, (1 << N) - 1);
        uint256 count = popcount(mask);
        IBackstopVault.ClearAlert memory a =
            IBackstopVault.ClearAlert({subject: keccak256("subject"), id: bytes32(mask), deadline: 1 days});
        bytes memory blob = signatures(subset(keys, mask), vault.hashClearAlert(a));
        if (count < T) {
            vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, count, T));
            vault.clearAlert(a, blob);
            assertFalse(vault.actionUsed(a.id));
        } else {
            vault.clearAlert(a, blob);
            assertTrue(vault.actionUsed(a.id));
        }
    }

    /// @notice Any ascending subset of at least p guardians raises an alert; any smaller one is refused.
    function testFuzz_signatures_pauseThresholdSubsets(uint256 mask) public {
        mask = bound(mask, 0, (1 << N) - 1);
        uint256 count = popcount(mask);
        IBackstopVault.RaiseAlert memory a = raiseAction(mask);
        bytes memory blob = signatures(subset(keys, mask), vault.hashRaiseAlert(a));
        if (count < P) {
            vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, count, P));
            vault.raiseAlert(a, blob);
            assertEq(vault.alertLevel(a.subject), 0);
        } else {
            vault.raiseAlert(a, blob);
            assertEq(vault.alertLevel(a.subject), 1);
        }
    }

    /// @notice Swapping two adjacent signers of a valid blob breaks the ascending order.
    function testFuzz_signatures_swappedPairRefused(uint256 mask, uint256 position) public {
        uint256[] memory signers = subset(keys, bound(mask, 0, (1 << N) - 1) | 0xF); // at least p
        position = bound(position, 0, signers.length - 2);
        (signers[position], signers[position + 1]) = (signers[position + 1], signers[position]);
        IBackstopVault.RaiseAlert memory a = raiseAction(mask);
        bytes memory blob = signatures(signers, vault.hashRaiseAlert(a));
        vm.expectRevert(
            abi.encodeWithSelector(
                IBackstopVault.SignersNotAscending.selector,
                vmx.addr(signers[position]),
                vmx.addr(signers[position + 1])
            )
        );
        vault.raiseAlert(a, blob);
    }

    /// @notice Repeating a signer anywhere in a valid blob is refused as a duplicate.
    function testFuzz_signatures_repeatedSignerRefused(uint256 mask, uint256 position) public {
        uint256[] memory signers = subset(keys, bound(mask, 0, (1 << N) - 1) | 0xF);
        position = bound(position, 0, signers.length - 2);
        signers[position + 1] = signers[position];
        IBackstopVault.RaiseAlert memory a = raiseAction(mask);
        bytes memory blob = signatures(signers, vault.hashRaiseAlert(a));
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.DuplicateSigner.selector, vmx.addr(signers[position])));
        vault.raiseAlert(a, blob);
    }
}
