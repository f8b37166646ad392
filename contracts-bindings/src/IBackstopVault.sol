// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Types, errors and events of the Backstop insurance vault
/// @notice Every struct below that a guardian signs is an EIP-712 struct. The Rust
///         bindings derive the type strings from these definitions, so a field's
///         name, type and position here are part of the signing format.
interface IBackstopVault {
    // ------------------------------------------------------------------ types

    /// @notice One chain's share of an insurance draw.
    /// @param chainId Chain whose vault pays this leg.
    /// @param vault The paying vault on that chain.
    /// @param amount Pool-token units paid to the member's recipient on that chain.
    struct Leg {
        uint64 chainId;
        address vault;
        uint256 amount;
    }

    /// @notice An insurance draw for incident `(member, seq)`, registered on the member's home chain.
    /// @param member Member identifier (the same on every chain).
    /// @param seq Must equal the home vault's `nextSeq(member)`.
    /// @param gap Solvency gap the guardians observed (liabilities - assets) at the pinned blocks.
    /// @param amount Total covered by the legs: their sum, at most `gap - deductible` and the member's cap.
    /// @param legs Legs sorted by strictly ascending `chainId` (so one leg per chain).
    /// @param deadline Last timestamp at which the draw may be registered.
    /// @param legDeadline Last timestamp at which remote legs may be released.
    struct Draw {
        bytes32 member;
        uint64 seq;
        uint256 gap;
        uint256 amount;
        Leg[] legs;
        uint64 deadline;
        uint64 legDeadline;
    }

    /// @notice Release of one remote leg of a draw registered on the member's home chain.
    /// @param drawHash EIP-712 digest of the registered draw (it binds the home chain and vault).
    struct LegRelease {
        bytes32 drawHash;
        bytes32 member;
        uint64 seq;
        uint256 amount;
        uint64 deadline;
    }

    /// @notice Freezes payouts to `member` on this vault until `now + emergencyDuration` (p signatures).
    struct FreezeMember {
        bytes32 member;
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Lifts a member freeze early (t signatures).
    struct UnfreezeMember {
        bytes32 member;
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Pauses new draws and withdrawals until `now + emergencyDuration` (p signatures).
    struct Pause {
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Lifts a pause early (t signatures).
    struct Unpause {
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Raises the alert level of `subject` until `now + emergencyDuration` (p signatures).
    struct RaiseAlert {
        bytes32 subject;
        uint8 level;
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Clears the alert of `subject` (t signatures).
    struct ClearAlert {
        bytes32 subject;
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Adds a member or changes its parameters (t signatures). Keeps `nextSeq`, the freeze
    ///         and the coverage already used (see `BackstopVault.setMember`).
    /// @param cap Largest draw (home) or leg (remote) of one incident.
    /// @param deductible Part of the gap the member bears itself.
    /// @param coverageLimit Most this vault pays the member within any `coverageWindow` seconds
    ///        (home: whole registered draws; remote: legs). At most `type(uint96).max`; 0: no coverage.
    /// @param coverageWindow Length of the coverage window in seconds, in `[1, MAX_DURATION]`.
    struct SetMember {
        bytes32 member;
        address recipient;
        uint64 homeChainId;
        uint128 cap;
        uint128 deductible;
        uint128 coverageLimit;
        uint64 coverageWindow;
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Changes the outflow limits, the cooldown and the emergency duration (t signatures).
    struct SetLimits {
        uint128 bucketCapacity;
        uint128 refillPerSecond;
        uint256 reserveFloor;
        uint64 withdrawCooldown;
        uint64 emergencyDuration;
        bytes32 id;
        uint64 deadline;
    }

    /// @notice Replaces the guardian set and its thresholds (t signatures of the current set).
    struct RotateGuardians {
        address[] guardians;
        uint8 threshold;
        uint8 pauseThreshold;
        bytes32 id;
        uint64 deadline;
    }

