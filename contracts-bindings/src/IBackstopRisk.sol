// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title IBackstopRisk: an optional view of a member's market risk, per oracle asset
/// @notice Nodes read it at the same pinned block of the member's home chain as
///         `IBackstopMember.solvency()`, to stress the member's books under price moves.
///         Amounts are in pool-token units. A member without this view is stressed only
///         by its solvency history. Nodes refuse, as a whole, an answer with more than 16
///         entries, a zero or repeated oracle, or a delta or gamma of magnitude 2^127 or
///         more; a reverting view counts as no view.
interface IBackstopRisk {
    /// @notice One asset's exposure. `delta`: change of the member's equity (assets -
    ///         liabilities, pool-token units) for a +100% move of the asset's price (first
    ///         order); `gamma`: its second derivative, so that for a relative move m
    ///         (-1 = -100%) equity changes by about delta*m + gamma*m*m/2.
    struct Exposure {
        address oracle;
        int256 delta;
        int256 gamma;
    }

    /// @notice One entry per oracle (a price feed on the member's home chain), at most 16.
    function riskExposures() external view returns (Exposure[] memory);
}
