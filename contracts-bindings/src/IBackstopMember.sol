// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IBackstopMember: what a member protocol exposes to the Backstop nodes
/// @notice Nodes read both views at the same pinned block of the member's home chain.
///         Amounts are in pool-token units.
interface IBackstopMember {
    /// @notice The member's books: what it owns and what it owes. A gap
    ///         (liabilities above assets) is what the consortium may cover.
    function solvency() external view returns (uint256 assets, uint256 liabilities);

    /// @notice How many of the member's Backstop draws (seq 0, 1, ...) are settled in its
    ///         books: every leg of the draw either paid and included in `solvency()`, or
    ///         past the draw's `legDeadline` unpaid. A draw with a leg still payable is not
    ///         settled, even if every leg paid so far is booked: the pending leg would pay
    ///         part of the loss the books still show. Nodes price draw `seq > 0` only while
    ///         this is at least `seq`. A member without this view is covered once.
    function bookedDraws() external view returns (uint64);
}
