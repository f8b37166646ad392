// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Vm} from "forge-std/Vm.sol";

/// @notice Modern cheatcodes that the old `forge-std/Vm.sol` interface does not declare.
interface VmExtra {
    function addr(uint256 privateKey) external pure returns (address);
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function toString(uint256 value) external pure returns (string memory);
    function toString(int256 value) external pure returns (string memory);
    function toString(address value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function toString(bool value) external pure returns (string memory);
    function toString(bytes calldata value) external pure returns (string memory);
}

/// @notice The cheatcode handles and `bound`, shared by tests and by non-test helpers (invariant handlers).
abstract contract Cheats {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    VmExtra internal constant vmx = VmExtra(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @notice Maps `x` into `[min, max]` (inclusive), without overflow; `x` unchanged when already inside.
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 size = max - min;
        if (size == type(uint256).max) return x;
        return min + x % (size + 1);
    }
}

/// @notice Minimal replacement of forge-std's `Test`: assertions that revert with a
///         descriptive message (forge fails a test that reverts), `bound` (from `Cheats`), and the hooks
///         forge reads to target invariant runs.
abstract contract BaseTest is Cheats {
    /// @notice Marks this contract as a test contract.
    bool public IS_TEST = true;

    /// @notice A contract and the selectors of it an invariant run may call.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetedContracts;
    FuzzSelector[] private _targetedSelectors;

    // ------------------------------------------------------------ invariant targets

    /// @notice Contracts an invariant run calls (all contracts deployed in setUp when empty).
    function targetContracts() public view returns (address[] memory) {
        return _targetedContracts;
    }

    /// @notice Selectors an invariant run calls on each targeted contract.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetedSelectors;
    }

    function targetContract(address target) internal {
        _targetedContracts.push(target);
    }

    function targetSelector(FuzzSelector memory selector) internal {
        _targetedSelectors.push(selector);
    }

    // ------------------------------------------------------------ assertions

    function fail(string memory message) internal pure {
        revert(message);
    }

    function assertTrue(bool condition) internal pure {
        assertTrue(condition, "");
    }

    function assertTrue(bool condition, string memory err) internal pure {
        if (!condition) fail(_message("assertTrue failed", err, ""));
    }

    function assertFalse(bool condition) internal pure {
        assertFalse(condition, "");
    }

    function assertFalse(bool condition, string memory err) internal pure {
        if (condition) fail(_message("assertFalse failed", err, ""));
    }

    function assertEq(uint256 a, uint256 b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(uint256 a, uint256 b, string memory err) internal pure {
        if (a != b) fail(_message("assertEq(uint256) failed", err, _pair(vmx.toString(a), " != ", vmx.toString(b))));
    }

    function assertEq(int256 a, int256 b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(int256 a, int256 b, string memory err) internal pure {
        if (a != b) fail(_message("assertEq(int256) failed", err, _pair(vmx.toString(a), " != ", vmx.toString(b))));
    }

    function assertEq(address a, address b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(address a, address b, string memory err) internal pure {
        if (a != b) fail(_message("assertEq(address) failed", err, _pair(vmx.toString(a), " != ", vmx.toString(b))));
    }

    function assertEq(bytes32 a, bytes32 b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(bytes32 a, bytes32 b, string memory err) internal pure {
        if (a != b) fail(_message("assertEq(bytes32) failed", err, _pair(vmx.toString(a), " != ", vmx.toString(b))));
    }

    function assertEq(bool a, bool b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(bool a, bool b, string memory err) internal pure {
        if (a != b) fail(_message("assertEq(bool) failed", err, _pair(vmx.toString(a), " != ", vmx.toString(b))));
    }

    function assertEq(string memory a, string memory b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(string memory a, string memory b, string memory err) internal pure {
        if (keccak256(bytes(a)) != keccak256(bytes(b))) {
            fail(_message("assertEq(string) failed", err, _pair(a, " != ", b)));
        }
    }

    function assertEq(bytes memory a, bytes memory b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(bytes memory a, bytes memory b, string memory err) internal pure {
        if (keccak256(a) != keccak256(b)) {
            fail(_message("assertEq(bytes) failed", err, _pair(vmx.toString(a), " != ", vmx.toString(b))));
        }
    }

    function assertEq(address[] memory a, address[] memory b) internal pure {
        assertEq(a, b, "");
    }

    function assertEq(address[] memory a, address[] memory b, string memory err) internal pure {
        if (keccak256(abi.encode(a)) != keccak256(abi.encode(b))) {
            fail(_message("assertEq(address[]) failed", err, ""));
        }
    }

    function assertNotEq(bytes32 a, bytes32 b) internal pure {
        assertNotEq(a, b, "");
    }

    function assertNotEq(bytes32 a, bytes32 b, string memory err) internal pure {
        if (a == b) fail(_message("assertNotEq(bytes32) failed", err, vmx.toString(a)));
    }

    function assertNotEq(address a, address b) internal pure {
        assertNotEq(a, b, "");
    }

    function assertNotEq(address a, address b, string memory err) internal pure {
        if (a == b) fail(_message("assertNotEq(address) failed", err, vmx.toString(a)));
    }

    function assertGt(uint256 a, uint256 b) internal pure {
        assertGt(a, b, "");
    }

    function assertGt(uint256 a, uint256 b, string memory err) internal pure {
        if (a <= b) fail(_message("assertGt failed", err, _pair(vmx.toString(a), " <= ", vmx.toString(b))));
    }

    function assertGe(uint256 a, uint256 b) internal pure {
        assertGe(a, b, "");
    }

    function assertGe(uint256 a, uint256 b, string memory err) internal pure {
        if (a < b) fail(_message("assertGe failed", err, _pair(vmx.toString(a), " < ", vmx.toString(b))));
    }

    function assertLt(uint256 a, uint256 b) internal pure {
        assertLt(a, b, "");
    }

    function assertLt(uint256 a, uint256 b, string memory err) internal pure {
        if (a >= b) fail(_message("assertLt failed", err, _pair(vmx.toString(a), " >= ", vmx.toString(b))));
    }

    function assertLe(uint256 a, uint256 b) internal pure {
        assertLe(a, b, "");
    }

    function assertLe(uint256 a, uint256 b, string memory err) internal pure {
        if (a > b) fail(_message("assertLe failed", err, _pair(vmx.toString(a), " > ", vmx.toString(b))));
    }

    // ------------------------------------------------------------ internals

    function _message(string memory what, string memory err, string memory detail)
        private
        pure
        returns (string memory)
    {
        string memory head = bytes(err).length == 0 ? what : string.concat(what, " (", err, ")");
        return bytes(detail).length == 0 ? head : string.concat(head, ": ", detail);
    }

    function _pair(string memory a, string memory sep, string memory b) private pure returns (string memory) {
        return string.concat(a, sep, b);
    }
}
