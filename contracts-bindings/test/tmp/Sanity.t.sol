// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;
import {BaseTest} from "../utils/BaseTest.sol";
contract SanityTest is BaseTest {
    function test_failingAssert() public pure { assertEq(uint256(1), uint256(2), "one vs two"); }
    function test_failingBytes32() public pure { assertEq(bytes32(uint256(1)), bytes32(0)); }
    function test_passing() public pure { assertEq(uint256(1), uint256(1)); assertEq(bound(5, 10, 20), 15); assertEq(bound(type(uint256).max, 0, type(uint256).max), type(uint256).max); }
}
