// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IBackstopRisk} from "../src/IBackstopRisk.sol";
import {HostileRisk} from "../src/fixtures/HostileRisk.sol";
import {MockMember} from "../src/fixtures/MockMember.sol";
import {BaseTest} from "./utils/BaseTest.sol";

/// @notice MockMember's risk view (`IBackstopRisk`): set, replace, clear, bound; and the
///         hostile fixture's answers.
contract MockMemberTest is BaseTest {
    event ExposureSet(address indexed oracle, int256 delta, int256 gamma);
    event ExposuresCleared();

    address private constant ETH = address(0xE7);
    address private constant BTC = address(0xB7C);

    function _member() private returns (MockMember) {
        return new MockMember(100e6, 80e6, ETH);
    }

    function _assertExposure(IBackstopRisk.Exposure memory e, address oracle, int256 delta, int256 gamma) private pure {
        assertEq(e.oracle, oracle, "oracle");
        assertEq(e.delta, delta, "delta");
        assertEq(e.gamma, gamma, "gamma");
    }

    function test_riskView_isEmptyUntilSet() public {
        MockMember m = _member();
        assertEq(m.riskExposures().length, 0);
        assertEq(m.MAX_EXPOSURES(), 16);
    }

    function test_setExposure_appendsInOrderAndEmits() public {
        MockMember m = _member();
        vm.expectEmit(true, true, true, true, address(m));
        emit ExposureSet(ETH, 500e6, -20e6);
        m.setExposure(ETH, 500e6, -20e6);
        m.setExposure(BTC, -300e6, 7e6);
        IBackstopRisk.Exposure[] memory e = m.riskExposures();
        assertEq(e.length, 2);
        _assertExposure(e[0], ETH, 500e6, -20e6);
        _assertExposure(e[1], BTC, -300e6, 7e6);
        // The solvency view is unaffected.
        (uint256 assets, uint256 liabilities) = m.solvency();
        assertEq(assets, 100e6);
        assertEq(liabilities, 80e6);
    }

    function test_setExposure_replacesTheOraclesEntryInPlace() public {
        MockMember m = _member();
        m.setExposure(ETH, 500e6, -20e6);
        m.setExposure(BTC, -300e6, 7e6);
        vm.expectEmit(true, true, true, true, address(m));
        emit ExposureSet(ETH, 1, 2);
        m.setExposure(ETH, 1, 2);
        IBackstopRisk.Exposure[] memory e = m.riskExposures();
        assertEq(e.length, 2);
        _assertExposure(e[0], ETH, 1, 2);
        _assertExposure(e[1], BTC, -300e6, 7e6);
    }

    function test_clearExposures_removesEveryEntry() public {
        MockMember m = _member();
        m.setExposure(ETH, 500e6, -20e6);
        m.setExposure(BTC, -300e6, 7e6);
        vm.expectEmit(true, true, true, true, address(m));
        emit ExposuresCleared();
        m.clearExposures();
        assertEq(m.riskExposures().length, 0);
        // Usable again after a clear, from the first slot.
        m.setExposure(BTC, 3, 4);
        IBackstopRisk.Exposure[] memory e = m.riskExposures();
        assertEq(e.length, 1);
        _assertExposure(e[0], BTC, 3, 4);
    }

    function test_setExposure_refusesASeventeenthOracleButReplacesAtTheBound() public {
        MockMember m = _member();
        for (uint160 i = 1; i <= 16; ++i) {
            m.setExposure(address(i), int256(uint256(i)), 0);
        }
        assertEq(m.riskExposures().length, 16);
        vm.expectRevert(MockMember.TooManyExposures.selector);
        m.setExposure(address(17), 17, 0);
        // A known oracle is still replaced at the bound.
        m.setExposure(address(16), -16, 1);
        IBackstopRisk.Exposure[] memory e = m.riskExposures();
        assertEq(e.length, 16);
        _assertExposure(e[15], address(16), -16, 1);
        _assertExposure(e[0], address(1), 1, 0);
    }

    function testFuzz_setExposure_storesValuesVerbatim(address oracle, int256 delta, int256 gamma) public {
        MockMember m = _member();
        m.setExposure(oracle, delta, gamma);
        IBackstopRisk.Exposure[] memory e = m.riskExposures();
        assertEq(e.length, 1);
        _assertExposure(e[0], oracle, delta, gamma);
    }

    function test_hostile_answersWhatIsSetRevertsOrGeneratesHugeArrays() public {
        HostileRisk h = new HostileRisk();
        IBackstopRisk r = IBackstopRisk(address(h));

        IBackstopRisk.Exposure[] memory set = new IBackstopRisk.Exposure[](2);
        set[0] = IBackstopRisk.Exposure(ETH, 1, 2);
        set[1] = IBackstopRisk.Exposure(ETH, 3, 4);
        h.setAnswer(abi.encode(set));
        IBackstopRisk.Exposure[] memory e = r.riskExposures();
        assertEq(e.length, 2);
        _assertExposure(e[1], ETH, 3, 4);

        h.setReverts();
        vm.expectRevert(bytes("HostileRisk: revert"));
        r.riskExposures();

        h.setHuge(1_000);
        e = r.riskExposures();
        assertEq(e.length, 1_000);
        _assertExposure(e[0], address(1), 1, 0);
        _assertExposure(e[999], address(1_000), 1, 0);

        h.setAnswer(hex"");
        (bool ok, bytes memory ret) = address(h).staticcall(abi.encodeCall(IBackstopRisk.riskExposures, ()));
        assertTrue(ok);
        assertEq(ret.length, 0);
    }
}
