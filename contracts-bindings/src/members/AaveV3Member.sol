// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";

import {IBackstopMember} from "../IBackstopMember.sol";
import {IBackstopVault} from "../IBackstopVault.sol";
import {IAaveV3AddressesProvider, IAaveV3Oracle, IAaveV3Pool} from "./IAaveV3.sol";

/// @notice The views of the home vault the adapter checks a draw against.
interface IBackstopVaultDraws {
    function drawOf(bytes32 member, uint64 seq) external view returns (bytes32);

    function hashDraw(IBackstopVault.Draw calldata draw) external view returns (bytes32);

    function member(bytes32 id) external view returns (IBackstopVault.Member memory);
}

/// @title AaveV3Member: one Aave v3.0 market as a Backstop member, and its payout recipient
/// @notice **What it measures.** Aave v3.0 keeps unrecoverable debt on its books at face value
///         (reserve totals stay balanced after a crash and a liquidation), so the loss is read
///         per account: over the tracked accounts whose health factor is below 1 (only those
///         can be liquidated, so only those can leave bad debt),
///
///             deficit_a = max(0, D_a - C_a * 10000 / B_a)
///
///         with `C_a`, `D_a` the account's collateral and debt from `Pool.getUserAccountData`
///         (Aave's base currency: USD with 8 decimals) and `B_a` the largest liquidation
///         bonus that can apply to it (basis points, 10000 + bonus: the largest over the
///         market's collateral reserves, and the account's eMode category's). Liquidators
///         seize collateral worth `bonus` times the debt they repay, so liquidating all of
///         `C_a` repays only `C_a / B_a` of the debt: before liquidation `D_a - C_a` would
///         understate the loss by the bonus (5,000 seen, 5,476 realised in the probe); after
///         it, `C_a = 0` and the deficit is the realised bad debt `D_a`, which v3.0 keeps.
///
///         **Units and the books it reports.** `solvency()` answers in pool-token units: the
///         pool token is the market's USDC-like reserve, and a base value `v` is
///         `v * 10^decimals / price` pool-token units, `price` being the Aave oracle's price of
///         the pool token in base units (1e8 = 1 USD). The books are the loss and what paid it:
///
///             liabilities = ceil(sum of deficit_a, in pool-token units) + covered
///             assets      = pool tokens held here + covered
///
///         `covered` is every pool token this contract ever spent repaying bad debt
///         (`settle()`): a repaid loss stays on both sides, so the gap is the deficit less what
///         is held. Assets never fall (a liquidation moves nothing in them, a repayment moves
///         tokens from "held" to "covered"): the nodes read a fall of a member's assets as an
///         exploit, and nothing this adapter does in the normal course may look like one. The
///         debt and what liquidation recovers are in `measure()`.
///
///         **Bounded gas.** At most `maxTracked` accounts (at most 128) are tracked. Anyone may
///         track an account that has debt; adding past the cap reverts; an account without
///         debt can be untracked by anyone, and a healthy one (health factor at least 1, so
///         contributing nothing) can be replaced by another, so the list cannot be held full
///         by healthy accounts. A read costs about 124k gas with one tracked account and 34k
///         per further account (cold, measured on a two-reserve market: 2.25M with 64), plus
///         the reserves' price and configuration reads, one of each per reserve.
///
///         **Absurd prices.** `solvency()` reverts rather than answers when a reserve's price
///         is unavailable (the Aave oracle falls back on a feed answering 0 or less and
///         reverts without a fallback oracle), when a price is above `maxAssetPrice`, or when
///         the pool token's price is outside `[minPoolTokenPrice, maxPoolTokenPrice]`: no node
///         can read a gap from a reverting member, so none pays it. A price inside the bounds is
///         believed; what it can make the adapter report is bounded by the tracked accounts'
///         debt.
///
///         **Recipient and booking.** This contract is the member's recipient on its home
///         chain. A payout it holds counts in `assets` at once; `settle()` (anyone) spends it
///         on what the market actually lost: it repays, with `Pool.repay(onBehalfOf)`, the
///         pool-token debt of tracked accounts left without collateral (realised bad debt;
///         an account with collateral left is never repaid, so no borrower can gain). A remote
///         leg is paid on another chain; it is in these books once someone brings its amount
///         home through `bringHome` (the member's bridge; the tokens are pulled from the
///         caller). `bookDraw` (anyone) declares the next draw booked once the home vault
///         shows it registered with exactly the legs given, the home leg was paid here, and
///         every remote leg is brought home or, past the draw's `legDeadline`, declared unpaid
///         by the `bookkeeper` (the member's governance; the home chain cannot see another
///         chain, so only the member can state that a leg was never paid).
contract AaveV3Member is IBackstopMember, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @notice Constructor arguments.
    /// @param pool The market's Pool (its proxy).
    /// @param poolToken The Backstop pool token; must be a reserve of the market.
    /// @param maxTracked Most accounts tracked at once, in `[1, MAX_TRACKED]`.
    /// @param minPoolTokenPrice Lowest believed price of the pool token, in base units.
    /// @param maxPoolTokenPrice Highest believed price of the pool token, in base units.
    /// @param maxAssetPrice Highest believed price of any reserve, in base units.
    /// @param vault The member's home vault.
    /// @param memberId The member's id in the vaults.
    /// @param bookkeeper Who may declare a remote leg unpaid past its deadline (zero: nobody).
    struct Config {
        address pool;
        address poolToken;
        uint256 maxTracked;
        uint256 minPoolTokenPrice;
        uint256 maxPoolTokenPrice;
        uint256 maxAssetPrice;
        address vault;
        bytes32 memberId;
        address bookkeeper;
    }

    /// @notice Where a remote leg of a draw stands in these books.
    enum LegState {
        Pending,
        BroughtHome,
        DeclaredUnpaid
    }

    /// @notice Hard bound on `maxTracked`.
    uint256 public constant MAX_TRACKED = 128;
    uint256 private constant BPS = 10_000;
    uint256 private constant HEALTH_FACTOR_ONE = 1e18;
    uint256 private constant VARIABLE_RATE = 2;
    uint256 private constant STABLE_RATE = 1;

    /// @notice The market's Pool.
    IAaveV3Pool public immutable POOL;
    /// @notice The pool token (a reserve of the market).
    IERC20 public immutable POOL_TOKEN;
    /// @notice `10 ** decimals` of the pool token.
    uint256 public immutable POOL_TOKEN_UNIT;
    /// @notice Variable debt token of the pool-token reserve.
    IERC20 public immutable VARIABLE_DEBT_TOKEN;
    /// @notice Stable debt token of the pool-token reserve.
    IERC20 public immutable STABLE_DEBT_TOKEN;
    /// @notice Most accounts tracked at once.
    uint256 public immutable MAX_TRACKED_ACCOUNTS;
    /// @notice Bounds on the pool token's price (base units).
    uint256 public immutable MIN_POOL_TOKEN_PRICE;
    /// @notice See `MIN_POOL_TOKEN_PRICE`.
    uint256 public immutable MAX_POOL_TOKEN_PRICE;
    /// @notice Highest believed price of any reserve (base units).
    uint256 public immutable MAX_ASSET_PRICE;
    /// @notice The member's home vault.
    IBackstopVaultDraws public immutable VAULT;
    /// @notice The member's id in the vaults.
    bytes32 public immutable MEMBER_ID;
    /// @notice Who may declare a remote leg unpaid past its deadline (zero: nobody).
    address public immutable BOOKKEEPER;

    address[] private _accounts;
    mapping(address account => uint256 indexPlusOne) private _slot;
    uint64 private _bookedDraws;
    uint256 private _covered;
    /// @notice Where each remote leg (draw hash, chain id) stands.
    mapping(bytes32 drawHash => mapping(uint64 chainId => LegState)) public legState;

    /// @notice Constructor argument out of range, or the pool token is not a reserve.
    error InvalidConfig();
    /// @notice The account is already tracked.
    error AlreadyTracked(address account);
    /// @notice The account is not tracked.
    error NotTracked(address account);
    /// @notice The tracked-account list holds `maxTracked` accounts already.
    error TrackedAccountsFull(uint256 maxTracked);
    /// @notice The account owes nothing to the market (nothing to track).
    error NoDebt(address account);
    /// @notice The account still owes the market (`untrack`).
    error StillInDebt(address account, uint256 debtBase);
    /// @notice The account may leave bad debt (health factor below 1): it cannot be replaced.
    error NotEvictable(address account, uint256 healthFactor);
    /// @notice The Pool could not give the account's data (a price feed failed).
    error AccountDataUnavailable(address account);
    /// @notice The Aave oracle could not price the reserve.
    error PriceUnavailable(address asset);
    /// @notice A reserve's price is above `MAX_ASSET_PRICE`.
    error AssetPriceOutOfRange(address asset, uint256 price);
    /// @notice The pool token's price is outside its bounds.
    error PoolTokenPriceOutOfRange(uint256 price);
    /// @notice `solvency()` read while a state-changing call of this contract runs.
    error ReentrantRead();
    /// @notice The draw is not the next one to book (`expected` is `bookedDraws()`).
    error NotNextDraw(uint64 expected, uint64 seq);
    /// @notice The draw is for another member.
    error WrongMember(bytes32 member);
    /// @notice The home vault has not registered this draw (`registered` is what it has).
    error DrawNotRegistered(bytes32 drawHash, bytes32 registered);
    /// @notice The home vault pays the member's home leg to another recipient.
    error NotRecipient(address recipient);
    /// @notice The leg index names the home leg or no leg.
    error NotRemoteLeg(uint256 index);
    /// @notice The remote leg was brought home or declared unpaid already.
    error LegNotPending(bytes32 drawHash, uint64 chainId);
    /// @notice A remote leg is neither brought home nor declared unpaid.
    error LegOutstanding(bytes32 drawHash, uint64 chainId);
    /// @notice Only the bookkeeper declares a leg unpaid.
    error NotBookkeeper(address caller);
    /// @notice A leg may be declared unpaid only after the draw's `legDeadline`.
    error LegStillPayable(uint64 legDeadline);

    /// @notice An account is tracked.
    event AccountTracked(address indexed account);
    /// @notice An account is no longer tracked.
    event AccountUntracked(address indexed account);
    /// @notice Pool tokens held here repaid an account's bad debt.
    event BadDebtRepaid(address indexed account, uint256 amount);
    /// @notice A remote leg's amount was brought to these books.
    event LegBroughtHome(bytes32 indexed drawHash, uint64 indexed chainId, address from, uint256 amount);
    /// @notice The bookkeeper declared a remote leg unpaid past its deadline.
    event LegDeclaredUnpaid(bytes32 indexed drawHash, uint64 indexed chainId);
    /// @notice Draw `seq` is settled in these books (`bookedDraws()` is now `seq + 1`).
    event DrawBooked(uint64 indexed seq, bytes32 indexed drawHash);

    constructor(Config memory c) {
        if (
            c.pool == address(0) || c.poolToken == address(0) || c.vault == address(0) || c.maxTracked == 0
                || c.maxTracked > MAX_TRACKED || c.minPoolTokenPrice == 0 || c.minPoolTokenPrice > c.maxPoolTokenPrice
                || c.maxAssetPrice < c.maxPoolTokenPrice
        ) {
            revert InvalidConfig();
        }
        IAaveV3Pool.ReserveData memory r = IAaveV3Pool(c.pool).getReserveData(c.poolToken);
        if (r.aTokenAddress == address(0)) revert InvalidConfig();
        POOL = IAaveV3Pool(c.pool);
        POOL_TOKEN = IERC20(c.poolToken);
        POOL_TOKEN_UNIT = 10 ** ((r.configuration.data >> 48) & 0xff);
        VARIABLE_DEBT_TOKEN = IERC20(r.variableDebtTokenAddress);
        STABLE_DEBT_TOKEN = IERC20(r.stableDebtTokenAddress);
        MAX_TRACKED_ACCOUNTS = c.maxTracked;
        MIN_POOL_TOKEN_PRICE = c.minPoolTokenPrice;
        MAX_POOL_TOKEN_PRICE = c.maxPoolTokenPrice;
        MAX_ASSET_PRICE = c.maxAssetPrice;
        VAULT = IBackstopVaultDraws(c.vault);
        MEMBER_ID = c.memberId;
        BOOKKEEPER = c.bookkeeper;
    }

    // ------------------------------------------------------------------ member views

    /// @inheritdoc IBackstopMember
    /// @dev Pool-token units; see the contract's notice for the formula. Reverts on a price
    ///      it does not believe, and when read from inside a call of this contract.
    function solvency() external view returns (uint256 assets, uint256 liabilities) {
        if (_reentrancyGuardEntered()) revert ReentrantRead();
        (uint256 debtBase, uint256 recoverableBase, uint256 price,) = _measure();
        liabilities = Math.mulDiv(debtBase - recoverableBase, POOL_TOKEN_UNIT, price, Math.Rounding.Ceil) + _covered;
        assets = POOL_TOKEN.balanceOf(address(this)) + _covered;
    }

    /// @notice Pool tokens this contract spent repaying bad debt, in all (on both sides of
    ///         the books `solvency()` reports).
    function covered() external view returns (uint256) {
        return _covered;
    }

    /// @inheritdoc IBackstopMember
    function bookedDraws() external view returns (uint64) {
        return _bookedDraws;
    }

    /// @notice The measurement behind `solvency()`, in base units (USD, 8 decimals).
    /// @return debtBase Debt of the underwater tracked accounts.
    /// @return recoverableBase What liquidating them recovers.
    /// @return poolTokenPrice The pool token's price.
    /// @return underwater How many tracked accounts are underwater.
    function measure()
        external
        view
        returns (uint256 debtBase, uint256 recoverableBase, uint256 poolTokenPrice, uint256 underwater)
    {
        if (_reentrancyGuardEntered()) revert ReentrantRead();
        return _measure();
    }

    /// @notice The tracked accounts.
    function trackedAccounts() external view returns (address[] memory) {
        return _accounts;
    }

    /// @notice Whether `account` is tracked.
    function isTracked(address account) external view returns (bool) {
        return _slot[account] != 0;
    }

    // ------------------------------------------------------------------ tracked accounts

    /// @notice Tracks `account` (anyone). It must owe the market something.
    function track(address account) external nonReentrant {
        if (_slot[account] != 0) revert AlreadyTracked(account);
        if (_accounts.length >= MAX_TRACKED_ACCOUNTS) revert TrackedAccountsFull(MAX_TRACKED_ACCOUNTS);
        _requireDebt(account);
        _accounts.push(account);
        _slot[account] = _accounts.length;
        emit AccountTracked(account);
    }

    /// @notice Replaces tracked `evicted`, whose health factor is at least 1 (it cannot leave
    ///         bad debt now), by `account`, which must owe the market something (anyone).
    function replace(address evicted, address account) external nonReentrant {
        uint256 slot = _slot[evicted];
        if (slot == 0) revert NotTracked(evicted);
        if (_slot[account] != 0) revert AlreadyTracked(account);
        (,,,,, uint256 hf) = _accountData(evicted);
        if (hf < HEALTH_FACTOR_ONE) revert NotEvictable(evicted, hf);
        _requireDebt(account);
        _accounts[slot - 1] = account;
        delete _slot[evicted];
        _slot[account] = slot;
        emit AccountUntracked(evicted);
        emit AccountTracked(account);
    }

    /// @notice Stops tracking `account`, which owes the market nothing any more (anyone).
    function untrack(address account) external nonReentrant {
        uint256 slot = _slot[account];
        if (slot == 0) revert NotTracked(account);
        (, uint256 debtBase,,,,) = _accountData(account);
        if (debtBase != 0) revert StillInDebt(account, debtBase);
        address last = _accounts[_accounts.length - 1];
        _accounts[slot - 1] = last;
        _slot[last] = slot;
        _accounts.pop();
        delete _slot[account];
        emit AccountUntracked(account);
    }

    // ------------------------------------------------------------------ recipient

    /// @notice Spends the pool tokens held here on realised bad debt (anyone): for each tracked
    ///         account left without collateral, repays its pool-token debt (variable, then
    ///         stable) with `Pool.repay(onBehalfOf)`, as far as the balance goes.
    /// @return repaid Pool-token units repaid in all.
    function settle() external nonReentrant returns (uint256 repaid) {
        uint256 balance = POOL_TOKEN.balanceOf(address(this));
        uint256 n = _accounts.length;
        for (uint256 i = 0; i < n && balance != 0; ++i) {
            address account = _accounts[i];
            (uint256 collateralBase, uint256 debtBase,,,,) = _accountData(account);
            if (collateralBase != 0 || debtBase == 0) continue;
            _repay(account, VARIABLE_DEBT_TOKEN, VARIABLE_RATE, balance);
            _repay(account, STABLE_DEBT_TOKEN, STABLE_RATE, POOL_TOKEN.balanceOf(address(this)));
            // What left this contract, whatever the Pool answered.
            uint256 left = POOL_TOKEN.balanceOf(address(this));
            uint256 paid = balance - left;
            if (paid != 0) {
                balance = left;
                repaid += paid;
                emit BadDebtRepaid(account, paid);
            }
        }
        _covered += repaid;
    }

    /// @notice Brings remote leg `index` of registered draw `draw` into these books: pulls its
    ///         amount of pool tokens from the caller (the member's bridge, having received
    ///         the leg on its chain).
    function bringHome(IBackstopVault.Draw calldata draw, uint256 index) external nonReentrant {
        bytes32 drawHash = _registered(draw);
        uint64 chainId = _remoteLeg(draw, index);
        if (legState[drawHash][chainId] != LegState.Pending) revert LegNotPending(drawHash, chainId);
        legState[drawHash][chainId] = LegState.BroughtHome;
        uint256 amount = draw.legs[index].amount;
        POOL_TOKEN.safeTransferFrom(msg.sender, address(this), amount);
        emit LegBroughtHome(drawHash, chainId, msg.sender, amount);
    }

    /// @notice The bookkeeper states that remote leg `index` of `draw` was never paid; only
    ///         after the draw's `legDeadline`, when it no longer can be.
    function declareLegUnpaid(IBackstopVault.Draw calldata draw, uint256 index) external nonReentrant {
        if (msg.sender != BOOKKEEPER || BOOKKEEPER == address(0)) revert NotBookkeeper(msg.sender);
        if (block.timestamp <= draw.legDeadline) revert LegStillPayable(draw.legDeadline);
        bytes32 drawHash = _registered(draw);
        uint64 chainId = _remoteLeg(draw, index);
        if (legState[drawHash][chainId] != LegState.Pending) revert LegNotPending(drawHash, chainId);
        legState[drawHash][chainId] = LegState.DeclaredUnpaid;
        emit LegDeclaredUnpaid(drawHash, chainId);
    }

    /// @notice Declares draw `bookedDraws()` booked (anyone) once all its legs are in these
    ///         books: the home leg paid here at registration, each remote leg brought home or
    ///         declared unpaid.
    function bookDraw(IBackstopVault.Draw calldata draw) external nonReentrant {
        if (draw.seq != _bookedDraws) revert NotNextDraw(_bookedDraws, draw.seq);
        bytes32 drawHash = _registered(draw);
        address recipient = VAULT.member(MEMBER_ID).recipient;
        if (recipient != address(this)) revert NotRecipient(recipient);
        uint256 n = draw.legs.length;
        for (uint256 i = 0; i < n; ++i) {
            uint64 chainId = draw.legs[i].chainId;
            if (chainId != block.chainid && legState[drawHash][chainId] == LegState.Pending) {
                revert LegOutstanding(drawHash, chainId);
            }
        }
        _bookedDraws = draw.seq + 1;
        emit DrawBooked(draw.seq, drawHash);
    }

    // ------------------------------------------------------------------ internals

    /// @dev Sums the underwater tracked accounts' debt and what liquidating them recovers
    ///      (base units), after checking every reserve's price.
    function _measure()
        private
        view
        returns (uint256 debtBase, uint256 recoverableBase, uint256 poolTokenPrice, uint256 underwater)
    {
        uint256 maxBonus;
        (maxBonus, poolTokenPrice) = _checkReserves();
        uint256 n = _accounts.length;
        for (uint256 i = 0; i < n; ++i) {
            address account = _accounts[i];
            (uint256 collateralBase, uint256 accountDebt,,,, uint256 hf) = _accountData(account);
            if (accountDebt == 0 || hf >= HEALTH_FACTOR_ONE) continue;
            uint256 bonus = maxBonus;
            uint256 category = POOL.getUserEMode(account);
            if (category != 0) {
                // Category ids are uint8 in Aave v3.0 (`setUserEMode(uint8)`).
                // forge-lint: disable-next-line(unsafe-typecast)
                uint256 eModeBonus = POOL.getEModeCategoryData(uint8(category)).liquidationBonus;
                if (eModeBonus > bonus) bonus = eModeBonus;
            }
            uint256 recoverable = Math.mulDiv(collateralBase, BPS, bonus);
            debtBase += accountDebt;
            recoverableBase += Math.min(recoverable, accountDebt);
            ++underwater;
        }
    }

    /// @dev Checks every reserve's price; returns the largest liquidation bonus over the
    ///      collateral reserves (at least 10000) and the pool token's price.
    function _checkReserves() private view returns (uint256 maxBonus, uint256 poolTokenPrice) {
        IAaveV3Oracle oracle = IAaveV3Oracle(IAaveV3AddressesProvider(POOL.ADDRESSES_PROVIDER()).getPriceOracle());
        address[] memory reserves = POOL.getReservesList();
        maxBonus = BPS;
        for (uint256 i = 0; i < reserves.length; ++i) {
            address asset = reserves[i];
            uint256 price;
            try oracle.getAssetPrice(asset) returns (uint256 p) {
                price = p;
            } catch {
                revert PriceUnavailable(asset);
            }
            if (price == 0) revert PriceUnavailable(asset);
            if (price > MAX_ASSET_PRICE) revert AssetPriceOutOfRange(asset, price);
            if (asset == address(POOL_TOKEN)) {
                if (price < MIN_POOL_TOKEN_PRICE || price > MAX_POOL_TOKEN_PRICE) {
                    revert PoolTokenPriceOutOfRange(price);
                }
                poolTokenPrice = price;
            }
            uint256 data = POOL.getConfiguration(asset).data;
            uint256 threshold = (data >> 16) & 0xffff;
            uint256 bonus = (data >> 32) & 0xffff;
            if (threshold != 0 && bonus > maxBonus) maxBonus = bonus;
        }
        // The pool token's reserve was dropped from the market: nothing to price with.
        if (poolTokenPrice == 0) revert PriceUnavailable(address(POOL_TOKEN));
    }

    function _accountData(address account)
        private
        view
        returns (
            uint256 collateralBase,
            uint256 debtBase,
            uint256 availableBorrowsBase,
            uint256 liquidationThreshold,
            uint256 ltv,
            uint256 healthFactor
        )
    {
        try POOL.getUserAccountData(account) returns (
            uint256 c, uint256 d, uint256 a, uint256 t, uint256 l, uint256 h
        ) {
            return (c, d, a, t, l, h);
        } catch {
            revert AccountDataUnavailable(account);
        }
    }

    function _requireDebt(address account) private view {
        (, uint256 debtBase,,,,) = _accountData(account);
        if (debtBase == 0) revert NoDebt(account);
    }

    /// @dev Repays at most `budget` of `account`'s debt in `debtToken` (rate mode `mode`).
    function _repay(address account, IERC20 debtToken, uint256 mode, uint256 budget) private {
        if (address(debtToken) == address(0) || budget == 0) return;
        uint256 amount = Math.min(debtToken.balanceOf(account), budget);
        if (amount == 0) return;
        POOL_TOKEN.forceApprove(address(POOL), amount);
        POOL.repay(address(POOL_TOKEN), amount, mode, account);
        POOL_TOKEN.forceApprove(address(POOL), 0);
    }

    /// @dev The hash of `draw` if the home vault registered it for this member, else reverts.
    function _registered(IBackstopVault.Draw calldata draw) private view returns (bytes32 drawHash) {
        if (draw.member != MEMBER_ID) revert WrongMember(draw.member);
        drawHash = VAULT.hashDraw(draw);
        bytes32 registered = VAULT.drawOf(MEMBER_ID, draw.seq);
        if (registered != drawHash) revert DrawNotRegistered(drawHash, registered);
    }

    function _remoteLeg(IBackstopVault.Draw calldata draw, uint256 index) private view returns (uint64 chainId) {
        if (index >= draw.legs.length || draw.legs[index].chainId == block.chainid) revert NotRemoteLeg(index);
        return draw.legs[index].chainId;
    }
}
