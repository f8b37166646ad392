// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BackstopVault} from "../../src/BackstopVault.sol";
import {IBackstopVault} from "../../src/IBackstopVault.sol";
import {MockToken} from "../../src/fixtures/MockToken.sol";
import {VaultHelpers} from "./VaultFixture.sol";

/// @notice Drives random sequences against a home vault (chain 31337) and a remote vault
///         (chain 10) of one member: deposits, redemptions, draws (valid and invalid), leg
///         releases (honest, replayed and forged), pauses, freezes and time. Ghost variables
///         record what was paid, per vault, per draw and per seq, from token balance deltas, and
///         every payment a vault counts against the member's coverage window with its time (the
///         home vault: whole registered draws; the remote vault: legs). A reference model of the
///         two-epoch coverage record predicts which draws and legs the window lets through.
///         Calls the model expects to fail but that succeed, or the reverse, are counted as
///         mismatches for the invariants to check (a handler revert would only be discarded).
contract BackstopHandler is VaultHelpers {
    struct DrawRecord {
        bytes32 drawHash;
        uint256 gap;
        uint256 amount;
        uint256 remoteAmount;
        uint256 homeAmount;
        uint64 deadline;
        uint64 legDeadline;
    }

    /// @notice A payment counted against the member's coverage window on one vault.
    struct Payment {
        uint64 time;
        uint256 amount;
    }

    /// @notice The model of a vault's coverage record of the member (see `BackstopVault._coverageAfter`).
    struct CoverageModel {
        uint256 limit;
        uint256 window;
        uint256 epoch;
        uint256 previous;
        uint256 current;
    }

    BackstopVault public immutable home;
    BackstopVault public immutable remote;
    uint256 public immutable threshold;
    uint256 public immutable pauseThreshold;
    address public immutable recipient;

    uint256[] internal keys;
    address[] internal actors;

    // ---------------------------------------------------------------- ghosts

    /// @notice Registered draws, indexed by seq.
    DrawRecord[] public draws;
    /// @notice Seqs of registered draws that have a remote leg.
    uint64[] public drawsWithRemoteLeg;

    mapping(address vault => uint256) public ghostDeposits;
    mapping(address vault => uint256) public ghostWithdrawals;
    mapping(address vault => uint256) public ghostPayouts;
    /// @notice Amount and number of payouts by a vault for a draw hash.
    mapping(address vault => mapping(bytes32 drawHash => uint256)) public paidForDraw;
    mapping(address vault => mapping(bytes32 drawHash => uint256)) public payoutsForDraw;
    /// @notice Paid on both vaults for the member's incident `seq`.
    mapping(uint64 seq => uint256) public paidForSeq;
    /// @notice Successful registrations per seq.
    mapping(uint64 seq => uint256) public registrations;

    /// @notice Payments counted against the coverage window, per vault, in time order.
    mapping(address vault => Payment[]) internal coveragePayments;
    mapping(address vault => CoverageModel) internal coverageModel;
    /// @notice Draws and legs the model expected the coverage window to refuse.
    uint256 public coverageRefusals;

    /// @notice Calls whose outcome differed from the model (success expected and refused, or the reverse).
    uint256 public mismatches;
    /// @notice Calls that must fail whatever the state (forged, replayed, over gap or cap) and did not.
    uint256 public forbiddenSuccesses;

    mapping(string action => uint256) public calls;
    mapping(string action => uint256) public successes;
    uint256 public totalCalls;

    constructor(
        BackstopVault home_,
        BackstopVault remote_,
        uint256[] memory keys_,
        address recipient_,
        address[] memory actors_
    ) {
        home = home_;
        remote = remote_;
        keys = keys_;
        recipient = recipient_;
        actors = actors_;
        threshold = home_.threshold();
        pauseThreshold = home_.pauseThreshold();
        ghostDeposits[address(home_)] = home_.totalAssets();
        ghostDeposits[address(remote_)] = remote_.totalAssets();
        initCoverageModel(home_);
        initCoverageModel(remote_);
    }

    /// @dev Takes the member's coverage parameters from the vault and starts with nothing used:
    ///      the handler must be deployed before any draw or leg.
    function initCoverageModel(BackstopVault v) internal {
        IBackstopVault.Member memory m = v.member(MEMBER);
        coverageModel[address(v)] =
            CoverageModel({limit: m.coverageLimit, window: m.coverageWindow, epoch: 0, previous: 0, current: 0});
    }

    // ---------------------------------------------------------------- views for the invariants

    function drawCount() external view returns (uint256) {
        return draws.length;
    }

    function actorList() external view returns (address[] memory) {
        return actors;
    }

    function drawRecord(uint256 seq) external view returns (DrawRecord memory) {
        return draws[seq];
    }

    /// @notice What the model of `vault`'s coverage record lets pay the member now.
    function coverageAvailableModel(BackstopVault vault) external view returns (uint256) {
        (, uint256 previous, uint256 current) = coverageUsage(vault);
        uint256 limit = coverageModel[address(vault)].limit;
        return previous + current >= limit ? 0 : limit - previous - current;
    }

    /// @notice Payments the vault counted against the member's coverage window, in time order.
    function coveragePaymentsOf(address vault) external view returns (Payment[] memory) {
        return coveragePayments[vault];
    }

    // ---------------------------------------------------------------- depositors

    function deposit(uint256 actorSeed, uint256 vaultSeed, uint256 amount) external {
        count("deposit");
        BackstopVault v = pickVault(vaultSeed);
        address actor = pickActor(actorSeed);
        amount = bound(amount, 1, 1_000_000e6);
        MockToken token = MockToken(v.asset());
        token.mint(actor, amount);
        vm.prank(actor);
        token.approve(address(v), amount);
        enter(v);
        uint256 before = balanceOf(v);
        vm.prank(actor);
        try v.deposit(amount, actor) {
            ghostDeposits[address(v)] += balanceOf(v) - before;
            record("deposit", true, true);
        } catch {
            record("deposit", false, true);
        }
        vm.chainId(HOME_CHAIN);
    }

    function requestRedeem(uint256 actorSeed, uint256 vaultSeed, uint256 shares) external {
        count("requestRedeem");
        BackstopVault v = pickVault(vaultSeed);
        address actor = pickActor(actorSeed);
        uint256 balance = v.balanceOf(actor);
        if (balance == 0) return;
        shares = bound(shares, 1, balance);
        enter(v);
        vm.prank(actor);
        try v.requestRedeem(shares) {
            record("requestRedeem", true, true);
        } catch {
            record("requestRedeem", false, true);
        }
        vm.chainId(HOME_CHAIN);
    }

    function cancelRedeem(uint256 actorSeed, uint256 vaultSeed) external {
        count("cancelRedeem");
        BackstopVault v = pickVault(vaultSeed);
        address actor = pickActor(actorSeed);
        bool expected = v.redeemRequest(actor).shares > 0;
        enter(v);
        vm.prank(actor);
        try v.cancelRedeem() {
            record("cancelRedeem", true, expected);
        } catch {
            record("cancelRedeem", false, expected);
        }
        vm.chainId(HOME_CHAIN);
    }

    function redeem(uint256 actorSeed, uint256 vaultSeed, uint256 shares) external {
        count("redeem");
        BackstopVault v = pickVault(vaultSeed);
        address actor = pickActor(actorSeed);
        IBackstopVault.RedeemRequest memory r = v.redeemRequest(actor);
        shares = bound(shares, 1, r.shares > 0 ? r.shares : 1);
        bool expected = !v.paused() && r.shares > 0 && block.timestamp >= r.readyAt;
        enter(v);
        uint256 before = balanceOf(v);
        vm.prank(actor);
        try v.redeem(shares, actor, actor) {
            ghostWithdrawals[address(v)] += before - balanceOf(v);
            record("redeem", true, expected);
        } catch {
            record("redeem", false, expected);
        }
        vm.chainId(HOME_CHAIN);
    }

    function withdraw(uint256 actorSeed, uint256 vaultSeed, uint256 assets) external {
        count("withdraw");
        BackstopVault v = pickVault(vaultSeed);
        address actor = pickActor(actorSeed);
        uint256 max = v.maxWithdraw(actor);
        assets = bound(assets, 1, max > 0 ? max : 1);
        bool expected = assets <= max;
        enter(v);
        uint256 before = balanceOf(v);
        vm.prank(actor);
        try v.withdraw(assets, actor, actor) {
            ghostWithdrawals[address(v)] += before - balanceOf(v);
            record("withdraw", true, expected);
        } catch {
            record("withdraw", false, expected);
        }
        vm.chainId(HOME_CHAIN);
    }

    // ---------------------------------------------------------------- draws

    /// @notice Mode 0-2: a valid draw for the next seq signed by t guardians; 3: by all of them.
    ///         Mode 4: above gap - deductible; 5: above the cap (both signed by all guardians);
    ///         6: replay of a registered draw; 7: a fresh draw signed by a byzantine minority.
    function registerDraw(uint256 gapSeed, uint256 remoteSeed, uint256 homeSeed, uint256 mode) external {
        count("registerDraw");
        mode %= 8;
        if (mode == 6) return replayDraw(gapSeed);
        IBackstopVault.Draw memory d = buildDraw(gapSeed, remoteSeed, homeSeed, mode);
        bytes32 digest = home.hashDraw(d);
        bytes memory blob = mode == 7
            ? minoritySignatures(digest, homeSeed)
            : signatures(keys, mode >= 3 ? keys.length : threshold, digest);
        submitDraw(d, blob, mode >= 4);
    }

    function buildDraw(uint256 gapSeed, uint256 remoteSeed, uint256 homeSeed, uint256 mode)
        internal
        view
        returns (IBackstopVault.Draw memory)
    {
        uint256 gap = bound(gapSeed, 0, 1_000_000e6);
        uint256 coverable = gap > DEDUCTIBLE ? gap - DEDUCTIBLE : 0;
        uint256 remoteAmount;
        uint256 homeAmount;
        if (mode == 4) {
            // Above gap - deductible.
            remoteAmount = bound(remoteSeed, 0, 300_000e6);
            homeAmount = bound(homeSeed, 0, 300_000e6);
            if (remoteAmount + homeAmount <= coverable) homeAmount = coverable + 1 - remoteAmount;
        } else if (mode == 5) {
            // Above the cap, within the gap.
            gap = 10 * uint256(CAP);
            remoteAmount = bound(remoteSeed, 0, CAP);
            homeAmount = uint256(CAP) + 1 - remoteAmount + bound(homeSeed, 0, 100_000e6);
        } else {
            uint256 limit = coverable < CAP ? coverable : CAP;
            remoteAmount = bound(remoteSeed, 0, limit);
            homeAmount = bound(homeSeed, 0, limit - remoteAmount);
        }
        return twoLegDraw(home, remote, home.nextSeq(MEMBER), gap, remoteAmount, homeAmount);
    }

    function submitDraw(IBackstopVault.Draw memory d, bytes memory blob, bool mustFail) internal {
        (uint256 remoteAmount, uint256 homeAmount) = legAmounts(d);
        bool covered = coverageFits(home, d.amount);
        if (!covered && !mustFail) ++coverageRefusals;
        bool expected = !mustFail && !home.paused() && !home.isFrozen(MEMBER) && covered && payoutFits(home, homeAmount);
        uint256 before = balanceOf(home);
        try home.registerDraw(d, blob) returns (bytes32 drawHash) {
            noteCoverage(home, d.amount);
            registrations[d.seq] += 1;
            draws.push(
                DrawRecord({
                    drawHash: drawHash,
                    gap: d.gap,
                    amount: d.amount,
                    remoteAmount: remoteAmount,
                    homeAmount: homeAmount,
                    deadline: d.deadline,
                    legDeadline: d.legDeadline
                })
            );
            if (remoteAmount > 0) drawsWithRemoteLeg.push(d.seq);
            notePayout(home, drawHash, d.seq, before - balanceOf(home));
            if (mustFail) ++forbiddenSuccesses;
            record("registerDraw", true, expected);
        } catch {
            record("registerDraw", false, expected);
        }
    }

    function legAmounts(IBackstopVault.Draw memory d) internal pure returns (uint256 remoteAmount, uint256 homeAmount) {
        for (uint256 i = 0; i < d.legs.length; ++i) {
            if (d.legs[i].chainId == REMOTE_CHAIN) remoteAmount = d.legs[i].amount;
            if (d.legs[i].chainId == HOME_CHAIN) homeAmount = d.legs[i].amount;
        }
    }

    /// @dev Resubmits a registered draw with fresh t signatures: it must be refused.
    function replayDraw(uint256 seed) internal {
        calls["replayDraw"] += 1;
        if (draws.length == 0) return;
        uint64 seq = uint64(seed % draws.length);
        DrawRecord memory r = draws[seq];
        IBackstopVault.Draw memory d = twoLegDraw(home, remote, seq, r.gap, r.remoteAmount, r.homeAmount);
        d.deadline = r.deadline;
        d.legDeadline = r.legDeadline;
        bytes memory blob = signatures(keys, threshold, home.hashDraw(d));
        uint256 before = balanceOf(home);
        try home.registerDraw(d, blob) {
            ++forbiddenSuccesses;
            noteCoverage(home, d.amount);
            notePayout(home, r.drawHash, seq, before - balanceOf(home));
            record("replayDraw", true, false);
        } catch {
            record("replayDraw", false, false);
        }
    }

    /// @notice Mode 0-2: the honest release of a registered remote leg (t signatures of the
    ///         registered amount; repeated calls are replays). Mode 3: a forged release with an
    ///         inflated amount signed by a byzantine minority.
    function releaseLeg(uint256 drawSeed, uint256 mode, uint256 forgerySeed) external {
        count("releaseLeg");
        if (drawsWithRemoteLeg.length == 0) return;
        // Mostly one of the three latest draws: older legs have often passed their deadline.
        uint256 n = drawsWithRemoteLeg.length;
        uint256 back = drawSeed % 4 == 0 ? drawSeed % n : drawSeed % (n < 3 ? n : 3);
        uint64 seq = drawsWithRemoteLeg[n - 1 - back];
        DrawRecord memory r = draws[seq];
        bool forged = mode % 4 == 3;
        IBackstopVault.LegRelease memory rel = legRelease(
            r.drawHash, seq, forged ? r.remoteAmount + 1 + forgerySeed % CAP : r.remoteAmount, r.legDeadline
        );

        vm.chainId(REMOTE_CHAIN);
        bytes32 digest = remote.hashLegRelease(rel);
        bytes memory blob = forged ? minoritySignatures(digest, forgerySeed) : signatures(keys, threshold, digest);
        bool covered = coverageFits(remote, rel.amount);
        bool expected = !forged && remote.drawOf(MEMBER, seq) == bytes32(0) && !remote.isFrozen(MEMBER)
            && block.timestamp <= rel.deadline && covered && payoutFits(remote, rel.amount);
        if (!covered && !forged) ++coverageRefusals;
        uint256 before = balanceOf(remote);
        try remote.releaseLeg(rel, blob) {
            noteCoverage(remote, rel.amount);
            notePayout(remote, r.drawHash, seq, before - balanceOf(remote));
            if (forged) ++forbiddenSuccesses;
            record("releaseLeg", true, expected);
        } catch {
            record("releaseLeg", false, expected);
        }
        vm.chainId(HOME_CHAIN);
    }

    // ---------------------------------------------------------------- breakers and time

    /// @notice Pauses a vault (p signatures) or, two times in three, lifts its pause (t signatures).
    function pauseOrUnpause(uint256 vaultSeed, uint256 liftSeed) external {
        count("pauseOrUnpause");
        BackstopVault v = pickVault(vaultSeed);
        bool lift = liftSeed % 3 != 0;
        enter(v);
        bool ok;
        if (lift) {
            IBackstopVault.Unpause memory a = IBackstopVault.Unpause({id: nextId(), deadline: deadlineIn(1 hours)});
            try v.unpause(a, signatures(keys, threshold, v.hashUnpause(a))) {
                ok = true;
            } catch {}
        } else {
            IBackstopVault.Pause memory a = IBackstopVault.Pause({id: nextId(), deadline: deadlineIn(1 hours)});
            try v.pause(a, signatures(keys, pauseThreshold, v.hashPause(a))) {
                ok = true;
            } catch {}
        }
        record("pauseOrUnpause", ok, true);
        vm.chainId(HOME_CHAIN);
    }

    /// @notice Freezes the member on a vault (p signatures) or, two times in three, lifts it (t signatures).
    function freezeOrUnfreeze(uint256 vaultSeed, uint256 liftSeed) external {
        count("freezeOrUnfreeze");
        BackstopVault v = pickVault(vaultSeed);
        bool lift = liftSeed % 3 != 0;
        enter(v);
        bool ok;
        if (lift) {
            IBackstopVault.UnfreezeMember memory a =
                IBackstopVault.UnfreezeMember({member: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
            try v.unfreezeMember(a, signatures(keys, threshold, v.hashUnfreezeMember(a))) {
                ok = true;
            } catch {}
        } else {
            IBackstopVault.FreezeMember memory a =
                IBackstopVault.FreezeMember({member: MEMBER, id: nextId(), deadline: deadlineIn(1 hours)});
            try v.freezeMember(a, signatures(keys, pauseThreshold, v.hashFreezeMember(a))) {
                ok = true;
            } catch {}
        }
        record("freezeOrUnfreeze", ok, true);
        vm.chainId(HOME_CHAIN);
    }

    function warp(uint256 secondsForward) external {
        count("warp");
        vm.warp(block.timestamp + bound(secondsForward, 0, 1 days));
        successes["warp"] += 1;
    }

    // ---------------------------------------------------------------- internals

    /// @dev Whether the vault's bucket and reserve floor allow paying `amount` now.
    function payoutFits(BackstopVault v, uint256 amount) internal view returns (bool) {
        if (amount == 0) return true;
        uint256 balance = balanceOf(v);
        return amount <= v.bucketAvailable() && balance >= amount && balance - amount >= v.limits().reserveFloor;
    }

    /// @dev Usage `(previous, current)` of the model of `v`'s coverage record now.
    function coverageUsage(BackstopVault v) internal view returns (uint256 epoch, uint256 previous, uint256 current) {
        CoverageModel storage c = coverageModel[address(v)];
        epoch = block.timestamp / c.window;
        if (epoch == c.epoch) return (epoch, c.previous, c.current);
        if (epoch == c.epoch + 1) return (epoch, c.current, 0);
        return (epoch, 0, 0);
    }

    /// @dev Whether the model of `v`'s coverage window lets `amount` through now.
    function coverageFits(BackstopVault v, uint256 amount) internal view returns (bool) {
        (, uint256 previous, uint256 current) = coverageUsage(v);
        return previous + current + amount <= coverageModel[address(v)].limit;
    }

    /// @dev Records a payment `v` counted against the coverage window, in the model and the log.
    function noteCoverage(BackstopVault v, uint256 amount) internal {
        (uint256 epoch, uint256 previous, uint256 current) = coverageUsage(v);
        CoverageModel storage c = coverageModel[address(v)];
        (c.epoch, c.previous, c.current) = (epoch, previous, current + amount);
        coveragePayments[address(v)].push(Payment({time: uint64(block.timestamp), amount: amount}));
    }

    /// @dev t signatures that a byzantine minority (fewer than t guardians) can produce.
    function minoritySignatures(bytes32 digest, uint256 seed) internal view returns (bytes memory blob) {
        uint256 kind = seed % 3;
        if (kind == 0) return signatures(keys, threshold - 1, digest); // too few
        uint256[] memory signers = new uint256[](threshold);
        for (uint256 i = 0; i < threshold; ++i) {
            // kind 1: one guardian repeated; kind 2: outsiders' keys.
            signers[i] = kind == 1 ? keys[0] : 1_000 + i;
        }
        if (kind == 2) sortByAddress(signers);
        return signatures(signers, digest);
    }

    function notePayout(BackstopVault v, bytes32 drawHash, uint64 seq, uint256 paid) internal {
        if (paid == 0) return;
        ghostPayouts[address(v)] += paid;
        paidForDraw[address(v)][drawHash] += paid;
        payoutsForDraw[address(v)][drawHash] += 1;
        paidForSeq[seq] += paid;
    }

    function record(string memory action, bool ok, bool expected) internal {
        if (ok) successes[action] += 1;
        if (ok != expected) ++mismatches;
    }

    function count(string memory action) internal {
        calls[action] += 1;
        ++totalCalls;
    }

    /// @dev Switches `block.chainid` to the vault's chain.
    function enter(BackstopVault v) internal {
        vm.chainId(address(v) == address(remote) ? REMOTE_CHAIN : HOME_CHAIN);
    }

    function pickVault(uint256 seed) internal view returns (BackstopVault) {
        return seed % 2 == 0 ? home : remote;
    }

    function pickActor(uint256 seed) internal view returns (address) {
        return actors[seed % actors.length];
    }

    function balanceOf(BackstopVault v) internal view returns (uint256) {
        return IERC20(v.asset()).balanceOf(address(v));
    }
}
