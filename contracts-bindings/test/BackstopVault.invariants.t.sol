// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BackstopVault} from "../src/BackstopVault.sol";
import {IBackstopVault} from "../src/IBackstopVault.sol";
import {BackstopHandler} from "./utils/BackstopHandler.sol";
import {VaultFixture} from "./utils/VaultFixture.sol";

/// @notice The design's invariants under random sequences of deposits, redemptions, draws,
///         leg releases (including replays and forgeries), pauses, freezes and time.
contract BackstopVaultInvariantTest is VaultFixture {
    /// @dev The member's coverage on both vaults in these runs: tight enough that the window
    ///      refuses draws and legs in most runs (draws are up to the 500k cap, time moves up
    ///      to a day per call), loose enough that most payments go through.
    uint128 internal constant RUN_COVERAGE_LIMIT = 800_000e6;
    uint64 internal constant RUN_COVERAGE_WINDOW = 1 days;

    BackstopHandler internal handler;
    address[] internal actors;

    function setUp() public override {
        super.setUp();
        // Shorter cooldown and emergency states than the fixture's, so that a run of 64 calls
        // sees redemptions mature and breakers expire.
        IBackstopVault.Limits memory l = defaultLimits();
        l.withdrawCooldown = 1 days;
        l.emergencyDuration = 1 days;
        changeLimits(home, l);
        vm.chainId(REMOTE_CHAIN);
        changeLimits(remote, l);
        vm.chainId(HOME_CHAIN);
        setRunCoverage(home, HOME_CHAIN);
        setRunCoverage(remote, REMOTE_CHAIN);
        actors.push(lp);
        actors.push(makeAddr("lp2"));
        actors.push(makeAddr("lp3"));
        handler = new BackstopHandler(home, remote, keys, recipient, actors);

        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = BackstopHandler.deposit.selector;
        selectors[1] = BackstopHandler.requestRedeem.selector;
        selectors[2] = BackstopHandler.cancelRedeem.selector;
        selectors[3] = BackstopHandler.redeem.selector;
        selectors[4] = BackstopHandler.withdraw.selector;
        selectors[5] = BackstopHandler.registerDraw.selector;
        selectors[6] = BackstopHandler.registerDraw.selector; // draws twice as often
        selectors[7] = BackstopHandler.releaseLeg.selector;
        selectors[8] = BackstopHandler.pauseOrUnpause.selector;
        selectors[9] = BackstopHandler.freezeOrUnfreeze.selector;
        selectors[10] = BackstopHandler.warp.selector;
        targetSelector(FuzzSelector({addr: address(handler), selectors: selectors}));
    }

    /// @notice Payout safety, checked after every handler call: no leg paid twice, nothing
    ///         paid beyond the registered draw or the incident's coverage, one draw per seq, and
    ///         every call behaved as the model predicts (nothing forged or replayed accepted).
    function invariant_payouts() public view {
        checkNoLegPaidTwice();
        checkPaidWithinRegisteredDraw();
        checkPaidPerIncidentWithinCoverage();
        checkOneDrawPerSeq();
        checkOutcomesMatchModel();
    }

    /// @notice The coverage window, checked after every handler call: what one vault counted for
    ///         the member (home: whole registered draws; remote: legs) within any interval of
    ///         length `coverageWindow` is at most `coverageLimit`; the handler's log holds every
    ///         payment; the vault's view agrees with the handler's model of the record.
    function invariant_coverageWindow() public view {
        checkCoverageWindows(home);
        checkCoverageWindows(remote);
        uint256 registered = 0;
        for (uint256 seq = 0; seq < handler.drawCount(); ++seq) {
            registered += handler.drawRecord(seq).amount;
        }
        assertEq(sumOf(handler.coveragePaymentsOf(address(home))), registered, "home log vs registered draws");
        assertEq(
            sumOf(handler.coveragePaymentsOf(address(remote))),
            handler.ghostPayouts(address(remote)),
            "remote log vs legs"
        );
        assertEq(home.coverageAvailable(MEMBER), handler.coverageAvailableModel(home), "home view vs model");
        assertEq(remote.coverageAvailable(MEMBER), handler.coverageAvailableModel(remote), "remote view vs model");
    }

    /// @notice Depositor accounting, checked after every handler call: assets and shares are
    ///         conserved and the outflow bucket stays within its capacity.
    function invariant_accounting() public view {
        checkAssets(home);
        checkAssets(remote);
        checkShares(home);
        checkShares(remote);
        assertLe(home.bucketAvailable(), home.limits().bucketCapacity, "home bucket above capacity");
        assertLe(remote.bucketAvailable(), remote.limits().bucketCapacity, "remote bucket above capacity");
    }

    /// @notice The run really exercised the handler (guards against a vacuous pass).
    function afterInvariant() public view {
        assertGt(handler.totalCalls(), 0, "no handler calls");
    }

    function setRunCoverage(BackstopVault v, uint64 chainId) internal {
        vm.chainId(chainId);
        IBackstopVault.SetMember memory a =
            setMemberAction(MEMBER, recipient, HOME_CHAIN, CAP, DEDUCTIBLE, RUN_COVERAGE_LIMIT, RUN_COVERAGE_WINDOW);
        v.setMember(a, sigs(v.hashSetMember(a), T));
        vm.chainId(HOME_CHAIN);
    }

    /// @dev Every closed interval [t - W, t] ending at a payment time t holds at most the limit
    ///      (an interval holding the most ends at a payment, and the log is in time order).
    function checkCoverageWindows(BackstopVault v) internal view {
        IBackstopVault.Member memory m = v.member(MEMBER);
        BackstopHandler.Payment[] memory p = handler.coveragePaymentsOf(address(v));
        for (uint256 i = 0; i < p.length; ++i) {
            uint256 inWindow = 0;
            for (uint256 j = 0; j <= i; ++j) {
                if (uint256(p[j].time) + m.coverageWindow >= p[i].time) inWindow += p[j].amount;
            }
            assertLe(inWindow, m.coverageLimit, "paid above the coverage limit within one window");
        }
    }

    function sumOf(BackstopHandler.Payment[] memory p) internal pure returns (uint256 total) {
        for (uint256 i = 0; i < p.length; ++i) {
            total += p[i].amount;
        }
    }

    function checkAssets(BackstopVault v) internal view {
        uint256 expected =
            handler.ghostDeposits(address(v)) - handler.ghostWithdrawals(address(v)) - handler.ghostPayouts(address(v));
        assertEq(v.totalAssets(), expected, "totalAssets vs ghosts");
        assertEq(IERC20(v.asset()).balanceOf(address(v)), v.totalAssets(), "balance vs totalAssets");
    }

    function checkShares(BackstopVault v) internal view {
        uint256 held = 0;
        uint256 requested = 0;
        for (uint256 i = 0; i < actors.length; ++i) {
            held += v.balanceOf(actors[i]);
            requested += v.redeemRequest(actors[i]).shares;
        }
        uint256 escrow = v.balanceOf(address(v));
        assertEq(v.totalSupply(), held + escrow, "supply vs balances + escrow");
        assertEq(escrow, requested, "escrow vs requests");
    }

    /// @dev Each vault pays a draw at most once: the home leg at registration, a remote leg on release.
    function checkNoLegPaidTwice() internal view {
        for (uint256 seq = 0; seq < handler.drawCount(); ++seq) {
            bytes32 h = handler.drawRecord(seq).drawHash;
            assertLe(handler.payoutsForDraw(address(home), h), 1, "home paid twice");
            assertLe(handler.payoutsForDraw(address(remote), h), 1, "remote paid twice");
            bool paid = handler.payoutsForDraw(address(remote), h) == 1;
            assertEq(remote.drawOf(MEMBER, uint64(seq)), paid ? h : bytes32(0), "leg recorded per incident");
        }
    }

    /// @dev A draw paid at most its registered amount: exactly the home leg at home, nothing or
    ///      exactly the remote leg on the remote vault.
    function checkPaidWithinRegisteredDraw() internal view {
        for (uint256 seq = 0; seq < handler.drawCount(); ++seq) {
            BackstopHandler.DrawRecord memory r = handler.drawRecord(seq);
            uint256 paidHome = handler.paidForDraw(address(home), r.drawHash);
            uint256 paidRemote = handler.paidForDraw(address(remote), r.drawHash);
            assertLe(paidHome + paidRemote, r.amount, "paid above the registered draw");
            assertEq(paidHome, r.homeAmount, "home leg");
            assertTrue(paidRemote == 0 || paidRemote == r.remoteAmount, "remote leg");
        }
    }

    /// @dev No over-coverage: an incident paid at most min(gap - deductible, cap).
    function checkPaidPerIncidentWithinCoverage() internal view {
        for (uint64 seq = 0; seq < handler.drawCount(); ++seq) {
            uint256 gap = handler.drawRecord(seq).gap;
            uint256 coverable = gap > DEDUCTIBLE ? gap - DEDUCTIBLE : 0;
            uint256 limit = coverable < CAP ? coverable : CAP;
            assertLe(handler.paidForSeq(seq), limit, "over-coverage");
        }
    }

    /// @dev At most one registered draw per (member, seq), and the vault's record matches it.
    function checkOneDrawPerSeq() internal view {
        uint256 n = handler.drawCount();
        assertEq(home.nextSeq(MEMBER), n, "nextSeq counts registrations");
        for (uint64 seq = 0; seq <= n; ++seq) {
            assertLe(handler.registrations(seq), 1, "two draws for one seq");
            bytes32 expected = seq < n ? handler.drawRecord(seq).drawHash : bytes32(0);
            assertEq(home.drawOf(MEMBER, seq), expected, "drawOf");
        }
        assertEq(remote.nextSeq(MEMBER), 0, "the remote vault registers nothing");
    }

    function checkOutcomesMatchModel() internal view {
        assertEq(handler.forbiddenSuccesses(), 0, "forged, replayed or excessive call accepted");
        assertEq(handler.mismatches(), 0, "outcome differs from the model");
    }
}
