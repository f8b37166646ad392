// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {MockMember} from "../src/fixtures/MockMember.sol";
import {MockOracle} from "../src/fixtures/MockOracle.sol";
import {MockToken} from "../src/fixtures/MockToken.sol";
import {BaseTest} from "./utils/BaseTest.sol";

/// @notice The test fixtures behave as the node and the drills expect.
contract FixturesTest is BaseTest {
    event SolvencySet(uint256 assets, uint256 liabilities);
    event BookedDrawsSet(uint64 bookedDraws);
    event AnswerSet(uint80 indexed roundId, int256 answer, uint256 updatedAt);

    function test_mockToken_hasSixDecimalsAndMints() public {
        MockToken token = new MockToken("Pool USD", "pUSD");
        assertEq(token.decimals(), 6);
        assertEq(token.name(), "Pool USD");
        assertEq(token.symbol(), "pUSD");
        token.mint(address(0xA11CE), 5e6);
        token.mint(address(0xA11CE), 1);
        assertEq(token.balanceOf(address(0xA11CE)), 5e6 + 1);
        assertEq(token.totalSupply(), 5e6 + 1);
    }

    function test_mockMember_reportsAndChangesSolvency() public {
        MockMember m = new MockMember(100e6, 80e6, address(0xFEED));
        (uint256 assets, uint256 liabilities) = m.solvency();
        assertEq(assets, 100e6);
        assertEq(liabilities, 80e6);
        assertEq(m.oracle(), address(0xFEED));

        vm.expectEmit(true, true, true, true, address(m));
        emit SolvencySet(70e6, 120e6);
        m.setSolvency(70e6, 120e6);
        (assets, liabilities) = m.solvency();
        assertEq(assets, 70e6);
        assertEq(liabilities, 120e6);
    }

    function test_mockMember_booksPayoutsAndDeclaresThemInOneStep() public {
        MockMember m = new MockMember(70e6, 120e6, address(0));
        assertEq(m.bookedDraws(), 0);

        vm.expectEmit(true, true, true, true, address(m));
        emit SolvencySet(120e6, 120e6);
        vm.expectEmit(true, true, true, true, address(m));
        emit BookedDrawsSet(1);
        m.setBooks(120e6, 120e6, 1);
        (uint256 assets, uint256 liabilities) = m.solvency();
        assertEq(assets, 120e6);
        assertEq(liabilities, 120e6);
        assertEq(m.bookedDraws(), 1);

        // A new loss leaves the declaration as it was.
        m.setSolvency(120e6, 150e6);
        assertEq(m.bookedDraws(), 1);
    }

    function test_mockOracle_reportsLatestRound() public {
        vm.warp(1_700_000_000);
        MockOracle o = new MockOracle(8, "ETH / USD", 3_000e8);
        assertEq(o.decimals(), 8);
        assertEq(o.description(), "ETH / USD");
        assertEq(o.version(), 4);
        (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound) =
            o.latestRoundData();
        assertEq(roundId, 1);
        assertEq(answer, 3_000e8);
        assertEq(startedAt, 1_700_000_000);
        assertEq(updatedAt, 1_700_000_000);
        assertEq(answeredInRound, 1);

        vm.warp(1_700_000_100);
        o.setAnswer(2_900e8);
        (roundId, answer,, updatedAt,) = o.latestRoundData();
        assertEq(roundId, 2);
        assertEq(answer, 2_900e8);
        assertEq(updatedAt, 1_700_000_100);
    }

    function test_mockOracle_setAnswerAtSimulatesStaleFeed() public {
        vm.warp(1_700_000_000);
        MockOracle o = new MockOracle(8, "ETH / USD", 3_000e8);
        vm.expectEmit(true, true, true, true, address(o));
        emit AnswerSet(2, -1, 1_600_000_000);
        o.setAnswerAt(-1, 1_600_000_000);
        (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound) =
            o.latestRoundData();
        assertEq(roundId, 2);
        assertEq(answer, -1);
        assertEq(startedAt, 1_600_000_000);
        assertEq(updatedAt, 1_600_000_000);
        assertEq(answeredInRound, 2);
    }
}
