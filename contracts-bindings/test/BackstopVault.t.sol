// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC4626} from "@openzeppelin/contracts/interfaces/IERC4626.sol";
import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {BackstopVault} from "../src/BackstopVault.sol";
import {IBackstopVault} from "../src/IBackstopVault.sol";
import {VaultFixture} from "./utils/VaultFixture.sol";

/// @notice Unit tests of every external function and every revert path of BackstopVault.
contract BackstopVaultTest is VaultFixture {
    /// @dev Key of an address that is never a guardian.
    uint256 internal constant OUTSIDER_KEY = 0xBAD;

    bytes32 internal constant OTHER_MEMBER = keccak256("member:lending-market");

    // gap 400k, coverable 350k; legs: 100k remote + 200k home = 300k.
    uint256 internal constant GAP = 400_000e6;
    uint256 internal constant REMOTE_LEG = 100_000e6;
    uint256 internal constant HOME_LEG = 200_000e6;

    // ================================================================ helpers

    function validDraw() internal view returns (IBackstopVault.Draw memory) {
        return twoLegDraw(home, remote, 0, GAP, REMOTE_LEG, HOME_LEG);
    }

    function drawWithLegs(IBackstopVault.Leg[] memory legs, uint256 amount)
        internal
        view
        returns (IBackstopVault.Draw memory d)
    {
        d = validDraw();
        d.gap = 10 * uint256(CAP);
        d.legs = legs;
        d.amount = amount;
    }

    function leg(uint64 chainId, address vault, uint256 amount) internal pure returns (IBackstopVault.Leg memory) {
        return IBackstopVault.Leg({chainId: chainId, vault: vault, amount: amount});
    }

    function expectRegisterRevert(IBackstopVault.Draw memory d, bytes memory err) internal {
        bytes memory blob = sigs(home.hashDraw(d), T);
        vm.expectRevert(err);
        home.registerDraw(d, blob);
    }

    function expectRegisterRevertWith(IBackstopVault.Draw memory d, bytes memory blob, bytes memory err) internal {
        vm.expectRevert(err);
        home.registerDraw(d, blob);
    }

    /// @dev Registers the valid draw on the home vault, then moves to the remote chain.
    function registerAndGoRemote() internal returns (bytes32 drawHash, IBackstopVault.LegRelease memory rel) {
        IBackstopVault.Draw memory d = validDraw();
        drawHash = register(d);
        vm.chainId(REMOTE_CHAIN);
        rel = legRelease(drawHash, d.seq, REMOTE_LEG, d.legDeadline);
    }

    function remoteSigs(IBackstopVault.LegRelease memory rel, uint256 count) internal view returns (bytes memory) {
        return sigs(remote.hashLegRelease(rel), count);
    }

    function deployWith(address[] memory set, uint8 t, uint8 p, IBackstopVault.Limits memory l)
        internal
        returns (BackstopVault)
    {
        return new BackstopVault(IERC20(address(homeToken)), "Backstop", "bSTOP", set, t, p, l);
    }

    function raiseAlertAction(bytes32 subject, uint8 level) internal returns (IBackstopVault.RaiseAlert memory) {
        return IBackstopVault.RaiseAlert({subject: subject, level: level, id: nextId(), deadline: deadlineIn(1 hours)});
    }

    function raise(bytes32 subject, uint8 level) internal {
        IBackstopVault.RaiseAlert memory a = raiseAlertAction(subject, level);
        home.raiseAlert(a, sigs(home.hashRaiseAlert(a), P));
    }

    function unfreezeAction(bytes32 member) internal returns (IBackstopVault.UnfreezeMember memory) {
        return IBackstopVault.UnfreezeMember({member: member, id: nextId(), deadline: deadlineIn(1 hours)});
    }

    function rotateAction(uint256[] memory newKeys, uint8 t, uint8 p)
        internal
        returns (IBackstopVault.RotateGuardians memory)
    {
        return IBackstopVault.RotateGuardians({
            guardians: addressesOf(newKeys),
            threshold: t,
            pauseThreshold: p,
            id: nextId(),
            deadline: deadlineIn(1 hours)
        });
    }

    function limitsAction(IBackstopVault.Limits memory l) internal returns (IBackstopVault.SetLimits memory) {
        return IBackstopVault.SetLimits({
            bucketCapacity: l.bucketCapacity,
            refillPerSecond: l.refillPerSecond,
            reserveFloor: l.reserveFloor,
            withdrawCooldown: l.withdrawCooldown,
            emergencyDuration: l.emergencyDuration,
            id: nextId(),
            deadline: deadlineIn(1 hours)
        });
    }

    /// @dev `lp` escrows `shares` and waits out the cooldown.
    function requestAndWait(uint256 shares) internal {
        vm.prank(lp);
        home.requestRedeem(shares);
        vm.warp(block.timestamp + COOLDOWN);
    }

    // ================================================================ constructor

    /// @notice The runtime code fits the EIP-170 limit that real chains enforce (forge's test
    ///         EVM deploys larger code, so only this test would notice an overflow).
    function test_runtimeCode_fitsEip170Limit() public view {
        assertLe(address(home).code.length, 24_576, "runtime code above 24,576 bytes");
    }

    function test_constructor_setsGuardiansThresholdsAndLimits() public view {
        assertEq(home.guardians(), guardians);
        for (uint256 i = 0; i < N; ++i) {
            assertTrue(home.isGuardian(guardians[i]), "guardian flag");
        }
        assertFalse(home.isGuardian(vmx.addr(OUTSIDER_KEY)), "outsider flag");
        assertEq(home.threshold(), T);
        assertEq(home.pauseThreshold(), P);
        assertEq(home.guardianSetIndex(), 0);
        assertEq(home.pausedUntil(), 0);
        IBackstopVault.Limits memory l = home.limits();
        assertEq(l.bucketCapacity, BUCKET_CAPACITY);
        assertEq(l.refillPerSecond, REFILL_PER_SECOND);
        assertEq(l.reserveFloor, RESERVE_FLOOR);
        assertEq(l.withdrawCooldown, COOLDOWN);
        assertEq(l.emergencyDuration, EMERGENCY_DURATION);
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY, "bucket starts full");
        assertEq(home.asset(), address(homeToken));
        assertEq(home.decimals(), 6);
        assertEq(home.name(), "Backstop Home");
        assertEq(home.symbol(), "bHOME");
    }

    function test_constructor_emitsGuardiansSetAndLimitsSet() public {
        vm.expectEmit(true, true, true, true);
        emit IBackstopVault.GuardiansSet(0, guardians, 3, 2, bytes32(0));
        vm.expectEmit(true, true, true, true);
        emit IBackstopVault.LimitsSet(
            BUCKET_CAPACITY, REFILL_PER_SECOND, RESERVE_FLOOR, COOLDOWN, EMERGENCY_DURATION, bytes32(0)
        );
        deployWith(guardians, 3, 2, defaultLimits());
    }

    function test_constructor_acceptsSmallestAndLargestSets() public {
        address[] memory one = new address[](1);
        one[0] = guardians[0];
        assertEq(deployWith(one, 1, 1, defaultLimits()).threshold(), 1);

        address[] memory max = addressesOf(keySet(100, 32));
        BackstopVault v = deployWith(max, 17, 1, defaultLimits());
        assertEq(v.guardians().length, 32);
        assertEq(v.threshold(), 17);
    }

    function test_constructor_revertsWhen_guardianSetEmpty() public {
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(new address[](0), 1, 1, defaultLimits());
    }

    function test_constructor_revertsWhen_guardiansUnsorted() public {
        address[] memory set = addressesOf(keys);
        (set[1], set[2]) = (set[2], set[1]);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(set, 3, 2, defaultLimits());
    }

    function test_constructor_revertsWhen_guardianDuplicated() public {
        address[] memory set = addressesOf(keys);
        set[2] = set[1];
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(set, 3, 2, defaultLimits());
    }

    function test_constructor_revertsWhen_guardianIsZeroAddress() public {
        address[] memory set = addressesOf(keys);
        set[0] = address(0);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(set, 3, 2, defaultLimits());
    }

    function test_constructor_revertsWhen_guardianSetAboveMax() public {
        address[] memory set = addressesOf(keySet(100, 33));
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(set, 17, 1, defaultLimits());
    }

    function test_constructor_revertsWhen_pauseThresholdZero() public {
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(guardians, 3, 0, defaultLimits());
    }

    function test_constructor_revertsWhen_pauseThresholdAboveThreshold() public {
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(guardians, 3, 4, defaultLimits());
    }

    function test_constructor_revertsWhen_thresholdAboveSetSize() public {
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(guardians, 5, 2, defaultLimits());
    }

    function test_constructor_revertsWhen_thresholdNotMajority() public {
        // 2 of 4 is not a majority: two disjoint 2-sets could sign conflicting draws.
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        deployWith(guardians, 2, 2, defaultLimits());
    }

    function test_constructor_revertsWhen_emergencyDurationZero() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.emergencyDuration = 0;
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidLimits.selector));
        deployWith(guardians, 3, 2, l);
    }

    function test_constructor_revertsWhen_emergencyDurationAboveMax() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.emergencyDuration = 365 days + 1;
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidLimits.selector));
        deployWith(guardians, 3, 2, l);
    }

    function test_constructor_revertsWhen_cooldownAboveMax() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.withdrawCooldown = 365 days + 1;
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidLimits.selector));
        deployWith(guardians, 3, 2, l);
    }

    function test_constructor_acceptsMaxDurations() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.withdrawCooldown = 365 days;
        l.emergencyDuration = 365 days;
        assertEq(deployWith(guardians, 3, 2, l).limits().emergencyDuration, 365 days);
    }

    // ================================================================ registerDraw: success

    function test_registerDraw_paysHomeLegAndRecordsDraw() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes32 digest = home.hashDraw(d);
        bytes memory blob = sigs(digest, T);

        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.DrawRegistered(MEMBER, 0, digest, GAP, REMOTE_LEG + HOME_LEG, d.legs);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.LegPaid(digest, MEMBER, 0, recipient, HOME_LEG);
        bytes32 drawHash = home.registerDraw(d, blob);

        assertEq(drawHash, digest, "returns the digest");
        assertEq(home.drawOf(MEMBER, 0), digest, "drawOf");
        assertEq(home.nextSeq(MEMBER), 1, "nextSeq advances");
        assertEq(homeToken.balanceOf(recipient), HOME_LEG, "home leg paid to recipient");
        assertEq(homeToken.balanceOf(address(home)), LIQUIDITY - HOME_LEG, "only the home leg left");
        assertEq(home.totalAssets(), LIQUIDITY - HOME_LEG);
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY - HOME_LEG, "bucket drawn");
        assertEq(remoteToken.balanceOf(recipient), 0, "remote leg not paid by registration");
    }

    function test_registerDraw_acceptsAllGuardians() public {
        IBackstopVault.Draw memory d = validDraw();
        home.registerDraw(d, sigs(home.hashDraw(d), N));
        assertEq(home.nextSeq(MEMBER), 1);
    }

    function test_registerDraw_acceptsConsecutiveSeqs() public {
        register(validDraw());
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 1, GAP, 0, 10_000e6);
        bytes32 h = register(d);
        assertEq(home.drawOf(MEMBER, 1), h);
        assertEq(home.nextSeq(MEMBER), 2);
        assertEq(homeToken.balanceOf(recipient), HOME_LEG + 10_000e6);
    }

    function test_registerDraw_zeroAmountWithoutLegsIsAllowed() public {
        IBackstopVault.Draw memory d = drawWithLegs(new IBackstopVault.Leg[](0), 0);
        bytes32 digest = home.hashDraw(d);
        bytes memory blob = sigs(digest, T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.DrawRegistered(MEMBER, 0, digest, d.gap, 0, d.legs);
        home.registerDraw(d, blob);
        assertEq(home.nextSeq(MEMBER), 1);
        assertEq(home.drawOf(MEMBER, 0), digest);
        assertEq(homeToken.balanceOf(address(home)), LIQUIDITY, "nothing paid");
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY, "bucket untouched");
    }

    function test_registerDraw_zeroAmountWhenGapBelowDeductible() public {
        IBackstopVault.Draw memory d = drawWithLegs(new IBackstopVault.Leg[](0), 0);
        d.gap = DEDUCTIBLE - 1;
        register(d);
        assertEq(home.nextSeq(MEMBER), 1);
    }

    function test_registerDraw_remoteLegsOnlyPaysNothingAtHome() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](2);
        legs[0] = leg(REMOTE_CHAIN, address(remote), 100_000e6);
        legs[1] = leg(THIRD_CHAIN, address(0xC0FFEE), 50_000e6);
        register(drawWithLegs(legs, 150_000e6));
        assertEq(homeToken.balanceOf(address(home)), LIQUIDITY);
        assertEq(homeToken.balanceOf(recipient), 0);
        assertEq(home.nextSeq(MEMBER), 1);
    }

    function test_registerDraw_threeChainsPaysOnlyHomeLeg() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](3);
        legs[0] = leg(REMOTE_CHAIN, address(remote), 100_000e6);
        legs[1] = leg(HOME_CHAIN, address(home), 70_000e6);
        legs[2] = leg(THIRD_CHAIN, address(0xC0FFEE), 50_000e6);
        register(drawWithLegs(legs, 220_000e6));
        assertEq(homeToken.balanceOf(recipient), 70_000e6);
    }

    function test_registerDraw_acceptsMaxLegs() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](32);
        for (uint256 i = 0; i < 32; ++i) {
            legs[i] = leg(uint64(i + 1), address(uint160(0x1000 + i)), 1e6);
        }
        register(drawWithLegs(legs, 32e6));
        assertEq(home.nextSeq(MEMBER), 1);
    }

    function test_registerDraw_acceptsAmountEqualToCoverableGap() public {
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 0, 150_000e6, 0, 100_000e6);
        register(d);
        assertEq(homeToken.balanceOf(recipient), 100_000e6);
    }

    function test_registerDraw_acceptsAmountEqualToCap() public {
        register(twoLegDraw(home, remote, 0, 10 * uint256(CAP), CAP - 1e6, 1e6));
        assertEq(homeToken.balanceOf(recipient), 1e6);
    }

    function test_registerDraw_acceptsAtDeadline() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes memory blob = sigs(home.hashDraw(d), T);
        vm.warp(d.deadline);
        home.registerDraw(d, blob);
        assertEq(home.nextSeq(MEMBER), 1);
    }

    function test_registerDraw_succeedsAfterFreezeExpires() public {
        freeze(home, MEMBER);
        vm.warp(block.timestamp + EMERGENCY_DURATION);
        register(validDraw());
        assertEq(home.nextSeq(MEMBER), 1);
    }

    function test_registerDraw_succeedsAfterPauseExpires() public {
        pauseVault(home);
        vm.warp(block.timestamp + EMERGENCY_DURATION);
        register(validDraw());
        assertEq(home.nextSeq(MEMBER), 1);
    }

    // ================================================================ registerDraw: signatures

    function test_registerDraw_revertsWhen_signerNotGuardian() public {
        IBackstopVault.Draw memory d = validDraw();
        uint256[] memory signers = new uint256[](3);
        (signers[0], signers[1], signers[2]) = (keys[0], keys[1], OUTSIDER_KEY);
        sortByAddress(signers);
        bytes memory blob = signatures(signers, home.hashDraw(d));
        expectRegisterRevertWith(
            d, blob, abi.encodeWithSelector(IBackstopVault.SignerNotGuardian.selector, vmx.addr(OUTSIDER_KEY))
        );
    }

    function test_registerDraw_revertsWhen_duplicateSigner() public {
        IBackstopVault.Draw memory d = validDraw();
        uint256[] memory signers = new uint256[](3);
        (signers[0], signers[1], signers[2]) = (keys[0], keys[0], keys[1]);
        bytes memory blob = signatures(signers, home.hashDraw(d));
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.DuplicateSigner.selector, guardians[0]));
    }

    function test_registerDraw_revertsWhen_signersNotAscending() public {
        IBackstopVault.Draw memory d = validDraw();
        uint256[] memory signers = new uint256[](3);
        (signers[0], signers[1], signers[2]) = (keys[1], keys[0], keys[2]);
        bytes memory blob = signatures(signers, home.hashDraw(d));
        expectRegisterRevertWith(
            d, blob, abi.encodeWithSelector(IBackstopVault.SignersNotAscending.selector, guardians[1], guardians[0])
        );
    }

    function test_registerDraw_revertsWhen_belowThreshold() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes memory blob = sigs(home.hashDraw(d), T - 1);
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, 2, 3));
    }

    function test_registerDraw_revertsWhen_noSignatures() public {
        expectRegisterRevertWith(
            validDraw(), "", abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, 0, 3)
        );
    }

    function test_registerDraw_revertsWhen_signatureLengthInvalid() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes memory full = sigs(home.hashDraw(d), T);
        bytes memory truncated = new bytes(full.length - 1);
        for (uint256 i = 0; i < truncated.length; ++i) {
            truncated[i] = full[i];
        }
        expectRegisterRevertWith(
            d, truncated, abi.encodeWithSelector(IBackstopVault.SignatureLengthInvalid.selector, 194)
        );
    }

    function test_registerDraw_revertsWhen_signatureHasHighS() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes32 digest = home.hashDraw(d);
        bytes memory malleable = highS(signature(keys[1], digest));
        // The high-s twin recovers to the same guardian: only the malleability check refuses it.
        assertEq(recover(digest, malleable), guardians[1], "high-s twin recovers");
        bytes memory blob = bytes.concat(signature(keys[0], digest), malleable, signature(keys[2], digest));
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.InvalidSignature.selector, 1));
    }

    function test_registerDraw_revertsWhen_vNot27Or28() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes32 digest = home.hashDraw(d);
        bytes memory rest = bytes.concat(signature(keys[1], digest), signature(keys[2], digest));
        bytes memory first = signature(keys[0], digest);
        expectRegisterRevertWith(
            d, bytes.concat(withV(first, 29), rest), abi.encodeWithSelector(IBackstopVault.InvalidSignature.selector, 0)
        );
        expectRegisterRevertWith(
            d, bytes.concat(withV(first, 1), rest), abi.encodeWithSelector(IBackstopVault.InvalidSignature.selector, 0)
        );
    }

    function test_registerDraw_revertsWhen_garbageSignature() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes32 digest = home.hashDraw(d);
        bytes memory blob = bytes.concat(signature(keys[0], digest), signature(keys[1], digest), garbageSignature());
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.InvalidSignature.selector, 2));
    }

    function test_registerDraw_revertsWhen_signedForAnotherChain() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes32 digest = home.hashDraw(d);
        vm.chainId(1);
        bytes32 foreignDigest = home.hashDraw(d);
        vm.chainId(HOME_CHAIN);
        assertNotEq(foreignDigest, digest, "the domain binds the chain id");
        bytes memory blob = sigs(foreignDigest, T);
        // Under the real digest the first signature recovers to an unrelated address.
        address stranger = recover(digest, sigAt(blob, 0));
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.SignerNotGuardian.selector, stranger));
    }

    function test_registerDraw_revertsWhen_signedForAnotherVault() public {
        BackstopVault other = deployWith(guardians, 3, 2, defaultLimits());
        IBackstopVault.Draw memory d = validDraw();
        bytes32 digest = home.hashDraw(d);
        bytes32 foreignDigest = other.hashDraw(d);
        assertNotEq(foreignDigest, digest, "the domain binds the vault");
        bytes memory blob = sigs(foreignDigest, T);
        address stranger = recover(digest, sigAt(blob, 0));
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.SignerNotGuardian.selector, stranger));
    }

    function test_registerDraw_revertsWhen_signedDrawDiffers() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes memory blob = sigs(home.hashDraw(d), T);
        d.gap += 1; // the submitter alters a signed field
        address stranger = recover(home.hashDraw(d), sigAt(blob, 0));
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.SignerNotGuardian.selector, stranger));
    }

    // ================================================================ registerDraw: state checks

    function test_registerDraw_revertsWhen_expired() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes memory blob = sigs(home.hashDraw(d), T);
        vm.warp(uint256(d.deadline) + 1);
        expectRegisterRevertWith(d, blob, abi.encodeWithSelector(IBackstopVault.Expired.selector, d.deadline));
    }

    function test_registerDraw_revertsWhen_legDeadlineBeforeDeadline() public {
        IBackstopVault.Draw memory d = validDraw();
        d.legDeadline = d.deadline - 1;
        expectRegisterRevert(
            d, abi.encodeWithSelector(IBackstopVault.InvalidDeadlines.selector, d.deadline, d.legDeadline)
        );
    }

    function test_registerDraw_revertsWhen_replayed() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes32 drawHash = home.hashDraw(d);
        bytes memory blob = sigs(drawHash, T);
        home.registerDraw(d, blob);
        expectRegisterRevertWith(
            d, blob, abi.encodeWithSelector(IBackstopVault.DrawAlreadyRegistered.selector, MEMBER, 0, drawHash)
        );
    }

    function test_registerDraw_revertsWhen_competingDrawForRegisteredSeq() public {
        register(validDraw());
        bytes32 registered = home.drawOf(MEMBER, 0);
        IBackstopVault.Draw memory competing = twoLegDraw(home, remote, 0, GAP, 0, 10_000e6);
        expectRegisterRevert(
            competing, abi.encodeWithSelector(IBackstopVault.DrawAlreadyRegistered.selector, MEMBER, 0, registered)
        );
        assertEq(homeToken.balanceOf(recipient), HOME_LEG, "only the first draw paid");
    }

    function test_registerDraw_revertsWhen_seqAhead() public {
        IBackstopVault.Draw memory d = validDraw();
        d.seq = 1;
        expectRegisterRevert(d, abi.encodeWithSelector(IBackstopVault.SeqMismatch.selector, MEMBER, 0, 1));
    }

    function test_registerDraw_revertsWhen_memberUnknown() public {
        IBackstopVault.Draw memory d = validDraw();
        d.member = OTHER_MEMBER;
        expectRegisterRevert(d, abi.encodeWithSelector(IBackstopVault.UnknownMember.selector, OTHER_MEMBER));
    }

    function test_registerDraw_revertsWhen_notHomeChain() public {
        IBackstopVault.Draw memory d = validDraw();
        vm.chainId(REMOTE_CHAIN);
        bytes memory blob = sigs(remote.hashDraw(d), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.NotHomeChain.selector, MEMBER, HOME_CHAIN));
        remote.registerDraw(d, blob);
    }

    function test_registerDraw_revertsWhen_memberFrozen() public {
        freeze(home, MEMBER);
        expectRegisterRevert(validDraw(), abi.encodeWithSelector(IBackstopVault.MemberIsFrozen.selector, MEMBER));
    }

    function test_registerDraw_revertsWhen_vaultPaused() public {
        pauseVault(home);
        expectRegisterRevert(validDraw(), abi.encodeWithSelector(IBackstopVault.VaultPaused.selector));
    }

    function test_registerDraw_revertsWhen_amountAboveGapMinusDeductible() public {
        // gap 100k - deductible 50k = 50k coverable.
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 0, 100_000e6, 0, 50_000e6 + 1);
        expectRegisterRevert(d, abi.encodeWithSelector(IBackstopVault.DrawExceedsGap.selector, 50_000e6 + 1, 50_000e6));
    }

    function test_registerDraw_revertsWhen_gapBelowDeductible() public {
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 0, DEDUCTIBLE - 1, 0, 1);
        expectRegisterRevert(d, abi.encodeWithSelector(IBackstopVault.DrawExceedsGap.selector, 1, 0));
    }

    function test_registerDraw_revertsWhen_amountAboveCap() public {
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 0, 10 * uint256(CAP), 300_000e6, 200_000e6 + 1);
        expectRegisterRevert(d, abi.encodeWithSelector(IBackstopVault.DrawExceedsCap.selector, uint256(CAP) + 1, CAP));
    }

    function test_registerDraw_revertsWhen_legsUnsorted() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](2);
        legs[0] = leg(HOME_CHAIN, address(home), 1e6);
        legs[1] = leg(REMOTE_CHAIN, address(remote), 1e6);
        expectRegisterRevert(drawWithLegs(legs, 2e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_legChainDuplicated() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](2);
        legs[0] = leg(REMOTE_CHAIN, address(remote), 1e6);
        legs[1] = leg(REMOTE_CHAIN, address(remote), 1e6);
        expectRegisterRevert(drawWithLegs(legs, 2e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_homeLegDuplicated() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](2);
        legs[0] = leg(HOME_CHAIN, address(home), 1e6);
        legs[1] = leg(HOME_CHAIN, address(home), 1e6);
        expectRegisterRevert(drawWithLegs(legs, 2e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_legAmountZero() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](2);
        legs[0] = leg(REMOTE_CHAIN, address(remote), 0);
        legs[1] = leg(HOME_CHAIN, address(home), 1e6);
        expectRegisterRevert(drawWithLegs(legs, 1e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_legVaultZero() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](2);
        legs[0] = leg(REMOTE_CHAIN, address(0), 1e6);
        legs[1] = leg(HOME_CHAIN, address(home), 1e6);
        expectRegisterRevert(drawWithLegs(legs, 2e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_legChainIdZero() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](1);
        legs[0] = leg(0, address(remote), 1e6);
        expectRegisterRevert(drawWithLegs(legs, 1e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_homeLegNamesAnotherVault() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](1);
        legs[0] = leg(HOME_CHAIN, address(remote), 1e6);
        expectRegisterRevert(drawWithLegs(legs, 1e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_tooManyLegs() public {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](33);
        for (uint256 i = 0; i < 33; ++i) {
            legs[i] = leg(uint64(i + 1), address(uint160(0x1000 + i)), 1e6);
        }
        expectRegisterRevert(drawWithLegs(legs, 33e6), abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
    }

    function test_registerDraw_revertsWhen_legSumBelowAmount() public {
        IBackstopVault.Draw memory d = validDraw();
        d.amount += 1;
        expectRegisterRevert(
            d,
            abi.encodeWithSelector(
                IBackstopVault.LegSumMismatch.selector, REMOTE_LEG + HOME_LEG, REMOTE_LEG + HOME_LEG + 1
            )
        );
    }

    function test_registerDraw_revertsWhen_legSumAboveAmount() public {
        IBackstopVault.Draw memory d = validDraw();
        d.amount -= 1;
        expectRegisterRevert(
            d,
            abi.encodeWithSelector(
                IBackstopVault.LegSumMismatch.selector, REMOTE_LEG + HOME_LEG, REMOTE_LEG + HOME_LEG - 1
            )
        );
    }

    function test_registerDraw_revertsWhen_bucketBelowHomeLeg() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.bucketCapacity = 150_000e6;
        changeLimits(home, l);
        expectRegisterRevert(
            validDraw(), abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, HOME_LEG, 150_000e6)
        );
    }

    function test_registerDraw_revertsWhen_bucketDrainedByEarlierDraws() public {
        register(twoLegDraw(home, remote, 0, 10 * uint256(CAP), 0, CAP));
        register(twoLegDraw(home, remote, 1, 10 * uint256(CAP), 0, CAP));
        assertEq(home.bucketAvailable(), 0, "two capped draws empty the bucket");
        expectRegisterRevert(
            twoLegDraw(home, remote, 2, GAP, 0, 1), abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, 1, 0)
        );
    }

    function test_registerDraw_revertsWhen_payoutBreaksReserveFloor() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.reserveFloor = LIQUIDITY - HOME_LEG + 1;
        changeLimits(home, l);
        expectRegisterRevert(
            validDraw(),
            abi.encodeWithSelector(IBackstopVault.ReserveHit.selector, HOME_LEG, LIQUIDITY, LIQUIDITY - HOME_LEG + 1)
        );
    }

    function test_registerDraw_acceptsPayoutDownToReserveFloor() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.reserveFloor = LIQUIDITY - HOME_LEG;
        changeLimits(home, l);
        register(validDraw());
        assertEq(homeToken.balanceOf(address(home)), l.reserveFloor);
    }

    function test_registerDraw_revertsWhen_balanceBelowAmount() public {
        IBackstopVault.SetMember memory m = setMemberAction(MEMBER, recipient, HOME_CHAIN, 10 * CAP, DEDUCTIBLE);
        home.setMember(m, sigs(home.hashSetMember(m), T));
        changeLimits(
            home,
            IBackstopVault.Limits({
                bucketCapacity: 10 * CAP,
                refillPerSecond: REFILL_PER_SECOND,
                reserveFloor: 0,
                withdrawCooldown: COOLDOWN,
                emergencyDuration: EMERGENCY_DURATION
            })
        );
        vm.warp(block.timestamp + 5 days); // refill the larger bucket
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 0, 10 * uint256(CAP), 0, LIQUIDITY + 1);
        expectRegisterRevert(d, abi.encodeWithSelector(IBackstopVault.ReserveHit.selector, LIQUIDITY + 1, LIQUIDITY, 0));
    }

    // ================================================================ releaseLeg

    function test_releaseLeg_paysRemoteLegOnce() public {
        (bytes32 drawHash, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        bytes memory blob = remoteSigs(rel, T);

        vm.expectEmit(true, true, true, true, address(remote));
        emit IBackstopVault.LegPaid(drawHash, MEMBER, 0, recipient, REMOTE_LEG);
        remote.releaseLeg(rel, blob);

        assertEq(remote.drawOf(MEMBER, 0), drawHash, "leg recorded");
        assertEq(remoteToken.balanceOf(recipient), REMOTE_LEG, "recipient paid");
        assertEq(remoteToken.balanceOf(address(remote)), LIQUIDITY - REMOTE_LEG);
        assertEq(remote.bucketAvailable(), BUCKET_CAPACITY - REMOTE_LEG, "bucket drawn");
        assertEq(remote.nextSeq(MEMBER), 0, "the remote vault keeps no seq");
    }

    function test_releaseLeg_revertsWhen_replayed() public {
        (bytes32 drawHash, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        bytes memory blob = remoteSigs(rel, T);
        remote.releaseLeg(rel, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.LegAlreadyPaid.selector, MEMBER, 0, drawHash));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_otherDrawOfSameIncidentAlreadyPaid() public {
        (bytes32 drawHash, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        remote.releaseLeg(rel, remoteSigs(rel, T));
        // A fully signed release for another draw of the same (member, seq) pays nothing:
        // a vault pays at most one leg per incident.
        rel.drawHash = keccak256("competing draw");
        bytes memory blob = remoteSigs(rel, N);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.LegAlreadyPaid.selector, MEMBER, 0, drawHash));
        remote.releaseLeg(rel, blob);
        assertEq(remoteToken.balanceOf(recipient), REMOTE_LEG);
    }

    function test_releaseLeg_revertsWhen_vaultWasHomeOfTheIncident() public {
        IBackstopVault.Draw memory d = validDraw();
        bytes32 drawHash = register(d);
        // The member's home moves away; the old home already paid its leg at registration.
        IBackstopVault.SetMember memory move = setMemberAction(MEMBER, recipient, REMOTE_CHAIN, CAP, DEDUCTIBLE);
        home.setMember(move, sigs(home.hashSetMember(move), T));
        IBackstopVault.LegRelease memory rel = legRelease(drawHash, 0, HOME_LEG, deadlineIn(1 days));
        bytes memory blob = sigs(home.hashLegRelease(rel), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.LegAlreadyPaid.selector, MEMBER, 0, drawHash));
        home.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_secondReleaseOfSameDrawSigned() public {
        (bytes32 drawHash, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        remote.releaseLeg(rel, remoteSigs(rel, T));
        // Even a fully signed release with another amount and deadline pays nothing more.
        rel.amount = 1e6;
        rel.deadline += 1;
        bytes memory blob = remoteSigs(rel, N);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.LegAlreadyPaid.selector, MEMBER, 0, drawHash));
        remote.releaseLeg(rel, blob);
        assertEq(remoteToken.balanceOf(recipient), REMOTE_LEG);
    }

    function test_releaseLeg_revertsWhen_calledOnHomeVault() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        vm.chainId(HOME_CHAIN);
        bytes memory blob = sigs(home.hashLegRelease(rel), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.NotRemoteChain.selector, MEMBER));
        home.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_memberUnknown() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        rel.member = OTHER_MEMBER;
        bytes memory blob = remoteSigs(rel, T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.UnknownMember.selector, OTHER_MEMBER));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_memberFrozen() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        freeze(remote, MEMBER);
        bytes memory blob = remoteSigs(rel, T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.MemberIsFrozen.selector, MEMBER));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_succeedsWhileVaultPaused() public {
        (bytes32 drawHash, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        pauseVault(remote);
        assertTrue(remote.paused());
        remote.releaseLeg(rel, remoteSigs(rel, T));
        assertEq(remote.drawOf(MEMBER, 0), drawHash);
        assertEq(remoteToken.balanceOf(recipient), REMOTE_LEG);
    }

    function test_releaseLeg_revertsWhen_expired() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        bytes memory blob = remoteSigs(rel, T);
        vm.warp(uint256(rel.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, rel.deadline));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_amountAboveCap() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        rel.amount = uint256(CAP) + 1;
        bytes memory blob = remoteSigs(rel, T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.DrawExceedsCap.selector, uint256(CAP) + 1, CAP));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_amountZero() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        rel.amount = 0;
        bytes memory blob = remoteSigs(rel, T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidLegs.selector));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_belowThreshold() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        bytes memory blob = remoteSigs(rel, P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P, T));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_signedForHomeVault() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        vm.chainId(HOME_CHAIN);
        bytes memory blob = sigs(home.hashLegRelease(rel), T);
        vm.chainId(REMOTE_CHAIN);
        address stranger = recover(remote.hashLegRelease(rel), sigAt(blob, 0));
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.SignerNotGuardian.selector, stranger));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_bucketBelowAmount() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        IBackstopVault.Limits memory l = defaultLimits();
        l.bucketCapacity = 50_000e6;
        changeLimits(remote, l);
        bytes memory blob = remoteSigs(rel, T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, REMOTE_LEG, 50_000e6));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_revertsWhen_payoutBreaksReserveFloor() public {
        (, IBackstopVault.LegRelease memory rel) = registerAndGoRemote();
        IBackstopVault.Limits memory l = defaultLimits();
        l.reserveFloor = 1_950_000e6;
        changeLimits(remote, l);
        bytes memory blob = remoteSigs(rel, T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ReserveHit.selector, REMOTE_LEG, LIQUIDITY, 1_950_000e6));
        remote.releaseLeg(rel, blob);
    }

    function test_releaseLeg_bucketRefillsWithTime() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.bucketCapacity = 150_000e6;
        vm.chainId(REMOTE_CHAIN);
        changeLimits(remote, l);
        vm.chainId(HOME_CHAIN);

        bytes32 h0 = register(twoLegDraw(home, remote, 0, GAP, REMOTE_LEG, 0));
        bytes32 h1 = register(twoLegDraw(home, remote, 1, GAP, REMOTE_LEG, 0));
        vm.chainId(REMOTE_CHAIN);
        uint64 legDeadline = deadlineIn(1 days);
        remote.releaseLeg(
            legRelease(h0, 0, REMOTE_LEG, legDeadline), remoteSigs(legRelease(h0, 0, REMOTE_LEG, legDeadline), T)
        );
        assertEq(remote.bucketAvailable(), 50_000e6);

        IBackstopVault.LegRelease memory second = legRelease(h1, 1, REMOTE_LEG, legDeadline);
        bytes memory blob = remoteSigs(second, T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, REMOTE_LEG, 50_000e6));
        remote.releaseLeg(second, blob);

        // 10 tokens per second: 4_999 s are one unit short, 5_000 s refill exactly the missing 50k.
        vm.warp(block.timestamp + 4_999);
        assertEq(remote.bucketAvailable(), 99_990e6);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.BucketEmpty.selector, REMOTE_LEG, 99_990e6));
        remote.releaseLeg(second, blob);
        vm.warp(block.timestamp + 1);
        remote.releaseLeg(second, blob);
        assertEq(remote.bucketAvailable(), 0);

        // The bucket never refills above its capacity.
        vm.warp(block.timestamp + 30 days);
        assertEq(remote.bucketAvailable(), 150_000e6);
    }

    // ================================================================ freezeMember / unfreezeMember

    function test_freezeMember_freezesWithPauseThreshold() public {
        IBackstopVault.FreezeMember memory a =
            IBackstopVault.FreezeMember({member: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashFreezeMember(a), P);
        uint64 until = uint64(block.timestamp + EMERGENCY_DURATION);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.MemberFrozen(MEMBER, until, a.id);
        home.freezeMember(a, blob);
        assertTrue(home.isFrozen(MEMBER));
        assertEq(home.member(MEMBER).frozenUntil, until);
        assertTrue(home.actionUsed(a.id), "id consumed");
        assertFalse(remote.isFrozen(MEMBER), "a freeze is per vault");
    }

    function test_freezeMember_expiresAfterEmergencyDuration() public {
        freeze(home, MEMBER);
        uint256 until = block.timestamp + EMERGENCY_DURATION;
        vm.warp(until - 1);
        assertTrue(home.isFrozen(MEMBER));
        vm.warp(until);
        assertFalse(home.isFrozen(MEMBER));
    }

    function test_freezeMember_renewalExtends() public {
        freeze(home, MEMBER);
        vm.warp(block.timestamp + 1 days);
        freeze(home, MEMBER);
        assertEq(home.member(MEMBER).frozenUntil, block.timestamp + EMERGENCY_DURATION);
    }

    function test_freezeMember_renewalNeverShortens() public {
        freeze(home, MEMBER);
        uint64 until = home.member(MEMBER).frozenUntil;
        IBackstopVault.Limits memory l = defaultLimits();
        l.emergencyDuration = 1 hours;
        changeLimits(home, l);
        freeze(home, MEMBER);
        assertEq(home.member(MEMBER).frozenUntil, until);
    }

    function test_freezeMember_revertsWhen_belowPauseThreshold() public {
        IBackstopVault.FreezeMember memory a =
            IBackstopVault.FreezeMember({member: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashFreezeMember(a), P - 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P - 1, P));
        home.freezeMember(a, blob);
    }

    function test_freezeMember_revertsWhen_memberUnknown() public {
        IBackstopVault.FreezeMember memory a =
            IBackstopVault.FreezeMember({member: OTHER_MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashFreezeMember(a), P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.UnknownMember.selector, OTHER_MEMBER));
        home.freezeMember(a, blob);
    }

    function test_freezeMember_revertsWhen_idReplayed() public {
        IBackstopVault.FreezeMember memory a =
            IBackstopVault.FreezeMember({member: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashFreezeMember(a), P);
        home.freezeMember(a, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.freezeMember(a, blob);
    }

    function test_freezeMember_revertsWhen_expired() public {
        IBackstopVault.FreezeMember memory a =
            IBackstopVault.FreezeMember({member: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashFreezeMember(a), P);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.freezeMember(a, blob);
    }

    function test_unfreezeMember_liftsWithThreshold() public {
        freeze(home, MEMBER);
        IBackstopVault.UnfreezeMember memory a = unfreezeAction(MEMBER);
        bytes memory blob = sigs(home.hashUnfreezeMember(a), T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.MemberUnfrozen(MEMBER, a.id);
        home.unfreezeMember(a, blob);
        assertFalse(home.isFrozen(MEMBER));
        assertEq(home.member(MEMBER).frozenUntil, 0);
        register(validDraw());
    }

    function test_unfreezeMember_revertsWhen_onlyPauseThreshold() public {
        freeze(home, MEMBER);
        IBackstopVault.UnfreezeMember memory a = unfreezeAction(MEMBER);
        bytes memory blob = sigs(home.hashUnfreezeMember(a), P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P, T));
        home.unfreezeMember(a, blob);
        assertTrue(home.isFrozen(MEMBER));
    }

    function test_unfreezeMember_revertsWhen_memberUnknown() public {
        IBackstopVault.UnfreezeMember memory a = unfreezeAction(OTHER_MEMBER);
        bytes memory blob = sigs(home.hashUnfreezeMember(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.UnknownMember.selector, OTHER_MEMBER));
        home.unfreezeMember(a, blob);
    }

    function test_unfreezeMember_revertsWhen_idReplayed() public {
        IBackstopVault.UnfreezeMember memory a = unfreezeAction(MEMBER);
        bytes memory blob = sigs(home.hashUnfreezeMember(a), T);
        home.unfreezeMember(a, blob);
        freeze(home, MEMBER);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.unfreezeMember(a, blob);
        assertTrue(home.isFrozen(MEMBER));
    }

    function test_unfreezeMember_revertsWhen_expired() public {
        IBackstopVault.UnfreezeMember memory a = unfreezeAction(MEMBER);
        bytes memory blob = sigs(home.hashUnfreezeMember(a), T);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.unfreezeMember(a, blob);
    }

    // ================================================================ pause / unpause

    function test_pause_pausesWithPauseThreshold() public {
        IBackstopVault.Pause memory a = IBackstopVault.Pause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashPause(a), P);
        uint64 until = uint64(block.timestamp + EMERGENCY_DURATION);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.VaultPausedUntil(until, a.id);
        home.pause(a, blob);
        assertTrue(home.paused());
        assertEq(home.pausedUntil(), until);
        assertFalse(remote.paused(), "a pause is per vault");
    }

    function test_pause_expiresAfterEmergencyDuration() public {
        pauseVault(home);
        uint256 until = block.timestamp + EMERGENCY_DURATION;
        vm.warp(until - 1);
        assertTrue(home.paused());
        vm.warp(until);
        assertFalse(home.paused());
    }

    function test_pause_renewalExtends() public {
        pauseVault(home);
        vm.warp(block.timestamp + 2 days);
        pauseVault(home);
        assertEq(home.pausedUntil(), block.timestamp + EMERGENCY_DURATION);
    }

    function test_pause_revertsWhen_belowPauseThreshold() public {
        IBackstopVault.Pause memory a = IBackstopVault.Pause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashPause(a), P - 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P - 1, P));
        home.pause(a, blob);
    }

    function test_pause_revertsWhen_idReplayed() public {
        IBackstopVault.Pause memory a = IBackstopVault.Pause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashPause(a), P);
        home.pause(a, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.pause(a, blob);
    }

    function test_pause_revertsWhen_expired() public {
        IBackstopVault.Pause memory a = IBackstopVault.Pause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashPause(a), P);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.pause(a, blob);
    }

    function test_unpause_liftsWithThreshold() public {
        pauseVault(home);
        IBackstopVault.Unpause memory a = IBackstopVault.Unpause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashUnpause(a), T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.VaultUnpaused(a.id);
        home.unpause(a, blob);
        assertFalse(home.paused());
        assertEq(home.pausedUntil(), 0);
    }

    function test_unpause_revertsWhen_onlyPauseThreshold() public {
        pauseVault(home);
        IBackstopVault.Unpause memory a = IBackstopVault.Unpause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashUnpause(a), P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P, T));
        home.unpause(a, blob);
        assertTrue(home.paused());
    }

    function test_unpause_revertsWhen_idReplayed() public {
        IBackstopVault.Unpause memory a = IBackstopVault.Unpause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashUnpause(a), T);
        home.unpause(a, blob);
        pauseVault(home);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.unpause(a, blob);
    }

    function test_unpause_revertsWhen_expired() public {
        IBackstopVault.Unpause memory a = IBackstopVault.Unpause({id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashUnpause(a), T);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.unpause(a, blob);
    }

    // ================================================================ raiseAlert / clearAlert

    function test_raiseAlert_raisesWithPauseThreshold() public {
        bytes32 subject = keccak256("oracle:ETH/USD");
        IBackstopVault.RaiseAlert memory a = raiseAlertAction(subject, 2);
        bytes memory blob = sigs(home.hashRaiseAlert(a), P);
        uint64 until = uint64(block.timestamp + EMERGENCY_DURATION);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.AlertRaised(subject, 2, until, a.id);
        home.raiseAlert(a, blob);
        assertEq(home.alertLevel(subject), 2);
        (uint8 level, uint64 storedUntil) = home.alert(subject);
        assertEq(level, 2);
        assertEq(storedUntil, until);
    }

    function test_raiseAlert_neverLowersLevelButExtends() public {
        raise(MEMBER, 3);
        vm.warp(block.timestamp + 1 days);
        raise(MEMBER, 1);
        (uint8 level, uint64 until) = home.alert(MEMBER);
        assertEq(level, 3, "level kept");
        assertEq(until, block.timestamp + EMERGENCY_DURATION, "expiry extended");
        raise(MEMBER, 4);
        assertEq(home.alertLevel(MEMBER), 4, "level raised");
    }

    function test_raiseAlert_expiresAfterEmergencyDuration() public {
        raise(MEMBER, 3);
        uint256 until = block.timestamp + EMERGENCY_DURATION;
        vm.warp(until - 1);
        assertEq(home.alertLevel(MEMBER), 3);
        vm.warp(until);
        assertEq(home.alertLevel(MEMBER), 0, "expired alert reads as 0");
        (uint8 level, uint64 storedUntil) = home.alert(MEMBER);
        assertEq(level, 3, "stored level kept");
        assertEq(storedUntil, until);
        // After expiry, a lower level replaces the stale one.
        raise(MEMBER, 1);
        assertEq(home.alertLevel(MEMBER), 1);
    }

    function test_raiseAlert_revertsWhen_levelZero() public {
        IBackstopVault.RaiseAlert memory a = raiseAlertAction(MEMBER, 0);
        bytes memory blob = sigs(home.hashRaiseAlert(a), N);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidAlertLevel.selector));
        home.raiseAlert(a, blob);
    }

    function test_raiseAlert_revertsWhen_belowPauseThreshold() public {
        IBackstopVault.RaiseAlert memory a = raiseAlertAction(MEMBER, 1);
        bytes memory blob = sigs(home.hashRaiseAlert(a), P - 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P - 1, P));
        home.raiseAlert(a, blob);
    }

    function test_raiseAlert_revertsWhen_idReplayed() public {
        IBackstopVault.RaiseAlert memory a = raiseAlertAction(MEMBER, 1);
        bytes memory blob = sigs(home.hashRaiseAlert(a), P);
        home.raiseAlert(a, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.raiseAlert(a, blob);
    }

    function test_raiseAlert_revertsWhen_expired() public {
        IBackstopVault.RaiseAlert memory a = raiseAlertAction(MEMBER, 1);
        bytes memory blob = sigs(home.hashRaiseAlert(a), P);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.raiseAlert(a, blob);
    }

    function test_clearAlert_clearsWithThreshold() public {
        raise(MEMBER, 3);
        IBackstopVault.ClearAlert memory a =
            IBackstopVault.ClearAlert({subject: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashClearAlert(a), T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.AlertCleared(MEMBER, a.id);
        home.clearAlert(a, blob);
        assertEq(home.alertLevel(MEMBER), 0);
        (uint8 level, uint64 until) = home.alert(MEMBER);
        assertEq(level, 0);
        assertEq(until, 0);
    }

    function test_clearAlert_revertsWhen_onlyPauseThreshold() public {
        raise(MEMBER, 3);
        IBackstopVault.ClearAlert memory a =
            IBackstopVault.ClearAlert({subject: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashClearAlert(a), P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P, T));
        home.clearAlert(a, blob);
        assertEq(home.alertLevel(MEMBER), 3);
    }

    function test_clearAlert_revertsWhen_idReplayed() public {
        IBackstopVault.ClearAlert memory a =
            IBackstopVault.ClearAlert({subject: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashClearAlert(a), T);
        home.clearAlert(a, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.clearAlert(a, blob);
    }

    function test_clearAlert_revertsWhen_expired() public {
        IBackstopVault.ClearAlert memory a =
            IBackstopVault.ClearAlert({subject: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
        bytes memory blob = sigs(home.hashClearAlert(a), T);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.clearAlert(a, blob);
    }

    // ================================================================ setMember

    function test_setMember_addsMember() public {
        address payee = makeAddr("lending payee");
        IBackstopVault.SetMember memory a = setMemberAction(OTHER_MEMBER, payee, REMOTE_CHAIN, 1_000e6, 10e6);
        bytes memory blob = sigs(home.hashSetMember(a), T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.MemberSet(
            OTHER_MEMBER, payee, REMOTE_CHAIN, 1_000e6, 10e6, COVERAGE_LIMIT, COVERAGE_WINDOW, a.id
        );
        home.setMember(a, blob);
        IBackstopVault.Member memory m = home.member(OTHER_MEMBER);
        assertEq(m.recipient, payee);
        assertEq(m.homeChainId, REMOTE_CHAIN);
        assertEq(m.cap, 1_000e6);
        assertEq(m.deductible, 10e6);
        assertEq(m.coverageLimit, COVERAGE_LIMIT);
        assertEq(m.coverageWindow, COVERAGE_WINDOW);
        assertEq(m.nextSeq, 0);
        assertEq(m.frozenUntil, 0);
        assertEq(home.coverageAvailable(OTHER_MEMBER), COVERAGE_LIMIT, "nothing used");
        IBackstopVault.CoverageUse memory u = home.coverageUse(OTHER_MEMBER);
        assertEq(u.epoch, block.timestamp / COVERAGE_WINDOW, "record starts at the epoch of now");
        assertEq(u.previous + u.current, 0);
    }

    function test_setMember_changesMemberAndKeepsSeq() public {
        register(validDraw());
        address payee = makeAddr("new payee");
        IBackstopVault.SetMember memory a = setMemberAction(MEMBER, payee, HOME_CHAIN, 100_000e6, 0);
        home.setMember(a, sigs(home.hashSetMember(a), T));
        IBackstopVault.Member memory m = home.member(MEMBER);
        assertEq(m.recipient, payee);
        assertEq(m.cap, 100_000e6);
        assertEq(m.deductible, 0);
        assertEq(m.nextSeq, 1, "nextSeq kept");

        register(twoLegDraw(home, remote, 1, 100_000e6, 0, 100_000e6));
        assertEq(homeToken.balanceOf(payee), 100_000e6, "new recipient, new cap, no deductible");
        expectRegisterRevert(
            twoLegDraw(home, remote, 2, GAP, 0, 100_000e6 + 1),
            abi.encodeWithSelector(IBackstopVault.DrawExceedsCap.selector, 100_000e6 + 1, 100_000e6)
        );
    }

    function test_setMember_keepsFreeze() public {
        freeze(home, MEMBER);
        uint64 until = home.member(MEMBER).frozenUntil;
        IBackstopVault.SetMember memory a = setMemberAction(MEMBER, recipient, HOME_CHAIN, CAP, 0);
        home.setMember(a, sigs(home.hashSetMember(a), T));
        assertEq(home.member(MEMBER).frozenUntil, until);
        assertTrue(home.isFrozen(MEMBER));
    }

    function test_setMember_revertsWhen_recipientZero() public {
        IBackstopVault.SetMember memory a = setMemberAction(OTHER_MEMBER, address(0), HOME_CHAIN, CAP, 0);
        bytes memory blob = sigs(home.hashSetMember(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidMember.selector));
        home.setMember(a, blob);
    }

    function test_setMember_revertsWhen_homeChainZero() public {
        IBackstopVault.SetMember memory a = setMemberAction(OTHER_MEMBER, recipient, 0, CAP, 0);
        bytes memory blob = sigs(home.hashSetMember(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidMember.selector));
        home.setMember(a, blob);
    }

    function test_setMember_revertsWhen_onlyPauseThreshold() public {
        IBackstopVault.SetMember memory a = setMemberAction(OTHER_MEMBER, recipient, HOME_CHAIN, CAP, 0);
        bytes memory blob = sigs(home.hashSetMember(a), P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P, T));
        home.setMember(a, blob);
    }

    function test_setMember_revertsWhen_idReplayed() public {
        IBackstopVault.SetMember memory a = setMemberAction(OTHER_MEMBER, recipient, HOME_CHAIN, CAP, 0);
        bytes memory blob = sigs(home.hashSetMember(a), T);
        home.setMember(a, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.setMember(a, blob);
    }

    function test_setMember_revertsWhen_expired() public {
        IBackstopVault.SetMember memory a = setMemberAction(OTHER_MEMBER, recipient, HOME_CHAIN, CAP, 0);
        bytes memory blob = sigs(home.hashSetMember(a), T);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.setMember(a, blob);
    }

    // ================================================================ setLimits

    function test_setLimits_setsLimits() public {
        IBackstopVault.Limits memory l = IBackstopVault.Limits({
            bucketCapacity: 3_000_000e6,
            refillPerSecond: 1e6,
            reserveFloor: 5e6,
            withdrawCooldown: 0,
            emergencyDuration: 12 hours
        });
        IBackstopVault.SetLimits memory a = limitsAction(l);
        bytes memory blob = sigs(home.hashSetLimits(a), T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.LimitsSet(3_000_000e6, 1e6, 5e6, 0, 12 hours, a.id);
        home.setLimits(a, blob);
        IBackstopVault.Limits memory got = home.limits();
        assertEq(got.bucketCapacity, l.bucketCapacity);
        assertEq(got.refillPerSecond, l.refillPerSecond);
        assertEq(got.reserveFloor, l.reserveFloor);
        assertEq(got.withdrawCooldown, l.withdrawCooldown);
        assertEq(got.emergencyDuration, l.emergencyDuration);
    }

    function test_setLimits_capsBucketAtNewCapacity() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.bucketCapacity = 10_000e6;
        changeLimits(home, l);
        assertEq(home.bucketAvailable(), 10_000e6);
    }

    function test_setLimits_keepsBucketLevelWhenCapacityRises() public {
        register(validDraw());
        IBackstopVault.Limits memory l = defaultLimits();
        l.bucketCapacity = 5_000_000e6;
        changeLimits(home, l);
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY - HOME_LEG, "no free refill");
        vm.warp(block.timestamp + 100);
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY - HOME_LEG + 100 * REFILL_PER_SECOND);
    }

    function test_setLimits_revertsWhen_emergencyDurationZero() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.emergencyDuration = 0;
        IBackstopVault.SetLimits memory a = limitsAction(l);
        bytes memory blob = sigs(home.hashSetLimits(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidLimits.selector));
        home.setLimits(a, blob);
        assertFalse(home.actionUsed(a.id), "a refused change consumes no id");
    }

    function test_setLimits_revertsWhen_emergencyDurationAboveMax() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.emergencyDuration = 365 days + 1;
        IBackstopVault.SetLimits memory a = limitsAction(l);
        bytes memory blob = sigs(home.hashSetLimits(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidLimits.selector));
        home.setLimits(a, blob);
    }

    function test_setLimits_revertsWhen_cooldownAboveMax() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.withdrawCooldown = 365 days + 1;
        IBackstopVault.SetLimits memory a = limitsAction(l);
        bytes memory blob = sigs(home.hashSetLimits(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidLimits.selector));
        home.setLimits(a, blob);
    }

    function test_setLimits_revertsWhen_onlyPauseThreshold() public {
        IBackstopVault.SetLimits memory a = limitsAction(defaultLimits());
        bytes memory blob = sigs(home.hashSetLimits(a), P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P, T));
        home.setLimits(a, blob);
    }

    function test_setLimits_revertsWhen_idReplayed() public {
        IBackstopVault.SetLimits memory a = limitsAction(defaultLimits());
        bytes memory blob = sigs(home.hashSetLimits(a), T);
        home.setLimits(a, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.setLimits(a, blob);
    }

    function test_setLimits_revertsWhen_expired() public {
        IBackstopVault.SetLimits memory a = limitsAction(defaultLimits());
        bytes memory blob = sigs(home.hashSetLimits(a), T);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.setLimits(a, blob);
    }

    // ================================================================ rotateGuardians

    function test_rotateGuardians_replacesSet() public {
        uint256[] memory newKeys = keySet(11, 7);
        IBackstopVault.RotateGuardians memory a = rotateAction(newKeys, 5, 3);
        bytes memory blob = sigs(home.hashRotateGuardians(a), T);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.GuardiansSet(1, a.guardians, 5, 3, a.id);
        home.rotateGuardians(a, blob);

        assertEq(home.guardianSetIndex(), 1);
        assertEq(home.guardians(), a.guardians);
        assertEq(home.threshold(), 5);
        assertEq(home.pauseThreshold(), 3);
        for (uint256 i = 0; i < N; ++i) {
            assertFalse(home.isGuardian(guardians[i]), "old guardian removed");
        }
        for (uint256 i = 0; i < 7; ++i) {
            assertTrue(home.isGuardian(a.guardians[i]), "new guardian added");
        }
    }

    function test_rotateGuardians_oldSetCannotSignNewSetCan() public {
        uint256[] memory newKeys = keySet(11, 5);
        IBackstopVault.RotateGuardians memory a = rotateAction(newKeys, 3, 2);
        home.rotateGuardians(a, sigs(home.hashRotateGuardians(a), T));

        IBackstopVault.Draw memory d = validDraw();
        bytes32 digest = home.hashDraw(d);
        expectRegisterRevertWith(
            d, sigs(digest, T), abi.encodeWithSelector(IBackstopVault.SignerNotGuardian.selector, guardians[0])
        );
        expectRegisterRevertWith(
            d,
            signatures(newKeys, 2, digest),
            abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, 2, 3)
        );
        home.registerDraw(d, signatures(newKeys, 3, digest));
        assertEq(home.nextSeq(MEMBER), 1);

        IBackstopVault.Pause memory p = IBackstopVault.Pause({id: nextId(), deadline: deadlineIn(1 hours)});
        home.pause(p, signatures(newKeys, 2, home.hashPause(p)));
        assertTrue(home.paused());
    }

    function test_rotateGuardians_overlappingSetKeepsSharedGuardians() public {
        uint256[] memory newKeys = keySet(3, 4); // keys 3..6: shares keys 3 and 4
        IBackstopVault.RotateGuardians memory a = rotateAction(newKeys, 3, 2);
        home.rotateGuardians(a, sigs(home.hashRotateGuardians(a), T));
        assertTrue(home.isGuardian(vmx.addr(3)));
        assertTrue(home.isGuardian(vmx.addr(4)));
        assertFalse(home.isGuardian(vmx.addr(1)));
        assertFalse(home.isGuardian(vmx.addr(2)));
    }

    function test_rotateGuardians_revertsWhen_newSetInvalid() public {
        uint256[] memory newKeys = keySet(11, 4);
        (newKeys[0], newKeys[1]) = (newKeys[1], newKeys[0]);
        IBackstopVault.RotateGuardians memory a = rotateAction(newKeys, 3, 2);
        bytes memory blob = sigs(home.hashRotateGuardians(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        home.rotateGuardians(a, blob);
        assertEq(home.guardianSetIndex(), 0);
        assertTrue(home.isGuardian(guardians[0]), "old set kept");
    }

    function test_rotateGuardians_revertsWhen_thresholdNotMajority() public {
        IBackstopVault.RotateGuardians memory a = rotateAction(keySet(11, 6), 3, 2);
        bytes memory blob = sigs(home.hashRotateGuardians(a), T);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidGuardianSet.selector));
        home.rotateGuardians(a, blob);
    }

    function test_rotateGuardians_revertsWhen_onlyPauseThreshold() public {
        IBackstopVault.RotateGuardians memory a = rotateAction(keySet(11, 4), 3, 2);
        bytes memory blob = sigs(home.hashRotateGuardians(a), P);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InsufficientSignatures.selector, P, T));
        home.rotateGuardians(a, blob);
    }

    function test_rotateGuardians_revertsWhen_signedByNewSet() public {
        uint256[] memory newKeys = keySet(11, 4);
        IBackstopVault.RotateGuardians memory a = rotateAction(newKeys, 3, 2);
        bytes memory blob = signatures(newKeys, 3, home.hashRotateGuardians(a));
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.SignerNotGuardian.selector, vmx.addr(newKeys[0])));
        home.rotateGuardians(a, blob);
    }

    function test_rotateGuardians_revertsWhen_idReplayed() public {
        // Rotate to the same set, then replay the rotation.
        IBackstopVault.RotateGuardians memory a = rotateAction(keys, 3, 2);
        bytes memory blob = sigs(home.hashRotateGuardians(a), T);
        home.rotateGuardians(a, blob);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.ActionIdUsed.selector, a.id));
        home.rotateGuardians(a, blob);
        assertEq(home.guardianSetIndex(), 1);
    }

    function test_rotateGuardians_revertsWhen_expired() public {
        IBackstopVault.RotateGuardians memory a = rotateAction(keySet(11, 4), 3, 2);
        bytes memory blob = sigs(home.hashRotateGuardians(a), T);
        vm.warp(uint256(a.deadline) + 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.Expired.selector, a.deadline));
        home.rotateGuardians(a, blob);
    }

    // ================================================================ deposits and withdrawals

    function test_deposit_mintsSharesOneToOneOnFreshPool() public view {
        assertEq(home.balanceOf(lp), LIQUIDITY);
        assertEq(home.totalSupply(), LIQUIDITY);
        assertEq(home.totalAssets(), LIQUIDITY);
        assertEq(home.convertToAssets(1e6), 1e6);
    }

    function test_deposit_allowedWhilePaused() public {
        pauseVault(home);
        address late = makeAddr("late depositor");
        assertEq(depositFor(home, late, 1_000e6), 1_000e6);
        assertEq(home.totalAssets(), LIQUIDITY + 1_000e6);
    }

    function test_mint_allowedWhilePausedAndPreviewsMatch() public {
        pauseVault(home);
        address late = makeAddr("late minter");
        homeToken.mint(late, 1_000e6);
        vm.startPrank(late);
        homeToken.approve(address(home), 1_000e6);
        assertEq(home.previewMint(500e6), 500e6);
        assertEq(home.mint(500e6, late), 500e6, "assets pulled");
        vm.stopPrank();
        assertEq(home.balanceOf(late), 500e6);
        assertEq(home.maxDeposit(late), type(uint256).max, "a pause does not limit deposits");
        assertEq(home.maxMint(late), type(uint256).max);
        assertEq(home.convertToShares(1e6), 1e6);
    }

    function test_requestRedeem_escrowsShares() public {
        uint64 readyAt = uint64(block.timestamp + COOLDOWN);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.RedeemRequested(lp, 1_000e6, 1_000e6, readyAt);
        vm.prank(lp);
        home.requestRedeem(1_000e6);
        assertEq(home.balanceOf(lp), LIQUIDITY - 1_000e6);
        assertEq(home.balanceOf(address(home)), 1_000e6, "vault holds the escrow");
        assertEq(home.totalSupply(), LIQUIDITY, "escrowed shares still exist");
        IBackstopVault.RedeemRequest memory r = home.redeemRequest(lp);
        assertEq(r.shares, 1_000e6);
        assertEq(r.readyAt, readyAt);
    }

    function test_requestRedeem_accumulatesAndRestartsCooldown() public {
        vm.prank(lp);
        home.requestRedeem(1_000e6);
        vm.warp(block.timestamp + COOLDOWN - 1);
        uint64 readyAt = uint64(block.timestamp + COOLDOWN);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.RedeemRequested(lp, 500e6, 1_500e6, readyAt);
        vm.prank(lp);
        home.requestRedeem(500e6);
        IBackstopVault.RedeemRequest memory r = home.redeemRequest(lp);
        assertEq(r.shares, 1_500e6);
        assertEq(r.readyAt, readyAt, "cooldown restarted");
        assertEq(home.maxRedeem(lp), 0);
    }

    function test_requestRedeem_revertsWhen_zeroShares() public {
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidShares.selector));
        vm.prank(lp);
        home.requestRedeem(0);
    }

    function test_requestRedeem_revertsWhen_aboveBalance() public {
        vm.expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, lp, LIQUIDITY, LIQUIDITY + 1)
        );
        vm.prank(lp);
        home.requestRedeem(LIQUIDITY + 1);
    }

    function test_requestRedeem_revertsWhen_totalAboveUint128() public {
        address whale = makeAddr("whale");
        uint256 shares = depositFor(home, whale, uint256(type(uint128).max) + 1);
        assertGt(shares, type(uint128).max);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidShares.selector));
        vm.prank(whale);
        home.requestRedeem(shares);
    }

    function test_redeem_paysAfterCooldown() public {
        requestAndWait(1_000e6);
        assertEq(home.maxRedeem(lp), 1_000e6);
        assertEq(home.maxWithdraw(lp), 1_000e6);
        vm.expectEmit(true, true, true, true, address(home));
        emit IERC4626.Withdraw(lp, lp, lp, 1_000e6, 1_000e6);
        vm.prank(lp);
        uint256 assets = home.redeem(1_000e6, lp, lp);
        assertEq(assets, 1_000e6);
        assertEq(homeToken.balanceOf(lp), 1_000e6);
        assertEq(home.balanceOf(address(home)), 0, "escrow burned");
        assertEq(home.totalSupply(), LIQUIDITY - 1_000e6);
        assertEq(home.redeemRequest(lp).shares, 0);
    }

    function test_redeem_partialLeavesRestEscrowed() public {
        requestAndWait(1_000e6);
        vm.prank(lp);
        home.redeem(400e6, lp, lp);
        assertEq(home.redeemRequest(lp).shares, 600e6);
        assertEq(home.balanceOf(address(home)), 600e6);
        assertEq(home.maxRedeem(lp), 600e6);
    }

    function test_redeem_revertsWhen_cooldownActive() public {
        vm.prank(lp);
        home.requestRedeem(1_000e6);
        uint64 readyAt = uint64(block.timestamp + COOLDOWN);
        vm.warp(readyAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.CooldownActive.selector, readyAt));
        vm.prank(lp);
        home.redeem(1_000e6, lp, lp);
    }

    function test_redeem_revertsWhen_nothingRequested() public {
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.CooldownActive.selector, 0));
        vm.prank(lp);
        home.redeem(1, lp, lp);
    }

    function test_redeem_revertsWhen_aboveRequest() public {
        requestAndWait(1_000e6);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.RedeemExceedsRequest.selector, 1_000e6 + 1, 1_000e6));
        vm.prank(lp);
        home.redeem(1_000e6 + 1, lp, lp);
    }

    function test_redeem_revertsWhen_paused() public {
        requestAndWait(1_000e6);
        pauseVault(home);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.VaultPaused.selector));
        vm.prank(lp);
        home.redeem(1_000e6, lp, lp);
    }

    function test_withdraw_paysAfterCooldown() public {
        requestAndWait(1_000e6);
        vm.prank(lp);
        uint256 shares = home.withdraw(700e6, lp, lp);
        assertEq(shares, 700e6);
        assertEq(homeToken.balanceOf(lp), 700e6);
        assertEq(home.redeemRequest(lp).shares, 300e6);
    }

    function test_withdraw_revertsWhen_cooldownActive() public {
        vm.prank(lp);
        home.requestRedeem(1_000e6);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.CooldownActive.selector, block.timestamp + COOLDOWN));
        vm.prank(lp);
        home.withdraw(1_000e6, lp, lp);
    }

    function test_withdraw_revertsWhen_aboveRequest() public {
        requestAndWait(1_000e6);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.RedeemExceedsRequest.selector, 1_000e6 + 1, 1_000e6));
        vm.prank(lp);
        home.withdraw(1_000e6 + 1, lp, lp);
    }

    function test_withdraw_revertsWhen_paused() public {
        requestAndWait(1_000e6);
        pauseVault(home);
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.VaultPaused.selector));
        vm.prank(lp);
        home.withdraw(1_000e6, lp, lp);
    }

    function test_maxRedeem_zeroWhileCoolingOrPaused() public {
        assertEq(home.maxRedeem(lp), 0, "nothing requested");
        assertEq(home.maxWithdraw(lp), 0, "nothing requested");
        vm.prank(lp);
        home.requestRedeem(1_000e6);
        assertEq(home.maxRedeem(lp), 0, "cooling");
        assertEq(home.maxWithdraw(lp), 0, "cooling");
        vm.warp(block.timestamp + COOLDOWN);
        assertEq(home.maxRedeem(lp), 1_000e6, "ready");
        pauseVault(home);
        assertEq(home.maxRedeem(lp), 0, "paused");
        assertEq(home.maxWithdraw(lp), 0, "paused");
        vm.warp(block.timestamp + EMERGENCY_DURATION);
        assertEq(home.maxRedeem(lp), 1_000e6, "pause expired");
    }

    function test_cancelRedeem_returnsShares() public {
        vm.prank(lp);
        home.requestRedeem(1_000e6);
        vm.expectEmit(true, true, true, true, address(home));
        emit IBackstopVault.RedeemCancelled(lp, 1_000e6);
        vm.prank(lp);
        home.cancelRedeem();
        assertEq(home.balanceOf(lp), LIQUIDITY);
        assertEq(home.balanceOf(address(home)), 0);
        IBackstopVault.RedeemRequest memory r = home.redeemRequest(lp);
        assertEq(r.shares, 0);
        assertEq(r.readyAt, 0);
    }

    function test_cancelRedeem_revertsWhen_nothingRequested() public {
        vm.expectRevert(abi.encodeWithSelector(IBackstopVault.InvalidShares.selector));
        vm.prank(lp);
        home.cancelRedeem();
    }

    function test_redeem_byApprovedSpender() public {
        address spender = makeAddr("spender");
        vm.prank(lp);
        home.approve(spender, 1_500e6);
        requestAndWait(1_000e6);
        vm.prank(spender);
        home.redeem(1_000e6, spender, lp);
        assertEq(homeToken.balanceOf(spender), 1_000e6);
        assertEq(home.allowance(lp, spender), 500e6, "allowance spent");
        assertEq(home.redeemRequest(lp).shares, 0);
    }

    function test_redeem_revertsWhen_spenderNotApproved() public {
        address spender = makeAddr("spender");
        requestAndWait(1_000e6);
        vm.expectRevert(abi.encodeWithSelector(IERC20Errors.ERC20InsufficientAllowance.selector, spender, 0, 1_000e6));
        vm.prank(spender);
        home.redeem(1_000e6, spender, lp);
    }

    function test_payout_lowersSharePriceForAllShares() public {
        address second = makeAddr("second lp");
        depositFor(home, second, LIQUIDITY);
        vm.prank(lp);
        home.requestRedeem(LIQUIDITY);

        // A 400k payout on a 4M pool: every share, escrowed or not, loses 10%.
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, 0, 10 * uint256(CAP), 0, 400_000e6);
        register(d);
        assertEq(home.totalAssets(), 2 * LIQUIDITY - 400_000e6);
        assertEq(home.convertToAssets(1e6), 0.9e6);

        vm.warp(block.timestamp + COOLDOWN);
        vm.prank(lp);
        assertEq(home.redeem(LIQUIDITY, lp, lp), LIQUIDITY - 200_000e6, "escrowed shares bore the loss");
        assertEq(home.previewRedeem(home.balanceOf(second)), LIQUIDITY - 200_000e6, "the other lp too");
    }

    // ================================================================ views

    function test_member_unknownReadsZero() public view {
        IBackstopVault.Member memory m = home.member(OTHER_MEMBER);
        assertEq(m.recipient, address(0));
        assertEq(m.homeChainId, 0);
        assertEq(home.nextSeq(OTHER_MEMBER), 0);
        assertFalse(home.isFrozen(OTHER_MEMBER));
    }

    function test_member_readsRegistration() public view {
        IBackstopVault.Member memory m = home.member(MEMBER);
        assertEq(m.recipient, recipient);
        assertEq(m.homeChainId, HOME_CHAIN);
        assertEq(m.cap, CAP);
        assertEq(m.deductible, DEDUCTIBLE);
        assertEq(m.nextSeq, 0);
        assertEq(m.frozenUntil, 0);
    }

    function test_availableForPayout_boundedByBucket() public view {
        assertEq(home.availableForPayout(), BUCKET_CAPACITY);
    }

    function test_availableForPayout_boundedByBalanceAboveFloor() public {
        IBackstopVault.Limits memory l = defaultLimits();
        l.reserveFloor = 1_500_000e6;
        changeLimits(home, l);
        assertEq(home.availableForPayout(), 500_000e6);
        l.reserveFloor = LIQUIDITY + 1;
        changeLimits(home, l);
        assertEq(home.availableForPayout(), 0, "balance below floor");
    }

    function test_bucketAvailable_refillsLinearlyUpToCapacity() public {
        register(twoLegDraw(home, remote, 0, 10 * uint256(CAP), 0, CAP));
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY - CAP);
        vm.warp(block.timestamp + 1_000);
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY - CAP + 1_000 * REFILL_PER_SECOND);
        vm.warp(block.timestamp + 1 days);
        assertEq(home.bucketAvailable(), BUCKET_CAPACITY);
    }

    function test_constants() public view {
        assertEq(home.DOMAIN_NAME(), "BackstopVault");
        assertEq(home.DOMAIN_VERSION(), "1");
        assertEq(home.MAX_GUARDIANS(), 32);
        assertEq(home.MAX_LEGS(), 32);
        assertEq(home.MAX_DURATION(), 365 days);
    }

    function test_domainSeparator_matchesEip712() public {
        assertEq(home.domainSeparator(), expectedDomainSeparator(HOME_CHAIN, address(home)));
        vm.chainId(REMOTE_CHAIN);
        assertEq(remote.domainSeparator(), expectedDomainSeparator(REMOTE_CHAIN, address(remote)));
        // On a fork with another chain id, the separator follows the chain.
        vm.chainId(1);
        assertEq(home.domainSeparator(), expectedDomainSeparator(1, address(home)));
    }

    function test_eip712Domain_reportsDomainFields() public view {
        (
            bytes1 fields,
            string memory name,
            string memory version,
            uint256 chainId,
            address verifyingContract,
            bytes32 salt,
            uint256[] memory extensions
        ) = home.eip712Domain();
        assertEq(uint256(uint8(fields)), 0x0f, "name, version, chainId, verifyingContract");
        assertEq(name, "BackstopVault");
        assertEq(version, "1");
        assertEq(chainId, HOME_CHAIN);
        assertEq(verifyingContract, address(home));
        assertEq(salt, bytes32(0));
        assertEq(extensions.length, 0);
    }

    // ================================================================ digests, recomputed independently

    function expectedDomainSeparator(uint256 chainId, address vault) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("BackstopVault"),
                keccak256("1"),
                chainId,
                vault
            )
        );
    }

    function typedDigest(BackstopVault v, bytes32 structHash) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", expectedDomainSeparator(block.chainid, address(v)), structHash));
    }

    function test_hashDraw_matchesIndependentEncoding() public view {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](3);
        legs[0] = leg(REMOTE_CHAIN, address(remote), 100_000e6);
        legs[1] = leg(HOME_CHAIN, address(home), 70_000e6);
        legs[2] = leg(THIRD_CHAIN, address(0xC0FFEE), 50_000e6);
        IBackstopVault.Draw memory d = drawWithLegs(legs, 220_000e6);

        bytes32 legTypehash = keccak256("Leg(uint64 chainId,address vault,uint256 amount)");
        bytes32 drawTypehash = keccak256(
            "Draw(bytes32 member,uint64 seq,uint256 gap,uint256 amount,Leg[] legs,uint64 deadline,uint64 legDeadline)Leg(uint64 chainId,address vault,uint256 amount)"
        );
        bytes32 legsHash = keccak256(
            abi.encodePacked(
                keccak256(abi.encode(legTypehash, REMOTE_CHAIN, address(remote), 100_000e6)),
                keccak256(abi.encode(legTypehash, HOME_CHAIN, address(home), 70_000e6)),
                keccak256(abi.encode(legTypehash, THIRD_CHAIN, address(0xC0FFEE), 50_000e6))
            )
        );
        bytes32 structHash =
            keccak256(abi.encode(drawTypehash, MEMBER, d.seq, d.gap, d.amount, legsHash, d.deadline, d.legDeadline));
        assertEq(home.hashDraw(d), typedDigest(home, structHash));
    }

    function test_hashDraw_withoutLegsHashesEmptyArray() public view {
        IBackstopVault.Draw memory d = drawWithLegs(new IBackstopVault.Leg[](0), 0);
        bytes32 drawTypehash = keccak256(
            "Draw(bytes32 member,uint64 seq,uint256 gap,uint256 amount,Leg[] legs,uint64 deadline,uint64 legDeadline)Leg(uint64 chainId,address vault,uint256 amount)"
        );
        bytes32 structHash =
            keccak256(abi.encode(drawTypehash, MEMBER, d.seq, d.gap, 0, keccak256(""), d.deadline, d.legDeadline));
        assertEq(home.hashDraw(d), typedDigest(home, structHash));
    }

    function test_hashLegRelease_matchesIndependentEncoding() public {
        vm.chainId(REMOTE_CHAIN);
        IBackstopVault.LegRelease memory rel = legRelease(keccak256("draw"), 7, 123e6, 1_800_000_000);
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("LegRelease(bytes32 drawHash,bytes32 member,uint64 seq,uint256 amount,uint64 deadline)"),
                rel.drawHash,
                MEMBER,
                uint64(7),
                uint256(123e6),
                uint64(1_800_000_000)
            )
        );
        assertEq(remote.hashLegRelease(rel), typedDigest(remote, structHash));
    }

    function test_hashFreezeMember_matchesIndependentEncoding() public view {
        IBackstopVault.FreezeMember memory a =
            IBackstopVault.FreezeMember({member: MEMBER, id: keccak256("id"), deadline: 1_800_000_000});
        bytes32 structHash = keccak256(
            abi.encode(keccak256("FreezeMember(bytes32 member,bytes32 id,uint64 deadline)"), a.member, a.id, a.deadline)
        );
        assertEq(home.hashFreezeMember(a), typedDigest(home, structHash));
    }

    function test_hashUnfreezeMember_matchesIndependentEncoding() public view {
        IBackstopVault.UnfreezeMember memory a =
            IBackstopVault.UnfreezeMember({member: MEMBER, id: keccak256("id"), deadline: 1_800_000_000});
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("UnfreezeMember(bytes32 member,bytes32 id,uint64 deadline)"), a.member, a.id, a.deadline
            )
        );
        assertEq(home.hashUnfreezeMember(a), typedDigest(home, structHash));
    }

    function test_hashPauseAndUnpause_matchIndependentEncoding() public view {
        IBackstopVault.Pause memory p = IBackstopVault.Pause({id: keccak256("id"), deadline: 1_800_000_000});
        IBackstopVault.Unpause memory u = IBackstopVault.Unpause({id: keccak256("id"), deadline: 1_800_000_000});
        bytes32 pauseHash = keccak256(abi.encode(keccak256("Pause(bytes32 id,uint64 deadline)"), p.id, p.deadline));
        bytes32 unpauseHash = keccak256(abi.encode(keccak256("Unpause(bytes32 id,uint64 deadline)"), u.id, u.deadline));
        assertEq(home.hashPause(p), typedDigest(home, pauseHash));
        assertEq(home.hashUnpause(u), typedDigest(home, unpauseHash));
        assertNotEq(home.hashPause(p), home.hashUnpause(u), "same fields, different types");
    }

    function test_hashAlerts_matchIndependentEncoding() public view {
        IBackstopVault.RaiseAlert memory r =
            IBackstopVault.RaiseAlert({subject: MEMBER, level: 3, id: keccak256("id"), deadline: 1_800_000_000});
        IBackstopVault.ClearAlert memory c =
            IBackstopVault.ClearAlert({subject: MEMBER, id: keccak256("id"), deadline: 1_800_000_000});
        bytes32 raiseHash = keccak256(
            abi.encode(
                keccak256("RaiseAlert(bytes32 subject,uint8 level,bytes32 id,uint64 deadline)"),
                r.subject,
                r.level,
                r.id,
                r.deadline
            )
        );
        bytes32 clearHash = keccak256(
            abi.encode(keccak256("ClearAlert(bytes32 subject,bytes32 id,uint64 deadline)"), c.subject, c.id, c.deadline)
        );
        assertEq(home.hashRaiseAlert(r), typedDigest(home, raiseHash));
        assertEq(home.hashClearAlert(c), typedDigest(home, clearHash));
    }

    function test_hashSetMember_matchesIndependentEncoding() public view {
        IBackstopVault.SetMember memory a = IBackstopVault.SetMember({
            member: MEMBER,
            recipient: address(0xBEEF),
            homeChainId: 10,
            cap: 7e6,
            deductible: 1e6,
            coverageLimit: 70e6,
            coverageWindow: 3 days,
            id: keccak256("id"),
            deadline: 1_800_000_000
        });
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "SetMember(bytes32 member,address recipient,uint64 homeChainId,uint128 cap,uint128 deductible,uint128 coverageLimit,uint64 coverageWindow,bytes32 id,uint64 deadline)"
                ),
                a.member,
                a.recipient,
                a.homeChainId,
                a.cap,
                a.deductible,
                a.coverageLimit,
                a.coverageWindow,
                a.id,
                a.deadline
            )
        );
        assertEq(home.hashSetMember(a), typedDigest(home, structHash));
    }

    function test_hashSetLimits_matchesIndependentEncoding() public view {
        IBackstopVault.SetLimits memory a = IBackstopVault.SetLimits({
            bucketCapacity: 1,
            refillPerSecond: 2,
            reserveFloor: 3,
            withdrawCooldown: 4,
            emergencyDuration: 5,
            id: keccak256("id"),
            deadline: 1_800_000_000
        });
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "SetLimits(uint128 bucketCapacity,uint128 refillPerSecond,uint256 reserveFloor,uint64 withdrawCooldown,uint64 emergencyDuration,bytes32 id,uint64 deadline)"
                ),
                uint128(1),
                uint128(2),
                uint256(3),
                uint64(4),
                uint64(5),
                a.id,
                a.deadline
            )
        );
        assertEq(home.hashSetLimits(a), typedDigest(home, structHash));
    }

    function test_hashRotateGuardians_matchesIndependentEncoding() public view {
        address[] memory set = addressesOf(keySet(11, 3));
        IBackstopVault.RotateGuardians memory a = IBackstopVault.RotateGuardians({
            guardians: set, threshold: 2, pauseThreshold: 1, id: keccak256("id"), deadline: 1_800_000_000
        });
        // EIP-712 encodes an address[] as the hash of its elements, each padded to 32 bytes.
        bytes32 guardiansHash = keccak256(
            abi.encode(
                bytes32(uint256(uint160(set[0]))), bytes32(uint256(uint160(set[1]))), bytes32(uint256(uint160(set[2])))
            )
        );
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256(
                    "RotateGuardians(address[] guardians,uint8 threshold,uint8 pauseThreshold,bytes32 id,uint64 deadline)"
                ),
                guardiansHash,
                uint8(2),
                uint8(1),
                a.id,
                a.deadline
            )
        );
        assertEq(home.hashRotateGuardians(a), typedDigest(home, structHash));
    }
}
