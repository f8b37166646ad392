// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC4626} from "@openzeppelin/contracts/token/ERC20/extensions/ERC4626.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IBackstopVault} from "./IBackstopVault.sol";

/// @title BackstopVault: one chain's share of the consortium's insurance pool
/// @notice Depositors hold ERC-4626 shares over the pool token; insurance payouts lower the
///         share price, which is how losses are socialized. Money leaves only against
///         EIP-712 signatures of the guardian set (one key per consortium node):
///         - `registerDraw` (home chain of the member, t signatures) registers the one draw
///           of `(member, seq)` and pays its home leg;
///         - `releaseLeg` (other chains, t signatures) pays a remote leg of a registered draw, once;
///         - freeze, pause and alert take p signatures and expire after `emergencyDuration`;
///           lifting them early, changing members, limits or guardians takes t signatures.
///         Every payout is bounded by a token bucket and a reserve floor, and what the vault
///         pays one member by a rolling coverage window (`coverageLimit` per `coverageWindow`
///         seconds: whole draws on the home vault, legs on the others). There is no owner:
///         after deployment no single key can move funds or change a parameter.
/// @dev Signatures are packed `r || s || v` (65 bytes each), from distinct guardians in
///      strictly ascending address order. Every signed struct carries a deadline; actions
///      carry a unique id that is consumed on use, draws are unique per `(member, seq)` and
///      legs per draw hash, so no signed message can be replayed.
contract BackstopVault is IBackstopVault, ERC4626, EIP712 {
    using SafeERC20 for IERC20;

    /// @notice EIP-712 domain name.
    string public constant DOMAIN_NAME = "BackstopVault";
    /// @notice EIP-712 domain version.
    string public constant DOMAIN_VERSION = "1";
    /// @notice Largest guardian set (bounds every signature loop).
    uint256 public constant MAX_GUARDIANS = 32;
    /// @notice Largest number of legs in a draw (one per chain).
    uint256 public constant MAX_LEGS = 32;
    /// @notice Longest withdrawal cooldown, emergency duration and coverage window.
    uint64 public constant MAX_DURATION = 365 days;

    bytes32 internal constant LEG_TYPEHASH = keccak256("Leg(uint64 chainId,address vault,uint256 amount)");
    bytes32 internal constant DRAW_TYPEHASH = keccak256(
        "Draw(bytes32 member,uint64 seq,uint256 gap,uint256 amount,Leg[] legs,uint64 deadline,uint64 legDeadline)"
        "Leg(uint64 chainId,address vault,uint256 amount)"
    );
    bytes32 internal constant LEG_RELEASE_TYPEHASH =
        keccak256("LegRelease(bytes32 drawHash,bytes32 member,uint64 seq,uint256 amount,uint64 deadline)");
    bytes32 internal constant FREEZE_MEMBER_TYPEHASH =
        keccak256("FreezeMember(bytes32 member,bytes32 id,uint64 deadline)");
    bytes32 internal constant UNFREEZE_MEMBER_TYPEHASH =
        keccak256("UnfreezeMember(bytes32 member,bytes32 id,uint64 deadline)");
    bytes32 internal constant PAUSE_TYPEHASH = keccak256("Pause(bytes32 id,uint64 deadline)");
    bytes32 internal constant UNPAUSE_TYPEHASH = keccak256("Unpause(bytes32 id,uint64 deadline)");
    bytes32 internal constant RAISE_ALERT_TYPEHASH =
        keccak256("RaiseAlert(bytes32 subject,uint8 level,bytes32 id,uint64 deadline)");
    bytes32 internal constant CLEAR_ALERT_TYPEHASH =
        keccak256("ClearAlert(bytes32 subject,bytes32 id,uint64 deadline)");
    bytes32 internal constant SET_MEMBER_TYPEHASH = keccak256(
        "SetMember(bytes32 member,address recipient,uint64 homeChainId,uint128 cap,uint128 deductible,uint128 coverageLimit,uint64 coverageWindow,bytes32 id,uint64 deadline)"
    );
    bytes32 internal constant SET_LIMITS_TYPEHASH = keccak256(
        "SetLimits(uint128 bucketCapacity,uint128 refillPerSecond,uint256 reserveFloor,uint64 withdrawCooldown,uint64 emergencyDuration,bytes32 id,uint64 deadline)"
    );
    bytes32 internal constant ROTATE_GUARDIANS_TYPEHASH = keccak256(
        "RotateGuardians(address[] guardians,uint8 threshold,uint8 pauseThreshold,bytes32 id,uint64 deadline)"
    );

    struct Alert {
        uint8 level;
        uint64 until;
    }

    struct Bucket {
        uint128 level;
        uint64 updatedAt;
    }

    address[] private _guardians;
    /// @notice Whether `account` is in the current guardian set.
    mapping(address account => bool) public isGuardian;
    /// @notice Signatures needed to pay, lift an emergency state or change parameters (t).
    uint8 public threshold;
    /// @notice Signatures needed to freeze, pause or raise an alert (p).
    uint8 public pauseThreshold;
    /// @notice Number of guardian rotations since deployment.
    uint64 public guardianSetIndex;
    /// @notice The vault is paused while `block.timestamp < pausedUntil`.
    uint64 public pausedUntil;

    Bucket private _bucket;
    Limits private _limits;

    mapping(bytes32 member => Member) private _members;
    /// @dev What this vault paid each member in its two latest coverage epochs; see `_coverageAfter`.
    mapping(bytes32 member => CoverageUse) private _coverageUse;
    mapping(bytes32 subject => Alert) private _alerts;
    mapping(address owner => RedeemRequest) private _redeemRequests;

    /// @notice The draw this vault settled for incident `(member, seq)`, zero if none: on the
    ///         member's home vault the registered draw (whose home leg was paid with it), on
    ///         any other vault the draw whose leg it paid. At most one per incident and vault.
    mapping(bytes32 member => mapping(uint64 seq => bytes32 drawHash)) public drawOf;
    /// @notice Whether a signed action id was consumed.
    mapping(bytes32 id => bool) public actionUsed;

    /// @param asset_ Pool token.
    /// @param name_ Share token name.
    /// @param symbol_ Share token symbol.
    /// @param guardians_ Initial guardian set, strictly ascending.
    /// @param threshold_ t: signatures to pay, lift or change parameters.
    /// @param pauseThreshold_ p: signatures to freeze, pause or alert.
    /// @param limits_ Outflow bucket, reserve floor, withdrawal cooldown and emergency duration.
    constructor(
        IERC20 asset_,
        string memory name_,
        string memory symbol_,
        address[] memory guardians_,
        uint8 threshold_,
        uint8 pauseThreshold_,
        Limits memory limits_
    ) ERC20(name_, symbol_) ERC4626(asset_) EIP712(DOMAIN_NAME, DOMAIN_VERSION) {
        _setGuardians(guardians_, threshold_, pauseThreshold_, bytes32(0));
        _bucket = Bucket({level: limits_.bucketCapacity, updatedAt: uint64(block.timestamp)});
        _setLimits(limits_, bytes32(0));
    }

    // ============================================================ draws and legs

    /// @notice Registers the draw of `(member, seq)` on the member's home vault and pays its home leg.
    /// @dev Exactly one draw per `(member, seq)`: `seq` must equal `nextSeq(member)`, which then advances.
    ///      Refused while the vault is paused or the member frozen. The whole `draw.amount` (every
    ///      leg, not only the home one) counts against the member's coverage window on this vault.
    /// @param draw The draw, as the guardians signed it.
    /// @param signatures At least `threshold` guardian signatures over `hashDraw(draw)`.
    /// @return drawHash The draw's EIP-712 digest, which remote `LegRelease`s bind.
    function registerDraw(Draw calldata draw, bytes calldata signatures) external returns (bytes32 drawHash) {
        if (block.timestamp > draw.deadline) revert Expired(draw.deadline);
        Member storage m = _knownMember(draw.member);
        if (m.homeChainId != block.chainid) revert NotHomeChain(draw.member, m.homeChainId);
        uint64 next = m.nextSeq;
        if (draw.seq < next) revert DrawAlreadyRegistered(draw.member, draw.seq, drawOf[draw.member][draw.seq]);
        if (draw.seq != next) revert SeqMismatch(draw.member, next, draw.seq);
        if (paused()) revert VaultPaused();
        if (m.frozenUntil > block.timestamp) revert MemberIsFrozen(draw.member);
        uint256 deductible = m.deductible;
        uint256 coverable = draw.gap > deductible ? draw.gap - deductible : 0;
        if (draw.amount > coverable) revert DrawExceedsGap(draw.amount, coverable);
        if (draw.amount > m.cap) revert DrawExceedsCap(draw.amount, m.cap);
        if (draw.legDeadline < draw.deadline) revert InvalidDeadlines(draw.deadline, draw.legDeadline);
        uint256 homeAmount = _checkLegs(draw.legs, draw.amount);
        uint256 coverage = _coverageAfter(draw.member, m.coverageWindow, m.coverageLimit, draw.amount);

        drawHash = hashDraw(draw);
        _verify(drawHash, signatures, threshold);

        m.nextSeq = next + 1;
        _storeCoverage(draw.member, coverage);
        drawOf[draw.member][draw.seq] = drawHash;
        emit DrawRegistered(draw.member, draw.seq, drawHash, draw.gap, draw.amount, draw.legs);
        if (homeAmount > 0) {
            _payout(m.recipient, homeAmount);
            emit LegPaid(drawHash, draw.member, draw.seq, m.recipient, homeAmount);
        }
    }

    /// @notice Pays this vault's leg of a draw registered on the member's home chain: at most
    ///         one leg per incident `(member, seq)` on this vault.
    /// @dev Guardians sign a `LegRelease` only after the registration is final on the home chain.
    ///      A pause does not stop legs of registered draws; a member freeze does. A vault that
    ///      registered `(member, seq)` itself (it was the member's home) pays no further leg of it.
    ///      The leg counts against the member's coverage window on this vault.
    /// @param leg The release, as the guardians signed it.
    /// @param signatures At least `threshold` guardian signatures over `hashLegRelease(leg)`.
    function releaseLeg(LegRelease calldata leg, bytes calldata signatures) external {
        if (block.timestamp > leg.deadline) revert Expired(leg.deadline);
        Member storage m = _members[leg.member];
        address recipient = m.recipient;
        if (recipient == address(0)) revert UnknownMember(leg.member);
        if (m.homeChainId == block.chainid) revert NotRemoteChain(leg.member);
        mapping(uint64 seq => bytes32) storage settledOf = drawOf[leg.member];
        bytes32 settled = settledOf[leg.seq];
        if (settled != bytes32(0)) revert LegAlreadyPaid(leg.member, leg.seq, settled);
        if (m.frozenUntil > block.timestamp) revert MemberIsFrozen(leg.member);
        if (leg.amount == 0) revert InvalidLegs();
        if (leg.amount > m.cap) revert DrawExceedsCap(leg.amount, m.cap);
        uint256 coverage = _coverageAfter(leg.member, m.coverageWindow, m.coverageLimit, leg.amount);

        _verify(hashLegRelease(leg), signatures, threshold);

        settledOf[leg.seq] = leg.drawHash;
        _storeCoverage(leg.member, coverage);
        _payout(recipient, leg.amount);
        emit LegPaid(leg.drawHash, leg.member, leg.seq, recipient, leg.amount);
    }

    // ============================================================ emergency actions (p to raise, t to lift)

    /// @notice Freezes payouts to a member until `now + emergencyDuration`; renewing extends it.
    /// @param action The signed freeze.
    /// @param signatures At least `pauseThreshold` guardian signatures over `hashFreezeMember(action)`.
    function freezeMember(FreezeMember calldata action, bytes calldata signatures) external {
        _authorize(hashFreezeMember(action), action.id, action.deadline, signatures, pauseThreshold);
        Member storage m = _knownMember(action.member);
        uint64 until = _extend(m.frozenUntil);
        m.frozenUntil = until;
        emit MemberFrozen(action.member, until, action.id);
    }

    /// @notice Lifts a member freeze.
    /// @param action The signed lift.
    /// @param signatures At least `threshold` guardian signatures over `hashUnfreezeMember(action)`.
    function unfreezeMember(UnfreezeMember calldata action, bytes calldata signatures) external {
        _authorize(hashUnfreezeMember(action), action.id, action.deadline, signatures, threshold);
        _knownMember(action.member).frozenUntil = 0;
        emit MemberUnfrozen(action.member, action.id);
    }

    /// @notice Pauses new draws and withdrawals until `now + emergencyDuration`; renewing extends it.
    /// @param action The signed pause.
    /// @param signatures At least `pauseThreshold` guardian signatures over `hashPause(action)`.
    function pause(Pause calldata action, bytes calldata signatures) external {
        _authorize(hashPause(action), action.id, action.deadline, signatures, pauseThreshold);
        uint64 until = _extend(pausedUntil);
        pausedUntil = until;
        emit VaultPausedUntil(until, action.id);
    }

    /// @notice Lifts the pause.
    /// @param action The signed lift.
    /// @param signatures At least `threshold` guardian signatures over `hashUnpause(action)`.
    function unpause(Unpause calldata action, bytes calldata signatures) external {
        _authorize(hashUnpause(action), action.id, action.deadline, signatures, threshold);
        pausedUntil = 0;
        emit VaultUnpaused(action.id);
    }

    /// @notice Raises the alert level of a subject (a member, a chain, an oracle) until
    ///         `now + emergencyDuration`. The level never goes down by this call.
    /// @param action The signed alert.
    /// @param signatures At least `pauseThreshold` guardian signatures over `hashRaiseAlert(action)`.
    function raiseAlert(RaiseAlert calldata action, bytes calldata signatures) external {
        if (action.level == 0) revert InvalidAlertLevel();
        _authorize(hashRaiseAlert(action), action.id, action.deadline, signatures, pauseThreshold);
        Alert storage a = _alerts[action.subject];
        uint8 current = a.until > block.timestamp ? a.level : 0;
        uint8 level = action.level > current ? action.level : current;
        uint64 until = _extend(a.until);
        a.level = level;
        a.until = until;
        emit AlertRaised(action.subject, level, until, action.id);
    }

    /// @notice Clears the alert of a subject.
    /// @param action The signed clear.
    /// @param signatures At least `threshold` guardian signatures over `hashClearAlert(action)`.
    function clearAlert(ClearAlert calldata action, bytes calldata signatures) external {
        _authorize(hashClearAlert(action), action.id, action.deadline, signatures, threshold);
        delete _alerts[action.subject];
        emit AlertCleared(action.subject, action.id);
    }

    // ============================================================ parameters (t)

    /// @notice Adds a member or changes its recipient, home chain, cap, deductible and coverage
    ///         window. Keeps the member's `nextSeq`, freeze and used coverage.
    /// @dev A coverage limit of 0 is allowed (no coverage: every positive draw or leg is refused),
    ///      and so is a limit below the cap (the lower bound wins). A new limit applies to the
    ///      usage already recorded. A new window length carries what the member used in its
    ///      current window at the old length (`previous + current`) over as `current` of the
    ///      epoch of now at the new length, so shortening or lengthening the window never
    ///      forgets recent payouts. The record only reaches back one to two old windows: a
    ///      window longer than the old one does not see payouts older than that. For a new
    ///      member the record starts at the epoch of now with nothing used, which also makes
    ///      its slot nonzero, so the first payout pays a nonzero-to-nonzero store.
    /// @param action The signed change.
    /// @param signatures At least `threshold` guardian signatures over `hashSetMember(action)`.
    function setMember(SetMember calldata action, bytes calldata signatures) external {
        if (action.recipient == address(0) || action.homeChainId == 0) revert InvalidMember();
        uint64 window = action.coverageWindow;
        if (action.coverageLimit > type(uint96).max || window == 0 || window > MAX_DURATION) {
            revert InvalidCoverage(action.coverageLimit, window);
        }
        _authorize(hashSetMember(action), action.id, action.deadline, signatures, threshold);
        Member storage m = _members[action.member];
        uint256 oldWindow = m.coverageWindow; // 0 only for a new member
        if (oldWindow != window) {
            uint256 used = 0;
            if (oldWindow != 0) {
                (, used) = _coverageNow(action.member, oldWindow); // <= a past limit <= type(uint96).max
            }
            _storeCoverage(action.member, _packCoverage(block.timestamp / window, 0, used));
            // forge-lint: disable-next-line(unsafe-typecast)
            m.coverageWindow = uint32(window); // window <= MAX_DURATION < 2**32
        }
        m.recipient = action.recipient;
        m.homeChainId = action.homeChainId;
        m.cap = action.cap;
        m.deductible = action.deductible;
        m.coverageLimit = action.coverageLimit;
        emit MemberSet(
            action.member,
            action.recipient,
            action.homeChainId,
            action.cap,
            action.deductible,
            action.coverageLimit,
            window,
            action.id
        );
    }

    /// @notice Changes the outflow bucket, the reserve floor, the withdrawal cooldown and the
    ///         emergency duration. The bucket keeps its current level, capped by the new capacity.
    /// @param action The signed change.
    /// @param signatures At least `threshold` guardian signatures over `hashSetLimits(action)`.
    function setLimits(SetLimits calldata action, bytes calldata signatures) external {
        _authorize(hashSetLimits(action), action.id, action.deadline, signatures, threshold);
        uint256 level = bucketAvailable();
        if (level > action.bucketCapacity) level = action.bucketCapacity;
        // forge-lint: disable-next-line(unsafe-typecast)
        _bucket = Bucket({level: uint128(level), updatedAt: uint64(block.timestamp)});
        _setLimits(
            Limits({
                bucketCapacity: action.bucketCapacity,
                refillPerSecond: action.refillPerSecond,
                reserveFloor: action.reserveFloor,
                withdrawCooldown: action.withdrawCooldown,
                emergencyDuration: action.emergencyDuration
            }),
            action.id
        );
    }

    /// @notice Replaces the guardian set and both thresholds.
    /// @param action The signed rotation.
    /// @param signatures At least `threshold` signatures of the current set over `hashRotateGuardians(action)`.
    function rotateGuardians(RotateGuardians calldata action, bytes calldata signatures) external {
        _authorize(hashRotateGuardians(action), action.id, action.deadline, signatures, threshold);
        address[] memory old = _guardians;
        for (uint256 i = 0; i < old.length; ++i) {
            isGuardian[old[i]] = false;
        }
        ++guardianSetIndex;
        _setGuardians(action.guardians, action.threshold, action.pauseThreshold, action.id);
    }

    // ============================================================ depositors

    /// @notice Moves `shares` of the caller into escrow; they can be redeemed once the cooldown
    ///         has passed and the vault is not paused. Escrowed shares keep bearing losses.
    ///         A new request restarts the cooldown of everything requested.
    /// @param shares Shares to escrow.
    function requestRedeem(uint256 shares) external {
        RedeemRequest storage r = _redeemRequests[msg.sender];
        uint256 total = uint256(r.shares) + shares;
        if (shares == 0 || total > type(uint128).max) revert InvalidShares();
        _transfer(msg.sender, address(this), shares);
        uint64 readyAt = uint64(block.timestamp) + _limits.withdrawCooldown;
        // forge-lint: disable-next-line(unsafe-typecast)
        r.shares = uint128(total); // checked above: total <= type(uint128).max
        r.readyAt = readyAt;
        emit RedeemRequested(msg.sender, shares, total, readyAt);
    }

    /// @notice Returns the caller's escrowed shares to the caller.
    function cancelRedeem() external {
        uint256 shares = _redeemRequests[msg.sender].shares;
        if (shares == 0) revert InvalidShares();
        delete _redeemRequests[msg.sender];
        _transfer(address(this), msg.sender, shares);
        emit RedeemCancelled(msg.sender, shares);
    }

    /// @notice Redeems escrowed shares of `owner` whose cooldown has passed.
    /// @inheritdoc ERC4626
    function redeem(uint256 shares, address receiver, address owner) public override returns (uint256 assets) {
        _checkRedeemable(owner, shares);
        assets = previewRedeem(shares);
        _withdraw(_msgSender(), receiver, owner, assets, shares);
    }

    /// @notice Withdraws assets against escrowed shares of `owner` whose cooldown has passed.
    /// @inheritdoc ERC4626
    function withdraw(uint256 assets, address receiver, address owner) public override returns (uint256 shares) {
        shares = previewWithdraw(assets);
        _checkRedeemable(owner, shares);
        _withdraw(_msgSender(), receiver, owner, assets, shares);
    }

    /// @notice Escrowed shares of `owner` redeemable now (zero while paused or cooling down).
    /// @inheritdoc ERC4626
    function maxRedeem(address owner) public view override returns (uint256) {
        RedeemRequest memory r = _redeemRequests[owner];
        if (paused() || block.timestamp < r.readyAt) return 0;
        return r.shares;
    }

    /// @notice Assets withdrawable now by `owner` (zero while paused or cooling down).
    /// @inheritdoc ERC4626
    function maxWithdraw(address owner) public view override returns (uint256) {
        return previewRedeem(maxRedeem(owner));
    }

    // ============================================================ views

    /// @notice Current guardian set, ascending.
    function guardians() external view returns (address[] memory) {
        return _guardians;
    }

    /// @notice A member's record (zero recipient when unknown).
    function member(bytes32 id) external view returns (Member memory) {
        return _members[id];
    }

    /// @notice Seq of the member's next draw on its home vault.
    function nextSeq(bytes32 id) external view returns (uint64) {
        return _members[id].nextSeq;
    }

    /// @notice What this vault can still pay the member now within its coverage window: the
    ///         coverage limit minus the usage at the current epoch (0 for an unknown member).
    function coverageAvailable(bytes32 id) external view returns (uint256) {
        Member storage m = _members[id];
        uint256 window = m.coverageWindow;
        if (window == 0) return 0;
        (, uint256 used) = _coverageNow(id, window);
        uint256 limit = m.coverageLimit;
        return limit > used ? limit - used : 0;
    }

    /// @notice The member's coverage record as stored (its epoch may be older than now's).
    function coverageUse(bytes32 id) external view returns (CoverageUse memory) {
        uint256 record = _loadCoverage(id);
        // forge-lint: disable-next-line(unsafe-typecast)
        return CoverageUse({epoch: uint64(record), previous: uint96(record >> 64), current: uint96(record >> 160)});
    }

    /// @notice Whether payouts to the member are frozen now.
    function isFrozen(bytes32 id) external view returns (bool) {
        return _members[id].frozenUntil > block.timestamp;
    }

    /// @notice Whether the vault is paused now.
    function paused() public view returns (bool) {
        return pausedUntil > block.timestamp;
    }

    /// @notice Alert level of a subject now (0 when none or expired). Member protocols read this.
    function alertLevel(bytes32 subject) external view returns (uint8) {
        Alert memory a = _alerts[subject];
        return a.until > block.timestamp ? a.level : 0;
    }

    /// @notice Alert of a subject: its level and expiry, as stored.
    function alert(bytes32 subject) external view returns (uint8 level, uint64 until) {
        Alert memory a = _alerts[subject];
        return (a.level, a.until);
    }

    /// @notice Outflow limits and timings.
    function limits() external view returns (Limits memory) {
        return _limits;
    }

    /// @notice What the outflow bucket allows to pay out now.
    function bucketAvailable() public view returns (uint256) {
        Bucket memory b = _bucket;
        uint256 level = uint256(b.level) + uint256(_limits.refillPerSecond) * (block.timestamp - b.updatedAt);
        uint256 capacity = _limits.bucketCapacity;
        return level < capacity ? level : capacity;
    }

    /// @notice What this vault can pay out now: the bucket, bounded by the balance above the reserve floor.
    function availableForPayout() external view returns (uint256) {
        uint256 balance = IERC20(asset()).balanceOf(address(this));
        uint256 floor = _limits.reserveFloor;
        uint256 aboveFloor = balance > floor ? balance - floor : 0;
        uint256 bucket = bucketAvailable();
        return bucket < aboveFloor ? bucket : aboveFloor;
    }

    /// @notice A depositor's pending redemption.
    function redeemRequest(address owner) external view returns (RedeemRequest memory) {
        return _redeemRequests[owner];
    }

    /// @notice EIP-712 domain separator of this vault.
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    // ============================================================ digests

    /// @notice EIP-712 digest of a draw under this vault's domain (its registered `drawHash`).
    function hashDraw(Draw calldata draw) public view returns (bytes32) {
        uint256 n = draw.legs.length;
        bytes32[] memory legHashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            Leg calldata leg = draw.legs[i];
            legHashes[i] = keccak256(abi.encode(LEG_TYPEHASH, leg.chainId, leg.vault, leg.amount));
        }
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    DRAW_TYPEHASH,
                    draw.member,
                    draw.seq,
                    draw.gap,
                    draw.amount,
                    keccak256(abi.encodePacked(legHashes)),
                    draw.deadline,
                    draw.legDeadline
                )
            )
        );
    }

    /// @notice EIP-712 digest of a leg release under this vault's domain.
    function hashLegRelease(LegRelease calldata leg) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(abi.encode(LEG_RELEASE_TYPEHASH, leg.drawHash, leg.member, leg.seq, leg.amount, leg.deadline))
        );
    }

    /// @notice EIP-712 digest of a freeze under this vault's domain.
    function hashFreezeMember(FreezeMember calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(FREEZE_MEMBER_TYPEHASH, a.member, a.id, a.deadline)));
    }

    /// @notice EIP-712 digest of an unfreeze under this vault's domain.
    function hashUnfreezeMember(UnfreezeMember calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(UNFREEZE_MEMBER_TYPEHASH, a.member, a.id, a.deadline)));
    }

    /// @notice EIP-712 digest of a pause under this vault's domain.
    function hashPause(Pause calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(PAUSE_TYPEHASH, a.id, a.deadline)));
    }

    /// @notice EIP-712 digest of an unpause under this vault's domain.
    function hashUnpause(Unpause calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(UNPAUSE_TYPEHASH, a.id, a.deadline)));
    }

    /// @notice EIP-712 digest of an alert under this vault's domain.
    function hashRaiseAlert(RaiseAlert calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(RAISE_ALERT_TYPEHASH, a.subject, a.level, a.id, a.deadline)));
    }

    /// @notice EIP-712 digest of an alert clear under this vault's domain.
    function hashClearAlert(ClearAlert calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(keccak256(abi.encode(CLEAR_ALERT_TYPEHASH, a.subject, a.id, a.deadline)));
    }

    /// @notice EIP-712 digest of a member change under this vault's domain.
    function hashSetMember(SetMember calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    SET_MEMBER_TYPEHASH,
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
            )
        );
    }

    /// @notice EIP-712 digest of a limits change under this vault's domain.
    function hashSetLimits(SetLimits calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    SET_LIMITS_TYPEHASH,
                    a.bucketCapacity,
                    a.refillPerSecond,
                    a.reserveFloor,
                    a.withdrawCooldown,
                    a.emergencyDuration,
                    a.id,
                    a.deadline
                )
            )
        );
    }

    /// @notice EIP-712 digest of a guardian rotation under this vault's domain.
    function hashRotateGuardians(RotateGuardians calldata a) public view returns (bytes32) {
        return _hashTypedDataV4(
            keccak256(
                abi.encode(
                    ROTATE_GUARDIANS_TYPEHASH,
                    keccak256(abi.encodePacked(a.guardians)),
                    a.threshold,
                    a.pauseThreshold,
                    a.id,
                    a.deadline
                )
            )
        );
    }

    // ============================================================ internals

    /// @dev Checks deadline and id, verifies `required` signatures and consumes the id.
    function _authorize(bytes32 digest, bytes32 id, uint64 deadline, bytes calldata signatures, uint256 required)
        internal
    {
        if (block.timestamp > deadline) revert Expired(deadline);
        if (actionUsed[id]) revert ActionIdUsed(id);
        _verify(digest, signatures, required);
        actionUsed[id] = true;
    }

    /// @dev Reverts unless `signatures` holds at least `required` valid signatures over `digest`
    ///      by distinct current guardians in strictly ascending address order.
    function _verify(bytes32 digest, bytes calldata signatures, uint256 required) internal view {
        if (signatures.length % 65 != 0) revert SignatureLengthInvalid(signatures.length);
        uint256 count = signatures.length / 65;
        if (count < required) revert InsufficientSignatures(count, required);
        address previous = address(0);
        for (uint256 i = 0; i < count; ++i) {
            address signer = _recover(digest, signatures, i);
            if (signer == address(0)) revert InvalidSignature(i);
            if (signer <= previous) {
                if (signer == previous) revert DuplicateSigner(signer);
                revert SignersNotAscending(previous, signer);
            }
            if (!isGuardian[signer]) revert SignerNotGuardian(signer);
            previous = signer;
        }
    }

    /// @dev Signer of signature `i` (`r || s || v`) of `signatures` over `digest`, or zero when it
    ///      recovers to no address: a high `s` (malleable: refused as OpenZeppelin's `ECDSA` does),
    ///      a `v` other than 27 or 28, or a point off the curve. The same checks as
    ///      `ECDSA.tryRecover`, with the `ecrecover` precompile called directly.
    function _recover(bytes32 digest, bytes calldata signatures, uint256 i) internal view returns (address signer) {
        assembly ("memory-safe") {
            let p := add(signatures.offset, mul(i, 65))
            let s := calldataload(add(p, 32))
            // s <= secp256k1n / 2 (EIP-2)
            if iszero(gt(s, 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0)) {
                let m := mload(0x40) // scratch above the free memory pointer, not allocated
                mstore(m, digest)
                mstore(add(m, 0x20), byte(0, calldataload(add(p, 64))))
                mstore(add(m, 0x40), calldataload(p))
                mstore(add(m, 0x60), s)
                // The precompile returns 32 bytes on success and nothing when nothing recovers.
                if staticcall(gas(), 0x01, m, 0x80, m, 0x20) {
                    signer := mul(mload(m), eq(returndatasize(), 0x20))
                }
            }
        }
    }

    /// @dev Validates the legs of a draw and returns the amount of this vault's (home) leg.
    function _checkLegs(Leg[] calldata legs, uint256 amount) internal view returns (uint256 homeAmount) {
        uint256 n = legs.length;
        if (n > MAX_LEGS) revert InvalidLegs();
        uint256 sum = 0;
        uint64 previousChain = 0;
        for (uint256 i = 0; i < n; ++i) {
            Leg calldata leg = legs[i];
            if (leg.chainId <= previousChain || leg.amount == 0 || leg.vault == address(0)) revert InvalidLegs();
            if (leg.chainId == block.chainid) {
                if (leg.vault != address(this)) revert InvalidLegs();
                homeAmount = leg.amount;
            }
            previousChain = leg.chainId;
            sum += leg.amount;
        }
        if (sum != amount) revert LegSumMismatch(sum, amount);
    }

    /// @dev Pays `amount` to `recipient` through the outflow bucket and above the reserve floor.
    function _payout(address recipient, uint256 amount) internal {
        uint256 available = bucketAvailable();
        if (amount > available) revert BucketEmpty(amount, available);
        IERC20 token = IERC20(asset());
        uint256 balance = token.balanceOf(address(this));
        uint256 floor = _limits.reserveFloor;
        if (balance < amount || balance - amount < floor) revert ReserveHit(amount, balance, floor);
        // forge-lint: disable-next-line(unsafe-typecast)
        _bucket = Bucket({level: uint128(available - amount), updatedAt: uint64(block.timestamp)});
        token.safeTransfer(recipient, amount);
    }

    /// @dev The member's coverage record after paying `amount` now, packed (`_packCoverage`), for
    ///      `_storeCoverage` once the payment is authorized; reverts with `CoverageExceeded` when
    ///      the usage at the current epoch plus `amount` exceeds the coverage limit.
    ///
    ///      Two-epoch scheme, with W = `coverageWindow` and epoch = `block.timestamp / W`: the
    ///      record holds what was paid in its epoch (`current`) and in the epoch before
    ///      (`previous`). At epoch e the usage is (previous, current) when the record is of e,
    ///      (current, 0) when it is of e - 1, and (0, 0) when older. A payment is allowed iff
    ///      previous + current + amount <= limit, and then stored as {e, previous, current + amount}.
    ///
    ///      Bound (exact upper bound, conservative): any interval of length W, even closed (W + 1
    ///      whole seconds), meets at most two consecutive epochs e and e + 1. If all its payments
    ///      are in one epoch, they are part of that epoch's `current`, which stayed <= limit. Else
    ///      take the interval's last payment P, in epoch e + 1. By P, time had left epoch e, so
    ///      no payment of e could follow and the record's `previous` at P held all of epoch e
    ///      (rolled over from `current` by the first payment of e + 1, or read as (current, 0)
    ///      by P itself when P is that first payment). So the check at P bounded all of epoch e
    ///      plus epoch e + 1 up to and including P by the limit, and the interval's payments are
    ///      a part of these. Nothing is ever forgotten before two epochs (2 W) have passed, hence
    ///      "conservative": a payment frees its coverage between W and 2 W after it was made.
    function _coverageAfter(bytes32 id, uint256 window, uint256 limit, uint256 amount) internal view returns (uint256) {
        (uint256 record, uint256 used) = _coverageNow(id, window);
        uint256 available = limit > used ? limit - used : 0;
        if (amount > available) revert CoverageExceeded(id, amount, available);
        // used + amount <= limit <= type(uint96).max: `current + amount` stays in its 96 bits.
        return record + (amount << 160);
    }

    /// @dev `id`'s coverage record as of now's epoch under `window` (nonzero), packed: `{e, previous,
    ///      current}` when the stored record is of epoch e, `{e, current, 0}` when it is of e - 1,
    ///      `{e, 0, 0}` when older; and its usage `previous + current`.
    function _coverageNow(bytes32 id, uint256 window) internal view returns (uint256 record, uint256 used) {
        uint256 epoch = block.timestamp / window;
        uint256 stored = _loadCoverage(id);
        uint256 storedEpoch = stored & type(uint64).max;
        uint256 previous = 0;
        uint256 current = 0;
        if (storedEpoch == epoch) {
            (previous, current) = ((stored >> 64) & type(uint96).max, stored >> 160);
        } else if (storedEpoch + 1 == epoch) {
            previous = stored >> 160;
        }
        return (_packCoverage(epoch, previous, current), previous + current);
    }

    /// @dev A `CoverageUse` as one word, in its storage layout: `epoch` in the low 64 bits, then
    ///      `previous` and `current` (96 bits each). The caller keeps every field in range.
    function _packCoverage(uint256 epoch, uint256 previous, uint256 current) internal pure returns (uint256) {
        return epoch | (previous << 64) | (current << 160);
    }

    /// @dev The coverage record of `id`, packed (one SLOAD).
    function _loadCoverage(bytes32 id) internal view returns (uint256 record) {
        CoverageUse storage use = _coverageUse[id];
        assembly ("memory-safe") {
            record := sload(use.slot)
        }
    }

    /// @dev Stores a packed coverage record of `id` (one SSTORE).
    function _storeCoverage(bytes32 id, uint256 record) internal {
        CoverageUse storage use = _coverageUse[id];
        assembly ("memory-safe") {
            sstore(use.slot, record)
        }
    }

    /// @dev An emergency state's new expiry: now plus the emergency duration, never earlier than `current`.
    function _extend(uint64 current) internal view returns (uint64) {
        uint64 until = uint64(block.timestamp) + _limits.emergencyDuration;
        return until > current ? until : current;
    }

    function _knownMember(bytes32 id) internal view returns (Member storage m) {
        m = _members[id];
        if (m.recipient == address(0)) revert UnknownMember(id);
    }

    function _checkRedeemable(address owner, uint256 shares) internal view {
        if (paused()) revert VaultPaused();
        RedeemRequest memory r = _redeemRequests[owner];
        if (r.shares == 0 || block.timestamp < r.readyAt) revert CooldownActive(r.readyAt);
        if (shares > r.shares) revert RedeemExceedsRequest(shares, r.shares);
    }

    /// @dev Burns escrowed shares of `owner` (checked by `_checkRedeemable`) and pays `receiver`.
    function _withdraw(address caller, address receiver, address owner, uint256 assets, uint256 shares)
        internal
        override
    {
        if (caller != owner) _spendAllowance(owner, caller, shares);
        RedeemRequest storage r = _redeemRequests[owner];
        // forge-lint: disable-next-line(unsafe-typecast)
        r.shares -= uint128(shares); // shares <= r.shares, checked by _checkRedeemable
        _burn(address(this), shares);
        IERC20(asset()).safeTransfer(receiver, assets);
        emit Withdraw(caller, receiver, owner, assets, shares);
    }

    function _setLimits(Limits memory l, bytes32 id) internal {
        if (l.emergencyDuration == 0 || l.emergencyDuration > MAX_DURATION || l.withdrawCooldown > MAX_DURATION) {
            revert InvalidLimits();
        }
        _limits = l;
        emit LimitsSet(l.bucketCapacity, l.refillPerSecond, l.reserveFloor, l.withdrawCooldown, l.emergencyDuration, id);
    }

    function _setGuardians(address[] memory set, uint8 threshold_, uint8 pauseThreshold_, bytes32 id) internal {
        uint256 n = set.length;
        // t must be a majority so that two t-sets always share a guardian; p <= t.
        if (
            n == 0 || n > MAX_GUARDIANS || pauseThreshold_ == 0 || pauseThreshold_ > threshold_ || threshold_ > n
                || 2 * uint256(threshold_) <= n
        ) revert InvalidGuardianSet();
        address previous = address(0);
        for (uint256 i = 0; i < n; ++i) {
            if (set[i] <= previous) revert InvalidGuardianSet();
            isGuardian[set[i]] = true;
            previous = set[i];
        }
        _guardians = set;
        threshold = threshold_;
        pauseThreshold = pauseThreshold_;
        emit GuardiansSet(guardianSetIndex, set, threshold_, pauseThreshold_, id);
    }
}
