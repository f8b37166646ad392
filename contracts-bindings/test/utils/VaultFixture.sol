// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BackstopVault} from "../../src/BackstopVault.sol";
import {IBackstopVault} from "../../src/IBackstopVault.sol";
import {MockToken} from "../../src/fixtures/MockToken.sol";
import {BaseTest} from "./BaseTest.sol";
import {Signers} from "./Signers.sol";

/// @notice Parameters and builders shared by the unit tests and the invariant handler.
abstract contract VaultHelpers is Signers {
    /// @dev Forge's default chain id: the member's home chain.
    uint64 internal constant HOME_CHAIN = 31337;
    /// @dev Chain of the remote vault; tests switch `block.chainid` to it around remote calls.
    uint64 internal constant REMOTE_CHAIN = 10;
    /// @dev A third chain whose vault is not deployed (its leg is only signed, never paid here).
    uint64 internal constant THIRD_CHAIN = 42161;

    bytes32 internal constant MEMBER = keccak256("member:perps-dex");
    uint128 internal constant CAP = 500_000e6;
    uint128 internal constant DEDUCTIBLE = 50_000e6;
    /// @dev The test member's coverage: generous (ten caps a day, above any vault's liquidity),
    ///      so that tests of other rules never hit it.
    uint128 internal constant COVERAGE_LIMIT = 10 * CAP;
    uint64 internal constant COVERAGE_WINDOW = 1 days;

    uint128 internal constant BUCKET_CAPACITY = 1_000_000e6;
    uint128 internal constant REFILL_PER_SECOND = 10e6;
    uint256 internal constant RESERVE_FLOOR = 100_000e6;
    uint64 internal constant COOLDOWN = 7 days;
    uint64 internal constant EMERGENCY_DURATION = 3 days;

    uint256 internal constant LIQUIDITY = 2_000_000e6;
    uint256 internal constant START_TIME = 1_700_000_000;

    uint256 private _idCounter;

    function defaultLimits() internal pure returns (IBackstopVault.Limits memory) {
        return IBackstopVault.Limits({
            bucketCapacity: BUCKET_CAPACITY,
            refillPerSecond: REFILL_PER_SECOND,
            reserveFloor: RESERVE_FLOOR,
            withdrawCooldown: COOLDOWN,
            emergencyDuration: EMERGENCY_DURATION
        });
    }

    /// @notice A fresh action id.
    function nextId() internal returns (bytes32) {
        return keccak256(abi.encode("action", address(this), ++_idCounter));
    }

    function deadlineIn(uint256 secondsFromNow) internal view returns (uint64) {
        return uint64(block.timestamp + secondsFromNow);
    }

    /// @notice A draw of `MEMBER` paying `remoteAmount` on the remote vault and `homeAmount` on the
    ///         home vault (a leg is left out when its amount is zero), legs in ascending chain order.
    function twoLegDraw(
        BackstopVault homeVault,
        BackstopVault remoteVault,
        uint64 seq,
        uint256 gap,
        uint256 remoteAmount,
        uint256 homeAmount
    ) internal view returns (IBackstopVault.Draw memory d) {
        uint256 n = (remoteAmount > 0 ? 1 : 0) + (homeAmount > 0 ? 1 : 0);
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](n);
        uint256 i = 0;
        if (remoteAmount > 0) {
            legs[i++] = IBackstopVault.Leg({chainId: REMOTE_CHAIN, vault: address(remoteVault), amount: remoteAmount});
        }
        if (homeAmount > 0) {
            legs[i++] = IBackstopVault.Leg({chainId: HOME_CHAIN, vault: address(homeVault), amount: homeAmount});
        }
        d = IBackstopVault.Draw({
            member: MEMBER,
            seq: seq,
            gap: gap,
            amount: remoteAmount + homeAmount,
            legs: legs,
            deadline: deadlineIn(1 hours),
            legDeadline: deadlineIn(1 days)
        });
    }

    function legRelease(bytes32 drawHash, uint64 seq, uint256 amount, uint64 deadline)
        internal
        pure
        returns (IBackstopVault.LegRelease memory)
    {
        return IBackstopVault.LegRelease({
            drawHash: drawHash, member: MEMBER, seq: seq, amount: amount, deadline: deadline
        });
    }

    /// @notice A member change with the default coverage (`COVERAGE_LIMIT` per `COVERAGE_WINDOW`).
    function setMemberAction(bytes32 member, address recipient, uint64 homeChainId, uint128 cap, uint128 deductible)
        internal
        returns (IBackstopVault.SetMember memory)
    {
        return setMemberAction(member, recipient, homeChainId, cap, deductible, COVERAGE_LIMIT, COVERAGE_WINDOW);
    }

    function setMemberAction(
        bytes32 member,
        address recipient,
        uint64 homeChainId,
        uint128 cap,
        uint128 deductible,
        uint128 coverageLimit,
        uint64 coverageWindow
    ) internal returns (IBackstopVault.SetMember memory) {
        return IBackstopVault.SetMember({
            member: member,
            recipient: recipient,
            homeChainId: homeChainId,
            cap: cap,
            deductible: deductible,
            coverageLimit: coverageLimit,
            coverageWindow: coverageWindow,
            id: nextId(),
            deadline: deadlineIn(1 hours)
        });
    }

    /// @notice Registers `recipient` as the member's payee on `v`, signed by `count` of `keys`.
    ///         Call it with `block.chainid` set to the vault's chain.
    function registerMember(
        BackstopVault v,
        uint256[] memory keys,
        uint256 count,
        bytes32 member,
        address recipient,
        uint64 homeChainId
    ) internal {
        IBackstopVault.SetMember memory a = setMemberAction(member, recipient, homeChainId, CAP, DEDUCTIBLE);
        v.setMember(a, signatures(keys, count, v.hashSetMember(a)));
    }

    /// @notice Mints `amount` to `lp` and deposits it into `v` for `lp`.
    function depositFor(BackstopVault v, address lp, uint256 amount) internal returns (uint256 shares) {
        MockToken token = MockToken(v.asset());
        token.mint(lp, amount);
        vm.startPrank(lp);
        IERC20(address(token)).approve(address(v), amount);
        shares = v.deposit(amount, lp);
        vm.stopPrank();
    }
}