    /// @notice A member as stored by the vault. Fields are ordered for packing: slot 0 holds
    ///         `recipient`, `homeChainId` and `coverageWindow`; slot 1 `frozenUntil`, `nextSeq`
    ///         and `cap`; slot 2 `deductible` and `coverageLimit`.
    /// @param coverageWindow Coverage window in seconds (at most `MAX_DURATION`, so it fits 32 bits).
    /// @param coverageLimit Most paid within any `coverageWindow` seconds (at most `type(uint96).max`).
    struct Member {
        address recipient;
        uint64 homeChainId;
        uint32 coverageWindow;
        uint64 frozenUntil;
        uint64 nextSeq;
        uint128 cap;
        uint128 deductible;
        uint128 coverageLimit;
    }

    /// @notice What a vault paid a member in the two latest coverage epochs (epoch =
    ///         `block.timestamp / coverageWindow`), as of the last payment or window change.
    /// @param epoch Epoch of `current`.
    /// @param previous Paid in epoch `epoch - 1`.
    /// @param current Paid in epoch `epoch` (after a window change: the usage carried over).
    struct CoverageUse {
        uint64 epoch;
        uint96 previous;
        uint96 current;
    }

    /// @notice Outflow limits and timings of the vault.
    struct Limits {
        uint128 bucketCapacity;
        uint128 refillPerSecond;
        uint256 reserveFloor;
        uint64 withdrawCooldown;
        uint64 emergencyDuration;
    }

    /// @notice A pending redemption: shares held in escrow by the vault until `readyAt`.
    struct RedeemRequest {
        uint128 shares;
        uint64 readyAt;
    }

    // ------------------------------------------------------------------ errors

    /// @notice The signature blob is not a whole number of 65-byte signatures.
    error SignatureLengthInvalid(uint256 length);
    /// @notice A signature does not recover to an address (bad v, high s, or garbage).
    error InvalidSignature(uint256 index);
    /// @notice A signature recovers to an address outside the current guardian set.
    error SignerNotGuardian(address signer);
    /// @notice The same guardian signed twice.
    error DuplicateSigner(address signer);
    /// @notice Signers are not in strictly ascending address order.
    error SignersNotAscending(address previous, address signer);
    /// @notice Fewer signatures than the action's threshold.
    error InsufficientSignatures(uint256 given, uint256 required);
    /// @notice The signed deadline has passed.
    error Expired(uint64 deadline);
    /// @notice An action id was already consumed (replay).
    error ActionIdUsed(bytes32 id);
    /// @notice The member is not registered on this vault.
    error UnknownMember(bytes32 member);
    /// @notice `registerDraw` called on a vault that is not the member's home.
    error NotHomeChain(bytes32 member, uint64 homeChainId);
    /// @notice `releaseLeg` called on the member's home vault (its leg is paid at registration).
    error NotRemoteChain(bytes32 member);
    /// @notice A draw for `(member, seq)` was already registered: `registered` is its digest.
    error DrawAlreadyRegistered(bytes32 member, uint64 seq, bytes32 registered);
    /// @notice The draw's seq is not the member's next seq.
    error SeqMismatch(bytes32 member, uint64 expected, uint64 given);
    /// @notice Legs are not sorted by strictly ascending chain id, or the home leg names another vault.
    error InvalidLegs();
    /// @notice The legs do not sum to the draw amount.
    error LegSumMismatch(uint256 sum, uint256 amount);
    /// @notice The draw amount exceeds the member's uncovered gap (gap minus deductible).
    error DrawExceedsGap(uint256 amount, uint256 coverable);
    /// @notice The draw or leg amount exceeds the member's per-incident cap.
    error DrawExceedsCap(uint256 amount, uint256 cap);
    /// @notice This vault already settled `(member, seq)`: `settled` is the draw it paid for.
    error LegAlreadyPaid(bytes32 member, uint64 seq, bytes32 settled);
    /// @notice The legs' deadline is before the registration deadline.
    error InvalidDeadlines(uint64 deadline, uint64 legDeadline);
    /// @notice Payouts to the member are frozen.
    error MemberIsFrozen(bytes32 member);
    /// @notice The vault is paused.
    error VaultPaused();
    /// @notice The payout exceeds what the outflow bucket holds now.
    error BucketEmpty(uint256 amount, uint256 available);
    /// @notice The payout would take the vault's balance below its reserve floor.
    error ReserveHit(uint256 amount, uint256 balance, uint256 reserveFloor);
    /// @notice A withdrawal without a matured redeem request covering it.
    error CooldownActive(uint64 readyAt);
    /// @notice A withdrawal above the matured request.
    error RedeemExceedsRequest(uint256 shares, uint256 requested);
    /// @notice A guardian set that is empty, too large, unsorted, or with thresholds out of range.
    error InvalidGuardianSet();
    /// @notice An emergency duration of zero, or a duration above `MAX_DURATION`.
    error InvalidLimits();
    /// @notice A member with a zero recipient or zero home chain.
    error InvalidMember();
    /// @notice A coverage limit above `type(uint96).max`, or a window of zero or above `MAX_DURATION`.
    error InvalidCoverage(uint128 limit, uint64 window);
    /// @notice The draw (home) or leg (remote) would take what this vault paid the member within
    ///         one coverage window above the member's coverage limit; `available` is what is left.
    error CoverageExceeded(bytes32 member, uint256 amount, uint256 available);
    /// @notice An alert level of zero (use clearAlert).
    error InvalidAlertLevel();
    /// @notice Zero shares, or more shares than fit the request record.
    error InvalidShares();

