// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Cheats} from "./BaseTest.sol";

/// @notice Guardian keys and builders of the packed signature blobs the vault verifies:
///         `r || s || v` (65 bytes each, v = 27 or 28), signers in strictly ascending address order.
abstract contract Signers is Cheats {
    /// @dev Order of secp256k1; a signature with s > N/2 is "high s".
    uint256 internal constant SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    /// @notice Private keys `firstKey .. firstKey + n - 1`, sorted by their addresses.
    function keySet(uint256 firstKey, uint256 n) internal pure returns (uint256[] memory keys) {
        keys = new uint256[](n);
        for (uint256 i = 0; i < n; ++i) {
            keys[i] = firstKey + i;
        }
        sortByAddress(keys);
    }

    /// @notice Addresses of `keys`, in the same order.
    function addressesOf(uint256[] memory keys) internal pure returns (address[] memory addrs) {
        addrs = new address[](keys.length);
        for (uint256 i = 0; i < keys.length; ++i) {
            addrs[i] = vmx.addr(keys[i]);
        }
    }

    /// @notice Sorts keys in place by ascending address (insertion sort: sets are small).
    function sortByAddress(uint256[] memory keys) internal pure {
        for (uint256 i = 1; i < keys.length; ++i) {
            uint256 key = keys[i];
            address a = vmx.addr(key);
            uint256 j = i;
            while (j > 0 && vmx.addr(keys[j - 1]) > a) {
                keys[j] = keys[j - 1];
                --j;
            }
            keys[j] = key;
        }
    }

    /// @notice The first `count` keys of `keys`.
    function firstKeys(uint256[] memory keys, uint256 count) internal pure returns (uint256[] memory out) {
        out = new uint256[](count);
        for (uint256 i = 0; i < count; ++i) {
            out[i] = keys[i];
        }
    }

    /// @notice The keys of `keys` whose bit is set in `mask` (bit i selects keys[i]), order kept.
    function subset(uint256[] memory keys, uint256 mask) internal pure returns (uint256[] memory out) {
        uint256 count = 0;
        for (uint256 i = 0; i < keys.length; ++i) {
            if (mask & (1 << i) != 0) ++count;
        }
        out = new uint256[](count);
        uint256 k = 0;
        for (uint256 i = 0; i < keys.length; ++i) {
            if (mask & (1 << i) != 0) out[k++] = keys[i];
        }
    }

    /// @notice One 65-byte signature `r || s || v` of `digest` by `key`.
    function signature(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vmx.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @notice Signatures of `digest` by `keys`, concatenated in the given order (the caller
    ///         chooses the order: sorted keys give a valid blob, others test the order checks).
    function signatures(uint256[] memory keys, bytes32 digest) internal pure returns (bytes memory blob) {
        for (uint256 i = 0; i < keys.length; ++i) {
            blob = bytes.concat(blob, signature(keys[i], digest));
        }
    }

    /// @notice Signatures of `digest` by the first `count` keys of the (sorted) `keys`.
    function signatures(uint256[] memory keys, uint256 count, bytes32 digest) internal pure returns (bytes memory) {
        return signatures(firstKeys(keys, count), digest);
    }

    /// @notice The same signature with `s` replaced by `N - s` and `v` flipped: it recovers to the
    ///         same signer, and ECDSA malleability checks must refuse it.
    function highS(bytes memory sig) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s, uint8 v) = split(sig);
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    /// @notice The same signature with another `v`.
    function withV(bytes memory sig, uint8 v) internal pure returns (bytes memory) {
        (bytes32 r, bytes32 s,) = split(sig);
        return abi.encodePacked(r, s, v);
    }

    /// @notice 65 bytes that recover to no address (r = 0).
    function garbageSignature() internal pure returns (bytes memory) {
        return abi.encodePacked(bytes32(0), bytes32(uint256(1)), uint8(27));
    }

    /// @notice The address a 65-byte signature recovers to for `digest` (zero when none).
    function recover(bytes32 digest, bytes memory sig) internal pure returns (address) {
        (bytes32 r, bytes32 s, uint8 v) = split(sig);
        return ecrecover(digest, v, r, s);
    }

    /// @notice Signature `index` of a blob.
    function sigAt(bytes memory blob, uint256 index) internal pure returns (bytes memory sig) {
        sig = new bytes(65);
        for (uint256 i = 0; i < 65; ++i) {
            sig[i] = blob[index * 65 + i];
        }
    }

    function split(bytes memory sig) internal pure returns (bytes32 r, bytes32 s, uint8 v) {
        require(sig.length == 65, "split: not 65 bytes");
        assembly ("memory-safe") {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
    }
}