/// @notice A home vault (chain 31337) and a remote vault (chain 10) of one 3-of-4 guardian set
///         (p = 2), each with `LIQUIDITY` deposited and `MEMBER` registered with its home on 31337.
abstract contract VaultFixture is BaseTest, VaultHelpers {
    uint256 internal constant N = 4;
    uint256 internal constant T = 3;
    uint256 internal constant P = 2;

    MockToken internal homeToken;
    MockToken internal remoteToken;
    BackstopVault internal home;
    BackstopVault internal remote;

    /// @dev Guardian private keys 1..4, sorted by address; `guardians[i] == vm.addr(keys[i])`.
    uint256[] internal keys;
    address[] internal guardians;

    address internal recipient = makeAddr("recipient");
    address internal lp = makeAddr("lp");

    function setUp() public virtual {
        vm.warp(START_TIME);
        keys = keySet(1, N);
        guardians = addressesOf(keys);

        homeToken = new MockToken("Pool USD (home)", "pUSD");
        home = new BackstopVault(IERC20(address(homeToken)), "Backstop Home", "bHOME", guardians, 3, 2, defaultLimits());
        registerMember(home, keys, T, MEMBER, recipient, HOME_CHAIN);
        depositFor(home, lp, LIQUIDITY);

        vm.chainId(REMOTE_CHAIN);
        remoteToken = new MockToken("Pool USD (remote)", "pUSD");
        remote = new BackstopVault(
            IERC20(address(remoteToken)), "Backstop Remote", "bREM", guardians, 3, 2, defaultLimits()
        );
        registerMember(remote, keys, T, MEMBER, recipient, HOME_CHAIN);
        depositFor(remote, lp, LIQUIDITY);
        vm.chainId(HOME_CHAIN);

        vm.label(address(home), "home");
        vm.label(address(remote), "remote");
        vm.label(address(homeToken), "homeToken");
        vm.label(address(remoteToken), "remoteToken");
    }

    function makeAddr(string memory name) internal returns (address a) {
        a = vmx.addr(uint256(keccak256(bytes(name))));
        vm.label(a, name);
    }

    /// @notice `count` signatures of the fixture's guardians over `digest`, ascending.
    function sigs(bytes32 digest, uint256 count) internal view returns (bytes memory) {
        return signatures(keys, count, digest);
    }

    /// @notice Signs and registers `d` on the home vault with t signatures.
    function register(IBackstopVault.Draw memory d) internal returns (bytes32) {
        return home.registerDraw(d, sigs(home.hashDraw(d), T));
    }

    /// @notice Signs and releases `leg` on the remote vault with t signatures (under the remote chain id).
    function release(IBackstopVault.LegRelease memory leg) internal {
        uint256 chainBefore = block.chainid;
        vm.chainId(REMOTE_CHAIN);
        remote.releaseLeg(leg, sigs(remote.hashLegRelease(leg), T));
        vm.chainId(chainBefore);
    }

    function pauseVault(BackstopVault v) internal {
        IBackstopVault.Pause memory a = IBackstopVault.Pause({id: nextId(), deadline: deadlineIn(1 hours)});
        v.pause(a, sigs(v.hashPause(a), P));
    }

    function freeze(BackstopVault v, bytes32 member) internal {
        IBackstopVault.FreezeMember memory a =
            IBackstopVault.FreezeMember({member: member, id: nextId(), deadline: deadlineIn(1 hours)});
        v.freezeMember(a, sigs(v.hashFreezeMember(a), P));
    }

    function changeLimits(BackstopVault v, IBackstopVault.Limits memory l) internal {
        IBackstopVault.SetLimits memory a = IBackstopVault.SetLimits({
            bucketCapacity: l.bucketCapacity,
            refillPerSecond: l.refillPerSecond,
            reserveFloor: l.reserveFloor,
            withdrawCooldown: l.withdrawCooldown,
            emergencyDuration: l.emergencyDuration,
            id: nextId(),
            deadline: deadlineIn(1 hours)
        });
        v.setLimits(a, sigs(v.hashSetLimits(a), T));
    }
}
