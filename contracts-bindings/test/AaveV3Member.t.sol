// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {console2} from "forge-std/console2.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {BackstopVault} from "../src/BackstopVault.sol";
import {IBackstopVault} from "../src/IBackstopVault.sol";
import {MockToken} from "../src/fixtures/MockToken.sol";
import {AaveV3Member} from "../src/members/AaveV3Member.sol";
import {VaultFixture} from "./utils/VaultFixture.sol";
import {AaveV3Market, IMintable, ReserveDataLite} from "./utils/AaveV3Market.sol";
import {AaveV3HostilePool} from "./utils/AaveV3Hostile.sol";

/// @notice The Aave v3 member adapter against the real Aave v3.0 bytecode (npm aave/core-v3
///         1.19.3): a market whose USDC reserve is the Backstop pool token of the home vault
///         (6 decimals) and whose WETH reserve is collateral (LTV 80%, threshold 82.5%, bonus 5%).
///
///         The scenario: 100,000 USDC supplied; a borrower supplies 10 WETH at 2,000 USD and
///         borrows 15,000 USDC (health factor 1.1). WETH crashes to 1,000 USD: collateral
///         10,000 USD, debt 15,000 USD, health factor 0.55. Debt - collateral = 5,000 USDC, but a
///         liquidator takes all 10 WETH for 10,000 / 1.05 = 9,523.809524 USDC of debt, so the
///         adapter reports 15,000 - 9,523.809523 = 5,476.190477 USDC before the liquidation and
///         the realised 5,476.190476 after it (1 unit apart: Aave's `percentDiv` rounds the debt
///         repaid half up, the adapter's estimate rounds the recovery down).
contract AaveV3MemberTest is VaultFixture, AaveV3Market {
    bytes32 internal constant AAVE = keccak256("member:aave-v3-weth-usdc");
    uint256 internal constant MAX_TRACKED = 64;
    uint256 internal constant SUPPLY = 100_000e6;
    uint256 internal constant COLLATERAL = 10 ether;
    uint256 internal constant BORROW = 15_000e6;
    uint256 internal constant CRASH_PRICE = 1_000e8;
    /// @dev Before the liquidation: 15,000e6 - floor(1e12 * 10000 / 10500 * 1e6 / 1e8).
    uint256 internal constant DEFICIT_BEFORE = 5_476_190_477;
    /// @dev After it: 15,000e6 - percentDiv(10,000e6, 10500) = 15,000e6 - 9,523,809,524.
    uint256 internal constant BAD_DEBT = 5_476_190_476;

    AaveV3Member internal adapter;
    address internal borrower = makeAddr("borrower");
    address internal supplier = makeAddr("supplier");
    address internal liquidator = makeAddr("liquidator");
    address internal bridge = makeAddr("bridge");
    address internal bookkeeper = makeAddr("bookkeeper");
    uint256 internal adapterDeployGas;

    function setUp() public override {
        super.setUp();
        deployMarket(address(homeToken));
        adapter = newAdapter(MAX_TRACKED);

        // The member: the adapter is its recipient at home; on the remote chain the member's
        // bridge receives. No deductible, so the draw covers the whole gap.
        IBackstopVault.SetMember memory a = setMemberAction(AAVE, address(adapter), HOME_CHAIN, CAP, 0);
        home.setMember(a, sigs(home.hashSetMember(a), T));
        vm.chainId(REMOTE_CHAIN);
        a = setMemberAction(AAVE, bridge, HOME_CHAIN, CAP, 0);
        remote.setMember(a, sigs(remote.hashSetMember(a), T));
        vm.chainId(HOME_CHAIN);

        supply(supplier, usdc, SUPPLY);
        openPosition(borrower, COLLATERAL, BORROW);
        adapter.track(borrower);
    }

    function newAdapter(uint256 maxTracked) internal returns (AaveV3Member m) {
        uint256 gas0 = gasleft();
        m = new AaveV3Member(
            AaveV3Member.Config({
                pool: address(pool),
                poolToken: address(homeToken),
                maxTracked: maxTracked,
                minPoolTokenPrice: 0.9e8,
                maxPoolTokenPrice: 1.1e8,
                maxAssetPrice: 1e8 * 1e7,
                vault: address(home),
                memberId: AAVE,
                bookkeeper: bookkeeper
            })
        );
        adapterDeployGas = gas0 - gasleft();
    }

    // ------------------------------------------------------------------ helpers

    function supply(address who, address asset, uint256 amount) internal {
        IMintable(asset).mint(who, amount);
        vm.startPrank(who);
        IERC20(asset).approve(address(pool), amount);
        pool.supply(asset, amount, who, 0);
        vm.stopPrank();
    }

    function openPosition(address who, uint256 collateral, uint256 debt) internal {
        supply(who, weth, collateral);
        vm.prank(who);
        pool.borrow(usdc, debt, 2, 0, who);
    }

    function crash() internal {
        setPrice(weth, int256(CRASH_PRICE));
    }

    function liquidate(address who) internal {
        homeToken.mint(liquidator, BORROW);
        vm.startPrank(liquidator);
        IERC20(usdc).approve(address(pool), type(uint256).max);
        pool.liquidationCall(weth, usdc, who, type(uint256).max, false);
        vm.stopPrank();
    }

    function gap() internal view returns (uint256) {
        (uint256 assets, uint256 liabilities) = adapter.solvency();
        return liabilities > assets ? liabilities - assets : 0;
    }

    function variableDebt(address who) internal view returns (uint256) {
        return IERC20(pool.getReserveData(usdc).variableDebtTokenAddress).balanceOf(who);
    }

    function aaveDraw(uint64 seq, uint256 gap_, uint256 remoteAmount, uint256 homeAmount)
        internal
        view
        returns (IBackstopVault.Draw memory d)
    {
        IBackstopVault.Leg[] memory legs = new IBackstopVault.Leg[](2);
        legs[0] = IBackstopVault.Leg({chainId: REMOTE_CHAIN, vault: address(remote), amount: remoteAmount});
        legs[1] = IBackstopVault.Leg({chainId: HOME_CHAIN, vault: address(home), amount: homeAmount});
        d = IBackstopVault.Draw({
            member: AAVE,
            seq: seq,
            gap: gap_,
            amount: remoteAmount + homeAmount,
            legs: legs,
            deadline: deadlineIn(1 hours),
            legDeadline: deadlineIn(1 days)
        });
    }

    /// @notice Registers `d` at home (paying the home leg to the adapter) and releases its
    ///         remote leg on the remote vault (paying the member's bridge there).
    function payDraw(IBackstopVault.Draw memory d) internal returns (bytes32 drawHash) {
        drawHash = home.registerDraw(d, sigs(home.hashDraw(d), T));
        vm.chainId(REMOTE_CHAIN);
        IBackstopVault.LegRelease memory rel = legRelease(drawHash, d.seq, d.legs[0].amount, d.legDeadline);
        rel.member = AAVE;
        remote.releaseLeg(rel, sigs(remote.hashLegRelease(rel), T));
        vm.chainId(HOME_CHAIN);
    }

    /// @notice The member's bridge brings the remote leg home (the same amount of the home
    ///         chain's pool token: the bridge's transfer, simulated).
    function bringHome(IBackstopVault.Draw memory d) internal {
        homeToken.mint(bridge, d.legs[0].amount);
        vm.startPrank(bridge);
        IERC20(address(homeToken)).approve(address(adapter), d.legs[0].amount);
        adapter.bringHome(d, 0);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ the market as deployed

    function test_market_realBytecode_healthyBooksShowNoGap() public view {
        (uint256 c, uint256 d,,,, uint256 hf) = pool.getUserAccountData(borrower);
        assertEq(c, 20_000e8, "collateral 20,000 USD");
        assertEq(d, 15_000e8, "debt 15,000 USD");
        assertEq(hf, 1.1e18, "health factor 1.1");
        (uint256 assets, uint256 liabilities) = adapter.solvency();
        assertEq(assets, 0, "no underwater account, nothing held");
        assertEq(liabilities, 0, "no underwater account");
        assertEq(adapter.bookedDraws(), 0);
        console2.log("market deployment gas (transactions only)", marketDeployGas);
        console2.log("of which contract creations", marketCreateGas);
        console2.log("adapter deployment gas", adapterDeployGas);
    }

    // ------------------------------------------------------------------ the loss, covered and booked

    function test_crashLiquidationPayoutRepayment_gapMeasuredCoveredAndBooked() public {
        // The crash: before the liquidation the adapter counts the bonus the liquidator takes.
        crash();
        (uint256 c, uint256 d,,,, uint256 hf) = pool.getUserAccountData(borrower);
        assertEq(c, 10_000e8);
        assertEq(d, 15_000e8);
        assertEq(hf, 0.55e18);
        (uint256 assets, uint256 liabilities) = adapter.solvency();
        assertEq(liabilities, DEFICIT_BEFORE, "liabilities: debt less what liquidation recovers, 10,000 / 1.05");
        assertEq(assets, 0, "nothing held, nothing covered yet");
        assertEq(liabilities - assets, DEFICIT_BEFORE, "5,476.190477 before the liquidation");
        assertTrue(liabilities - assets > BORROW - 10_000e6, "more than debt - collateral (5,000)");
        (uint256 debtBase, uint256 recoverableBase,,) = adapter.measure();
        assertEq(debtBase, 15_000e8, "measure(): the underwater debt");
        assertEq(recoverableBase, 952_380_952_380, "measure(): what liquidation recovers");

        // The liquidation takes all the collateral and leaves the rest of the debt on the books.
        liquidate(borrower);
        (c, d,,,, hf) = pool.getUserAccountData(borrower);
        assertEq(c, 0, "no collateral left");
        assertEq(variableDebt(borrower), BAD_DEBT, "Aave v3.0 keeps the bad debt");
        (assets, liabilities) = adapter.solvency();
        assertEq(liabilities, BAD_DEBT);
        assertEq(assets, 0);
        uint256 measured = liabilities - assets;
        assertEq(measured, BAD_DEBT, "5,476.190476 realised");
        console2.log("deficit before liquidation", DEFICIT_BEFORE);
        console2.log("deficit after liquidation (bad debt)", measured);

        // The draw: 2,000 from the remote vault, the rest from home (paid to the adapter).
        uint256 remoteLeg = 2_000e6;
        IBackstopVault.Draw memory draw = aaveDraw(0, measured, remoteLeg, measured - remoteLeg);
        bytes32 drawHash = payDraw(draw);
        assertEq(homeToken.balanceOf(address(adapter)), measured - remoteLeg, "home leg held");
        assertEq(gap(), remoteLeg, "the held home leg counts as assets at once");
        // Not booked while the remote leg is not in these books.
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.LegOutstanding.selector, drawHash, REMOTE_CHAIN));
        adapter.bookDraw(draw);

        bringHome(draw);
        assertEq(gap(), 0, "both legs held: the gap is closed");

        // The recipient spends the payout on the bad debt: Pool.repay on behalf of the borrower.
        uint256 repaid = adapter.settle();
        assertEq(repaid, BAD_DEBT, "repaid exactly the bad debt");
        assertEq(variableDebt(borrower), 0, "Aave's books: no debt left");
        assertEq(homeToken.balanceOf(address(adapter)), 0, "payout spent");
        (assets, liabilities) = adapter.solvency();
        assertEq(adapter.covered(), BAD_DEBT, "the repaid loss is covered");
        assertEq(assets, BAD_DEBT, "assets did not fall: held -> covered");
        assertEq(liabilities, BAD_DEBT, "no deficit left; the covered loss stays on both sides");
        (debtBase,,,) = adapter.measure();
        assertEq(debtBase, 0, "the gap is closed in Aave's own books");

        adapter.bookDraw(draw);
        assertEq(adapter.bookedDraws(), 1, "draw 0 booked");
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.NotNextDraw.selector, 1, 0));
        adapter.bookDraw(draw);

        adapter.untrack(borrower);
        assertEq(adapter.trackedAccounts().length, 0);
        console2.log("repaid on Aave", repaid);
    }

    function test_payoutBeforeLiquidation_isHeldUntilTheDebtIsBad() public {
        crash();
        assertEq(gap(), DEFICIT_BEFORE);
        IBackstopVault.Draw memory draw = aaveDraw(0, DEFICIT_BEFORE, 1_000e6, DEFICIT_BEFORE - 1_000e6);
        payDraw(draw);
        bringHome(draw);
        assertEq(gap(), 0, "covered while held");
        // An account with collateral left is never repaid: the borrower would gain.
        assertEq(adapter.settle(), 0, "nothing repaid before the liquidation");
        assertEq(variableDebt(borrower), BORROW);

        liquidate(borrower);
        (uint256 assets, uint256 liabilities) = adapter.solvency();
        assertEq(liabilities, BAD_DEBT);
        assertEq(assets, DEFICIT_BEFORE, "held");
        assertEq(adapter.settle(), BAD_DEBT);
        assertEq(variableDebt(borrower), 0);
        (assets, liabilities) = adapter.solvency();
        assertEq(liabilities, BAD_DEBT, "the covered loss");
        assertEq(assets, DEFICIT_BEFORE, "covered + the 1-unit overestimate, still held");
        adapter.bookDraw(draw);
        assertEq(adapter.bookedDraws(), 1);
    }

    // ------------------------------------------------------------------ booking

    function test_bookDraw_revertsWhen_notRegisteredOrAnotherMember() public {
        crash();
        liquidate(borrower);
        IBackstopVault.Draw memory draw = aaveDraw(0, BAD_DEBT, 1_000e6, BAD_DEBT - 1_000e6);
        bytes32 drawHash = home.hashDraw(draw);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.DrawNotRegistered.selector, drawHash, bytes32(0)));
        adapter.bookDraw(draw);
        payDraw(draw);
        IBackstopVault.Draw memory other = aaveDraw(0, BAD_DEBT, 1_000e6, BAD_DEBT - 1_001e6);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.DrawNotRegistered.selector, home.hashDraw(other), drawHash));
        adapter.bookDraw(other);
        other.member = MEMBER;
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.WrongMember.selector, MEMBER));
        adapter.bookDraw(other);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.NotRemoteLeg.selector, 1));
        adapter.bringHome(draw, 1);
    }

    function test_declareLegUnpaid_onlyBookkeeperAfterLegDeadline() public {
        crash();
        liquidate(borrower);
        IBackstopVault.Draw memory draw = aaveDraw(0, BAD_DEBT, 1_000e6, BAD_DEBT - 1_000e6);
        bytes32 drawHash = home.registerDraw(draw, sigs(home.hashDraw(draw), T)); // remote leg never paid
        vm.prank(bookkeeper);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.LegStillPayable.selector, draw.legDeadline));
        adapter.declareLegUnpaid(draw, 0);
        vm.warp(draw.legDeadline + 1);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.NotBookkeeper.selector, address(this)));
        adapter.declareLegUnpaid(draw, 0);
        vm.prank(bookkeeper);
        adapter.declareLegUnpaid(draw, 0);
        assertEq(uint256(adapter.legState(drawHash, REMOTE_CHAIN)), uint256(AaveV3Member.LegState.DeclaredUnpaid));
        adapter.bookDraw(draw);
        assertEq(adapter.bookedDraws(), 1);
        // The home leg alone was paid; it repays part of the bad debt, the rest stays a gap.
        adapter.settle();
        // (A day passed: the bad debt accrued interest over the unpaid leg's 1,000.)
        assertTrue(variableDebt(borrower) >= 1_000e6, "the unpaid leg's share stays owed");
        assertEq(gap(), variableDebt(borrower), "and stays a gap");
    }

    // ------------------------------------------------------------------ bad input

    function test_track_revertsWhen_accountHasNoDebt() public {
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.NoDebt.selector, supplier));
        adapter.track(supplier);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.NoDebt.selector, address(0xCAFE)));
        adapter.track(address(0xCAFE));
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.AlreadyTracked.selector, borrower));
        adapter.track(borrower);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.StillInDebt.selector, borrower, 15_000e8));
        adapter.untrack(borrower);
    }

    function test_track_revertsPastTheCap_healthyAccountsCanBeReplaced() public {
        AaveV3Member small = newAdapter(2);
        address b1 = makeAddr("b1");
        address b2 = makeAddr("b2");
        address b3 = makeAddr("b3");
        openPosition(b1, 1 ether, 1_000e6);
        openPosition(b2, 1 ether, 1_000e6);
        openPosition(b3, 1 ether, 1_000e6);
        small.track(borrower);
        small.track(b1);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.TrackedAccountsFull.selector, 2));
        small.track(b2);
        // b1 is healthy (health factor 3.3): it can be replaced.
        small.replace(b1, b2);
        assertTrue(small.isTracked(b2) && !small.isTracked(b1));
        crash();
        // The borrower is underwater: it cannot be evicted.
        (,,,,, uint256 hf) = pool.getUserAccountData(borrower);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.NotEvictable.selector, borrower, hf));
        small.replace(borrower, b3);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.NotTracked.selector, b3));
        small.replace(b3, b1);
        vm.expectRevert(AaveV3Member.InvalidConfig.selector);
        newAdapter(129);
        vm.expectRevert(AaveV3Member.InvalidConfig.selector);
        newAdapter(0);
    }

    function test_solvency_revertsOnAbsurdPrices() public {
        crash();
        // A feed answering 0 or less: Aave's oracle asks its fallback oracle, and there is none.
        setPrice(weth, 0);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.PriceUnavailable.selector, weth));
        adapter.solvency();
        setPrice(weth, -1);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.PriceUnavailable.selector, weth));
        adapter.solvency();
        // Absurdly high (10^40 base units): refused before anything is summed.
        setPrice(weth, 1e40);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.AssetPriceOutOfRange.selector, weth, 1e40));
        adapter.solvency();
        // The pool token off its bounds (a debt in it would be mispriced in pool-token units).
        setPrice(weth, int256(CRASH_PRICE));
        setPrice(usdc, 5e8);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.PoolTokenPriceOutOfRange.selector, 5e8));
        adapter.solvency();
        setPrice(usdc, 0.5e8);
        vm.expectRevert(abi.encodeWithSelector(AaveV3Member.PoolTokenPriceOutOfRange.selector, 0.5e8));
        adapter.solvency();
        // Back to sane prices: the same answer as before.
        setPrice(usdc, 1e8);
        assertEq(gap(), DEFICIT_BEFORE);
        // A collateral price inside the bounds is believed, and bounded by the debt: WETH at
        // one base unit leaves all 15,000 USDC of debt unrecovered, never more.
        setPrice(weth, 1);
        (uint256 assets, uint256 liabilities) = adapter.solvency();
        assertEq(liabilities, BORROW);
        assertEq(assets, 0);
    }

    function test_reentrancy_everyEntryPointRefusedDuringRepay() public {
        address victim = makeAddr("victim");
        AaveV3HostilePool hostile = new AaveV3HostilePool(address(homeToken), victim);
        AaveV3Member m = new AaveV3Member(
            AaveV3Member.Config({
                pool: address(hostile),
                poolToken: address(homeToken),
                maxTracked: 4,
                minPoolTokenPrice: 0.9e8,
                maxPoolTokenPrice: 1.1e8,
                maxAssetPrice: 1e15,
                vault: address(home),
                memberId: AAVE,
                bookkeeper: bookkeeper
            })
        );
        hostile.setAdapter(m);
        m.track(victim);
        homeToken.mint(address(m), 100);
        m.settle();
        assertTrue(hostile.repayCalled(), "repay was reached");
        assertEq(hostile.reentered(), 0, "no reentrant call got through");
        assertEq(hostile.refused(), 8, "all eight entry points refused by the guard");
        assertEq(hostile.otherFailures(), 0, "and for no other reason");
        // Outside a call, the same views answer.
        (uint256 assets, uint256 liabilities) = m.solvency();
        assertEq(liabilities, 100);
        assertEq(assets, 100);
    }

    // ------------------------------------------------------------------ gas

    /// @dev Execution gas of `solvency()` with every account cold (as a fresh `eth_call`; the
    ///      21k base of a transaction is not included).
    function test_gas_solvency_oneAndCapTrackedAccounts() public {
        crash();
        address[] memory extra = new address[](1);
        extra[0] = address(adapter);
        coolMarket(extra);
        uint256 g0 = gasleft();
        adapter.solvency();
        uint256 one = g0 - gasleft();
        // Fill the list: MAX_TRACKED - 1 more borrowers, all underwater after the crash (the
        // dearest case: each also reads its eMode), at 1,000 USD per WETH.
        for (uint256 i = 1; i < MAX_TRACKED; ++i) {
            address b = address(uint160(0x10000 + i));
            openPosition(b, 1 ether, 700e6);
            adapter.track(b);
        }
        setPrice(weth, 500e8);
        coolMarket(extra);
        g0 = gasleft();
        (uint256 assets, uint256 liabilities) = adapter.solvency();
        uint256 full = g0 - gasleft();
        (,,, uint256 underwater) = adapter.measure();
        assertEq(underwater, MAX_TRACKED, "all underwater");
        assertTrue(liabilities > assets);
        console2.log("solvency() gas, 1 tracked account", one);
        console2.log("solvency() gas, cap (64) tracked accounts", full);
        console2.log("per extra account", (full - one) / (MAX_TRACKED - 1));
        assertTrue(full < 3_000_000, "bounded");
    }
}
