// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IBackstopMember} from "./IBackstopMember.sol";
import {IBackstopRisk} from "./IBackstopRisk.sol";
import {IBackstopVault} from "./IBackstopVault.sol";

/// @notice The views of a vault the lens reads (`BackstopVault` implements them).
interface IVaultMemberViews {
    function member(bytes32 id) external view returns (IBackstopVault.Member memory);
    function isFrozen(bytes32 id) external view returns (bool);
    function coverageAvailable(bytes32 id) external view returns (uint256);
}

/// @title SnapshotLens: what a node reads of a vault, its members and oracles at one block,
///        in few calls
/// @notice Never deployed. A node places this runtime code at an unused address with an
///         `eth_call` state override and calls `read` at a pinned block, instead of three
///         calls per member on the vault and three per member protocol, and `calls` for the
///         vault's own state and the oracles' answers, instead of one request per view.
///         In `read`, the vault's views are called plainly: if one fails, the whole read fails and the
///         node reads member by member. A member protocol's views are not trusted: each is
///         called with at most the gas the node allows and its answer kept up to the bytes
///         the node allows (`size` says how long it was); the node makes its own call for a
///         view that failed or answered more, so the lens never changes what a view is read
///         as. The node passes the bounds, so they are defined once, in the node.
contract SnapshotLens {
    /// @notice A view as called (a member protocol's in `read`, any in `calls`).
    /// @param ok It returned (did not revert or run out of gas).
    /// @param size Length of its return data.
    /// @param data Its return data, cut at the bound the node passed.
    struct View {
        bool ok;
        uint256 size;
        bytes data;
    }

    /// @notice Gas and bytes the node allows a member protocol's views.
    /// @param viewGas Gas given to each view.
    /// @param booksBytes Bytes kept of `solvency()` and `bookedDraws()`.
    /// @param riskBytes Bytes kept of `riskExposures()`.
    struct Bounds {
        uint256 viewGas;
        uint256 booksBytes;
        uint256 riskBytes;
    }

    /// @notice One member as the vault knows it, and its protocol's views.
    /// @param record `abi.encode(member(id))`; empty when the vault does not know the member
    ///        (zero recipient), and then nothing else is read.
    /// @param frozen `isFrozen(id)`.
    /// @param coverageAvailable `coverageAvailable(id)`.
    /// @param solvency `solvency()` of its protocol (not called when none is given).
    /// @param bookedDraws `bookedDraws()` of its protocol (likewise).
    /// @param risk `riskExposures()` of its protocol (likewise).
    struct MemberRead {
        bytes record;
        bool frozen;
        uint256 coverageAvailable;
        View solvency;
        View bookedDraws;
        View risk;
    }

    /// @notice A static call for `calls`: `data` on `target`, with at most `gas`, its answer
    ///         kept up to `maxBytes`.
    struct Call {
        address target;
        bytes data;
        uint256 gas;
        uint256 maxBytes;
    }

    /// @notice Makes each of `cs` in turn, as `read` calls a member protocol's views: a call
    ///         that fails does not fail the others, and `size` says how long each answer was.
    ///         A node reads a vault's state and its oracles this way, in one request.
    function calls(Call[] calldata cs) external view returns (View[] memory out) {
        out = new View[](cs.length);
        for (uint256 i = 0; i < cs.length; i++) {
            out[i] = _view(cs[i].target, cs[i].data, cs[i].gas, cs[i].maxBytes);
        }
    }

    /// @notice Reads members `ids` on `vault`, and the views of `protocols[i]` for each known
    ///         member whose `protocols[i]` is not zero.
    function read(address vault, bytes32[] calldata ids, address[] calldata protocols, Bounds calldata bounds)
        external
        view
        returns (MemberRead[] memory out)
    {
        require(ids.length == protocols.length, "SnapshotLens: lengths differ");
        IVaultMemberViews v = IVaultMemberViews(vault);
        out = new MemberRead[](ids.length);
        for (uint256 i = 0; i < ids.length; i++) {
            MemberRead memory m = out[i];
            IBackstopVault.Member memory record = v.member(ids[i]);
            if (record.recipient == address(0)) continue;
            m.record = abi.encode(record);
            m.frozen = v.isFrozen(ids[i]);
            m.coverageAvailable = v.coverageAvailable(ids[i]);
            address p = protocols[i];
            if (p != address(0)) {
                uint256 gas_ = bounds.viewGas;
                m.solvency = _view(p, abi.encodeCall(IBackstopMember.solvency, ()), gas_, bounds.booksBytes);
                m.bookedDraws = _view(p, abi.encodeCall(IBackstopMember.bookedDraws, ()), gas_, bounds.booksBytes);
                m.risk = _view(p, abi.encodeCall(IBackstopRisk.riskExposures, ()), gas_, bounds.riskBytes);
            }
        }
    }

    /// @dev A static call of `input` on `target` with `gas_`, its answer cut at `maxBytes`.
    function _view(address target, bytes memory input, uint256 gas_, uint256 maxBytes)
        private
        view
        returns (View memory r)
    {
        bool ok;
        uint256 size;
        bytes memory data;
        assembly ("memory-safe") {
            ok := staticcall(gas_, target, add(input, 32), mload(input), 0, 0)
            size := returndatasize()
            let n := size
            if gt(n, maxBytes) { n := maxBytes }
            data := mload(0x40)
            mstore(data, n)
            returndatacopy(add(data, 32), 0, n)
            mstore(0x40, add(add(data, 32), and(add(n, 31), not(31))))
        }
        r = View(ok, size, data);
    }
}
