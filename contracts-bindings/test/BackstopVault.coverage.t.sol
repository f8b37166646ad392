// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {BackstopVault} from "../src/BackstopVault.sol";
import {IBackstopVault} from "../src/IBackstopVault.sol";
import {VaultFixture} from "./utils/VaultFixture.sol";

/// @notice The per-member rolling coverage window: `coverageLimit` per `coverageWindow` seconds,
///         counted per vault (the home vault counts whole registered draws, a remote vault the
///         legs it pays). The bucket refills at once and the vaults hold plenty of liquidity, so
///         that the coverage window is the only outflow limit these tests meet.
contract BackstopVaultCoverageTest is VaultFixture {
    uint64 internal constant WINDOW = 1 days;
    uint128 internal constant LIMIT = 300_000e6;
    /// @dev A gap whose coverable part is above the cap: draws are bounded by cap and coverage only.
    uint256 internal constant BIG_GAP = 10 * uint256(CAP);

    uint64 private _seq;

    function setUp() public override {
        super.setUp();
        IBackstopVault.Limits memory l = defaultLimits();
        l.refillPerSecond = BUCKET_CAPACITY; // a full bucket every second
        changeLimits(home, l);
        depositFor(home, lp, 100 * LIQUIDITY);
        vm.chainId(REMOTE_CHAIN);
        changeLimits(remote, l);
        depositFor(remote, lp, 100 * LIQUIDITY);
        vm.chainId(HOME_CHAIN);
        setCoverage(home, LIMIT, WINDOW);
        setCoverage(remote, LIMIT, WINDOW);
        // Start at the first second of an epoch, so that tests can name epoch boundaries.
        vm.warp((block.timestamp / WINDOW + 1) * WINDOW);
    }

    // ================================================================ helpers

    /// @dev Sets the member's coverage on `v` (under `v`'s chain id), other parameters as in the fixture.
    function setCoverage(BackstopVault v, uint128 limit, uint64 window) internal {
        uint256 chainBefore = block.chainid;
        vm.chainId(address(v) == address(remote) ? REMOTE_CHAIN : HOME_CHAIN);
        IBackstopVault.SetMember memory a =
            setMemberAction(MEMBER, recipient, HOME_CHAIN, CAP, DEDUCTIBLE, limit, window);
        v.setMember(a, sigs(v.hashSetMember(a), T));
        vm.chainId(chainBefore);
    }

    /// @dev The next draw of the member: `remoteAmount` on the remote vault, `homeAmount` at home.
    function nextDraw(uint256 remoteAmount, uint256 homeAmount) internal view returns (IBackstopVault.Draw memory) {
        return twoLegDraw(home, remote, home.nextSeq(MEMBER), BIG_GAP, remoteAmount, homeAmount);
    }

    /// @dev Registers a draw paying `amount` at home only.
    function drawHome(uint256 amount) internal returns (bytes32) {
        return register(nextDraw(0, amount));
    }

    function expectDrawRefused(IBackstopVault.Draw memory d, uint256 available) internal {
        bytes memory blob = sigs(home.hashDraw(d), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.CoverageExceeded.selector, MEMBER, d.amount, available));
        home.registerDraw(d, blob);
    }

    /// @dev A remote leg of `amount` for a fresh incident (the remote vault trusts the guardians'
    ///      signatures that the draw is registered at home).
    function remoteLeg(uint256 amount) internal returns (IBackstopVault.LegRelease memory) {
        uint64 seq = _seq++;
        return legRelease(keccak256(abi.encode("draw", seq)), seq, amount, deadlineIn(1 hours));
    }

    function expectLegRefused(IBackstopVault.LegRelease memory rel, uint256 available) internal {
        vm.chainId(REMOTE_CHAIN);
        bytes memory blob = sigs(remote.hashLegRelease(rel), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.CoverageExceeded.selector, MEMBER, rel.amount, available));
        remote.releaseLeg(rel, blob);
        vm.chainId(HOME_CHAIN);
    }

    function epochStart(uint256 epochsFromNow) internal view returns (uint256) {
        return (block.timestamp / WINDOW + epochsFromNow) * WINDOW;
    }

    // ================================================================ limits

    function test_coverage_limitZero_refusesEveryPositiveDrawAndLeg() public {
        setCoverage(home, 0, WINDOW);
        setCoverage(remote, 0, WINDOW);
        assertEq(home.coverageAvailable(MEMBER), 0);
        expectDrawRefused(nextDraw(0, 1), 0);
        expectDrawRefused(nextDraw(1, 0), 0);
        expectLegRefused(remoteLeg(1), 0);
        // A draw of nothing (no legs) still registers its seq: it pays nothing.
        IBackstopVault.Draw memory d = nextDraw(0, 0);
        register(d);
        assertEq(home.nextSeq(MEMBER), 1);
        assertEq(homeToken.balanceOf(recipient), 0);
    }

    function test_coverage_limitBelowCap_takesPrecedence() public {
        uint128 limit = CAP / 5;
        setCoverage(home, limit, WINDOW);
        setCoverage(remote, limit, WINDOW);
        // Within the cap but above the coverage limit: refused for coverage, not for the cap.
        expectDrawRefused(nextDraw(0, uint256(limit) + 1), limit);
        expectLegRefused(remoteLeg(uint256(limit) + 1), limit);
        drawHome(limit);
        release(remoteLeg(limit));
        assertEq(homeToken.balanceOf(recipient), limit);
        assertEq(remoteToken.balanceOf(recipient), limit);
    }

    function test_coverage_exactlyAtLimit_thenOneUnitMoreRefused() public {
        drawHome(100_000e6);
        assertEq(home.coverageAvailable(MEMBER), LIMIT - 100_000e6);
        vm.warp(block.timestamp + WINDOW - 1); // last second of the epoch
        drawHome(LIMIT - 100_000e6);
        assertEq(home.coverageAvailable(MEMBER), 0);
        expectDrawRefused(nextDraw(0, 1), 0);
        IBackstopVault.CoverageUse memory u = home.coverageUse(MEMBER);
        assertEq(u.epoch, block.timestamp / WINDOW);
        assertEq(u.previous, 0);
        assertEq(u.current, LIMIT);

        // Remote: the same edge for legs.
        release(remoteLeg(LIMIT - 1));
        release(remoteLeg(1));
        assertEq(remote.coverageAvailable(MEMBER), 0);
        expectLegRefused(remoteLeg(1), 0);
        assertEq(remoteToken.balanceOf(recipient), LIMIT);
    }

    function test_coverage_refusalReportsWhatIsLeft() public {
        drawHome(LIMIT - 7e6);
        expectDrawRefused(nextDraw(0, 7e6 + 1), 7e6);
        drawHome(7e6);
    }

    function test_coverage_checkedBeforeSignatures() public {
        drawHome(LIMIT);
        IBackstopVault.Draw memory d = nextDraw(0, 1);
        bytes memory blob = sigs(home.hashDraw(d), T - 1); // too few signatures, too
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.CoverageExceeded.selector, MEMBER, 1, 0));
        home.registerDraw(d, blob);
    }

    function test_coverage_refusedDrawConsumesNothing() public {
        drawHome(LIMIT - 1);
        expectDrawRefused(nextDraw(0, 2), 1);
        drawHome(1);
        assertEq(home.nextSeq(MEMBER), 2);
    }

    // ================================================================ epochs

    /// @notice A payment made at the very end of an epoch blocks the whole next epoch: coverage
    ///         comes back only at the start of the epoch after (two epoch boundaries later).
    function test_coverage_epochRoll_freesPreviousOnlyAfterTwoEpochs() public {
        vm.warp(epochStart(1) - 1); // last second of epoch e
        drawHome(LIMIT);
        vm.warp(epochStart(1)); // first second of e + 1, one second later
        assertEq(home.coverageAvailable(MEMBER), 0, "previous epoch still counted");
        expectDrawRefused(nextDraw(0, 1), 0);
        vm.warp(epochStart(1) - 1); // last second of e + 1
        assertEq(home.coverageAvailable(MEMBER), 0, "still counted at the end of e + 1");
        expectDrawRefused(nextDraw(0, 1), 0);
        vm.warp(epochStart(1)); // first second of e + 2
        assertEq(home.coverageAvailable(MEMBER), LIMIT, "forgotten two epochs later");
        drawHome(LIMIT);
    }

    /// @notice After a roll, the previous epoch's usage and the current one share the limit.
    function test_coverage_epochRoll_previousAndCurrentShareTheLimit() public {
        drawHome(100_000e6); // epoch e
        vm.warp(epochStart(1) + 1 hours); // e + 1
        assertEq(home.coverageAvailable(MEMBER), LIMIT - 100_000e6);
        drawHome(150_000e6);
        IBackstopVault.CoverageUse memory u = home.coverageUse(MEMBER);
        assertEq(u.epoch, block.timestamp / WINDOW);
        assertEq(u.previous, 100_000e6, "previous rolled from current");
        assertEq(u.current, 150_000e6);
        expectDrawRefused(nextDraw(0, 50_000e6 + 1), 50_000e6);
        vm.warp(epochStart(1)); // e + 2: the usage of e + 1 becomes previous
        assertEq(home.coverageAvailable(MEMBER), LIMIT - 150_000e6);
        drawHome(LIMIT - 150_000e6);
        u = home.coverageUse(MEMBER);
        assertEq(u.previous, 150_000e6);
        assertEq(u.current, LIMIT - 150_000e6);
    }

    function test_coverage_epochSkipped_forgetsEverything() public {
        drawHome(LIMIT);
        vm.warp(epochStart(2) + 5 hours);
        assertEq(home.coverageAvailable(MEMBER), LIMIT);
        drawHome(LIMIT);
        IBackstopVault.CoverageUse memory u = home.coverageUse(MEMBER);
        assertEq(u.previous, 0);
        assertEq(u.current, LIMIT);
    }

    // ================================================================ per vault

    /// @notice The home vault counts the whole draw (every leg), each remote vault only the legs
    ///         it pays, each against its own limit.
    function test_coverage_remoteLegsCountedPerVault() public {
        setCoverage(home, 400_000e6, WINDOW);
        setCoverage(remote, 250_000e6, WINDOW);
        IBackstopVault.Draw memory d = nextDraw(200_000e6, 100_000e6);
        bytes32 drawHash = register(d);
        assertEq(home.coverageAvailable(MEMBER), 100_000e6, "home counts both legs");
        assertEq(remote.coverageAvailable(MEMBER), 250_000e6, "nothing paid remotely yet");

        release(legRelease(drawHash, d.seq, 200_000e6, d.legDeadline));
        assertEq(remote.coverageAvailable(MEMBER), 50_000e6, "remote counts its leg");
        assertEq(home.coverageAvailable(MEMBER), 100_000e6, "a release changes nothing at home");

        // A draw whose home leg is zero still counts at home.
        expectDrawRefused(nextDraw(100_000e6 + 1, 0), 100_000e6);
        IBackstopVault.Draw memory d2 = nextDraw(100_000e6, 0);
        bytes32 drawHash2 = register(d2);
        assertEq(home.coverageAvailable(MEMBER), 0);
        // The remote vault refuses the registered draw's leg: its own window is nearly used.
        expectLegRefused(legRelease(drawHash2, d2.seq, 100_000e6, d2.legDeadline), 50_000e6);
        vm.warp(epochStart(2));
        release(legRelease(drawHash2, d2.seq, 100_000e6, d2.legDeadline + 2 days));
        assertEq(remoteToken.balanceOf(recipient), 300_000e6);
    }

    function test_coverage_otherMemberHasItsOwnWindow() public {
        bytes32 other = keccak256("member:lending-market");
        IBackstopVault.SetMember memory a =
            setMemberAction(other, recipient, HOME_CHAIN, CAP, DEDUCTIBLE, LIMIT, WINDOW);
        home.setMember(a, sigs(home.hashSetMember(a), T));
        drawHome(LIMIT);
        assertEq(home.coverageAvailable(other), LIMIT);
        IBackstopVault.Draw memory d = nextDraw(0, LIMIT);
        d.member = other;
        d.seq = 0;
        register(d);
        assertEq(home.coverageAvailable(other), 0);
    }

    function test_coverage_unknownMember() public view {
        bytes32 unknown = keccak256("member:unknown");
        assertEq(home.coverageAvailable(unknown), 0);
        IBackstopVault.CoverageUse memory u = home.coverageUse(unknown);
        assertEq(u.epoch + u.previous + u.current, 0);
    }

    // ================================================================ setMember

    function test_setMember_setsCoverageAndEmits() public {
        IBackstopVault.SetMember memory a =
            setMemberAction(MEMBER, recipient, HOME_CHAIN, CAP, DEDUCTIBLE, 123e6, 2 hours);
        bytes memory blob = sigs(home.hashSetMember(a), T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.MemberSet(MEMBER, recipient, HOME_CHAIN, CAP, DEDUCTIBLE, 123e6, 2 hours, a.id);
        home.setMember(a, blob);
        IBackstopVault.Member memory m = home.member(MEMBER);
        assertEq(m.coverageLimit, 123e6);
        assertEq(m.coverageWindow, 2 hours);
        assertEq(home.coverageAvailable(MEMBER), 123e6);
    }

    function expectInvalidCoverage(uint128 limit, uint64 window) internal {
        IBackstopVault.SetMember memory a =
            setMemberAction(MEMBER, recipient, HOME_CHAIN, CAP, DEDUCTIBLE, limit, window);
        bytes memory blob = sigs(home.hashSetMember(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidCoverage.selector, limit, window));
        home.setMember(a, blob);
    }

    function test_setMember_revertsWhen_coverageLimitAboveUint96() public {
        expectInvalidCoverage(uint128(type(uint96).max) + 1, WINDOW);
        expectInvalidCoverage(type(uint128).max, WINDOW);
        setCoverage(home, type(uint96).max, WINDOW); // the largest limit is accepted
        assertEq(home.coverageAvailable(MEMBER), type(uint96).max);
    }

    function test_setMember_revertsWhen_coverageWindowZero() public {
        expectInvalidCoverage(LIMIT, 0);
    }

    function test_setMember_revertsWhen_coverageWindowAboveMaxDuration() public {
        uint64 max = home.MAX_DURATION();
        expectInvalidCoverage(LIMIT, max + 1);
        expectInvalidCoverage(LIMIT, type(uint64).max);
        setCoverage(home, LIMIT, max); // the longest window is accepted
        assertEq(home.member(MEMBER).coverageWindow, max);
    }

    function test_setMember_newMemberRecordStartsNow() public {
        bytes32 other = keccak256("member:new");
        IBackstopVault.SetMember memory a = setMemberAction(other, recipient, HOME_CHAIN, CAP, 0, LIMIT, 6 hours);
        home.setMember(a, sigs(home.hashSetMember(a), T));
        IBackstopVault.CoverageUse memory u = home.coverageUse(other);
        assertEq(u.epoch, block.timestamp / 6 hours);
        assertEq(u.previous + u.current, 0);
    }

    function test_setMember_sameWindow_keepsUsage() public {
        drawHome(100_000e6);
        IBackstopVault.CoverageUse memory before = home.coverageUse(MEMBER);
        setCoverage(home, 2 * LIMIT, WINDOW); // a new limit, the same window
        IBackstopVault.CoverageUse memory u = home.coverageUse(MEMBER);
        assertEq(abi.encode(u), abi.encode(before), "record untouched");
        assertEq(home.coverageAvailable(MEMBER), 2 * LIMIT - 100_000e6);
        setCoverage(home, 50_000e6, WINDOW); // a limit below the usage: nothing left
        assertEq(home.coverageAvailable(MEMBER), 0);
        expectDrawRefused(nextDraw(0, 1), 0);
    }

    /// @notice Shortening the window carries the usage of the old window (previous and current)
    ///         into the new epoch: it is forgotten only two new epochs later.
    function test_setMember_shorterWindow_carriesUsage() public {
        drawHome(100_000e6); // epoch e
        vm.warp(epochStart(1) + 3 hours); // e + 1
        drawHome(50_000e6);
        setCoverage(home, LIMIT, 1 hours);
        IBackstopVault.CoverageUse memory u = home.coverageUse(MEMBER);
        assertEq(u.epoch, block.timestamp / 1 hours);
        assertEq(u.previous, 0);
        assertEq(u.current, 150_000e6, "previous + current carried");
        assertEq(home.coverageAvailable(MEMBER), LIMIT - 150_000e6);
        expectDrawRefused(nextDraw(0, LIMIT - 150_000e6 + 1), LIMIT - 150_000e6);
        vm.warp((block.timestamp / 1 hours + 1) * 1 hours); // next hour: carried usage is previous
        assertEq(home.coverageAvailable(MEMBER), LIMIT - 150_000e6);
        vm.warp(block.timestamp + 1 hours); // two hours on
        assertEq(home.coverageAvailable(MEMBER), LIMIT);
    }

    /// @notice Lengthening the window carries the usage too; it then lasts for the new length.
    function test_setMember_longerWindow_carriesUsage() public {
        setCoverage(home, LIMIT, 1 hours);
        drawHome(200_000e6);
        vm.warp(block.timestamp + 30 minutes);
        setCoverage(home, LIMIT, 7 days);
        IBackstopVault.CoverageUse memory u = home.coverageUse(MEMBER);
        assertEq(u.epoch, block.timestamp / 7 days);
        assertEq(u.current, 200_000e6);
        vm.warp(block.timestamp + 6 days);
        assertEq(home.coverageAvailable(MEMBER), LIMIT - 200_000e6, "held at the new length");
        expectDrawRefused(nextDraw(0, LIMIT - 200_000e6 + 1), LIMIT - 200_000e6);
    }

    /// @notice A window change after the old record has expired carries nothing.
    function test_setMember_windowChange_afterExpiry_carriesNothing() public {
        drawHome(LIMIT);
        vm.warp(epochStart(2));
        setCoverage(home, LIMIT, 1 hours);
        assertEq(home.coverageAvailable(MEMBER), LIMIT);
        assertEq(home.coverageUse(MEMBER).current, 0);
    }

    /// @notice Remote vaults carry their leg usage across a window change as well.
    function test_setMember_windowChange_remoteCarriesLegs() public {
        release(remoteLeg(120_000e6));
        setCoverage(remote, LIMIT, 3 hours);
        assertEq(remote.coverageAvailable(MEMBER), LIMIT - 120_000e6);
        expectLegRefused(remoteLeg(LIMIT - 120_000e6 + 1), LIMIT - 120_000e6);
    }

    // ================================================================ fuzz

    /// @dev A reference model of the two-epoch record, and the payments it let through.
    struct Model {
        uint256 window;
        uint256 limit;
        uint256 epoch;
        uint256 previous;
        uint256 current;
        uint256[] times;
        uint256[] paid;
        uint256 n;
    }

    /// @dev What the model lets pay now.
    function modelAvailable(Model memory m) internal view returns (uint256) {
        (uint256 previous, uint256 current) = modelUsage(m, block.timestamp / m.window);
        uint256 used = previous + current;
        return used >= m.limit ? 0 : m.limit - used;
    }

    function modelUsage(Model memory m, uint256 epoch) internal pure returns (uint256, uint256) {
        if (epoch == m.epoch) return (m.previous, m.current);
        if (epoch == m.epoch + 1) return (m.current, 0);
        return (0, 0);
    }

    function modelPay(Model memory m, uint256 amount) internal view {
        uint256 epoch = block.timestamp / m.window;
        (uint256 previous, uint256 current) = modelUsage(m, epoch);
        (m.epoch, m.previous, m.current) = (epoch, previous, current + amount);
        m.times[m.n] = block.timestamp;
        m.paid[m.n] = amount;
        ++m.n;
    }

    /// @notice For random payments (remote legs) and time jumps, the vault accepts a leg exactly
    ///         when the two-epoch model does, and no interval of length W holds more than the
    ///         limit (checked independently of the model, over every window ending at a payment).
    function testFuzz_coverage_neverExceededInAnyWindow(
        uint128 limit,
        uint64 window,
        uint256[12] memory amounts,
        uint256[12] memory jumps
    ) public {
        window = uint64(bound(window, 1, 3 days));
        limit = uint128(bound(limit, 0, 2 * uint256(CAP)));
        setCoverage(remote, limit, window);

        Model memory m = Model({
            window: window,
            limit: limit,
            epoch: 0,
            previous: 0,
            current: 0,
            times: new uint256[](amounts.length),
            paid: new uint256[](amounts.length),
            n: 0
        });
        for (uint256 i = 0; i < amounts.length; ++i) {
            vm.warp(block.timestamp + bound(jumps[i], 0, 3 * uint256(window)));
            uint256 amount = bound(amounts[i], 1, CAP);
            uint256 available = modelAvailable(m);
            assertEq(remote.coverageAvailable(MEMBER), available, "view vs model");
            IBackstopVault.LegRelease memory rel = remoteLeg(amount);
            if (amount > available) {
                expectLegRefused(rel, available);
            } else {
                release(rel);
                modelPay(m, amount);
            }
        }
        assertEq(remoteToken.balanceOf(recipient), sum(m.paid), "paid what the model let through");
        assertWindowsWithinLimit(m.times, m.paid, m.n, window, limit);
    }

    function sum(uint256[] memory xs) internal pure returns (uint256 total) {
        for (uint256 i = 0; i < xs.length; ++i) {
            total += xs[i];
        }
    }

    /// @notice A window change never changes what is available at that moment, whatever the
    ///         lengths and the payments before it.
    function testFuzz_setMember_windowChange_keepsAvailable(
        uint64 oldWindow,
        uint64 newWindow,
        uint256 first,
        uint256 second,
        uint256 gap1,
        uint256 gap2
    ) public {
        oldWindow = uint64(bound(oldWindow, 1, 30 days));
        newWindow = uint64(bound(newWindow, 1, 30 days));
        setCoverage(home, LIMIT, oldWindow);
        vm.warp(block.timestamp + bound(gap1, 0, 3 * uint256(oldWindow)));
        drawHome(bound(first, 0, LIMIT / 2));
        vm.warp(block.timestamp + bound(gap2, 0, 3 * uint256(oldWindow)));
        if (home.coverageAvailable(MEMBER) >= LIMIT / 2) drawHome(bound(second, 0, LIMIT / 2));
        uint256 available = home.coverageAvailable(MEMBER);
        setCoverage(home, LIMIT, newWindow);
        assertEq(home.coverageAvailable(MEMBER), available, "a window change forgets nothing");
    }

    /// @dev Every interval [t - window, t] ending at a payment time t holds at most `limit`.
    function assertWindowsWithinLimit(
        uint256[] memory times,
        uint256[] memory paid,
        uint256 n,
        uint256 window,
        uint256 limit
    ) internal pure {
        for (uint256 i = 0; i < n; ++i) {
            uint256 inWindow = 0;
            for (uint256 j = 0; j <= i; ++j) {
                if (times[j] + window >= times[i]) inWindow += paid[j];
            }
            assertLe(inWindow, limit, "paid within one window");
        }
    }
}