    // ------------------------------------------------------------------ events

    /// @notice A draw was registered on its home vault; remote legs may now be released.
    event DrawRegistered(
        bytes32 indexed member, uint64 indexed seq, bytes32 indexed drawHash, uint256 gap, uint256 amount, Leg[] legs
    );
    /// @notice A leg was paid to the member's recipient on this chain.
    event LegPaid(bytes32 indexed drawHash, bytes32 indexed member, uint64 seq, address recipient, uint256 amount);
    /// @notice A member was added or changed.
    event MemberSet(
        bytes32 indexed member,
        address recipient,
        uint64 homeChainId,
        uint128 cap,
        uint128 deductible,
        uint128 coverageLimit,
        uint64 coverageWindow,
        bytes32 id
    );
    /// @notice Payouts to a member are frozen until `until`.
    event MemberFrozen(bytes32 indexed member, uint64 until, bytes32 id);
    /// @notice A member freeze was lifted.
    event MemberUnfrozen(bytes32 indexed member, bytes32 id);
    /// @notice The vault is paused until `until`.
    event VaultPausedUntil(uint64 until, bytes32 id);
    /// @notice The pause was lifted.
    event VaultUnpaused(bytes32 id);
    /// @notice The alert of `subject` is at `level` until `until`.
    event AlertRaised(bytes32 indexed subject, uint8 level, uint64 until, bytes32 id);
    /// @notice The alert of `subject` was cleared.
    event AlertCleared(bytes32 indexed subject, bytes32 id);
    /// @notice Outflow limits and timings changed.
    event LimitsSet(
        uint128 bucketCapacity,
        uint128 refillPerSecond,
        uint256 reserveFloor,
        uint64 withdrawCooldown,
        uint64 emergencyDuration,
        bytes32 id
    );
    /// @notice The guardian set changed; `setIndex` counts rotations from 0 at deployment.
    event GuardiansSet(uint64 indexed setIndex, address[] guardians, uint8 threshold, uint8 pauseThreshold, bytes32 id);
    /// @notice Shares moved into escrow for redemption at `readyAt`.
    event RedeemRequested(address indexed owner, uint256 shares, uint256 totalRequested, uint64 readyAt);
    /// @notice Escrowed shares went back to their owner.
    event RedeemCancelled(address indexed owner, uint256 shares);
}
