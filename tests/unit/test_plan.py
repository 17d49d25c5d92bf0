"""Read planner: request size, block boundaries, whole registers, fewest requests."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from countis.catalogue import VALUE_KEYS, Group, keys_for_groups
from countis.plan import MAX_WORDS, ReadRequest, plan_reads
from countis.registers import BLOCK_BY_NAME, REGISTERS, Register
from countis.values import registers_for
from hypothesis import given
from hypothesis import strategies as st

register_sets = st.sets(st.sampled_from(REGISTERS), max_size=len(REGISTERS))


def fewest_requests(registers: Sequence[Register], max_words: int) -> int:
    """Minimal request count by dynamic programming (independent of the planner's greedy)."""
    total = 0
    by_block: dict[str, list[Register]] = {}
    for reg in registers:
        by_block.setdefault(reg.block, []).append(reg)
    for regs in by_block.values():
        regs.sort(key=lambda r: r.address)
        best = [0] + [len(regs) + 1] * len(regs)  # best[i]: requests for the first i registers
        for end in range(1, len(regs) + 1):
            for start in range(end):
                span = regs[end - 1].address + regs[end - 1].words - regs[start].address
                if span <= max_words:
                    best[end] = min(best[end], best[start] + 1)
        total += best[-1]
    return total


def check_plan(plan: Sequence[ReadRequest], wanted: set[Register], max_words: int) -> None:
    seen: list[Register] = []
    for req in plan:
        assert 0 < req.count <= max_words
        blocks = {reg.block for reg in req.registers}
        assert len(blocks) == 1, "a request crosses a block boundary"
        block = BLOCK_BY_NAME[blocks.pop()]
        assert block.start <= req.address
        assert req.address + req.count <= block.end
        for reg in req.registers:
            # Whole registers only: every word of each register is inside the request.
            assert req.address <= reg.address
            assert reg.address + reg.words <= req.address + req.count
        assert req.address == min(r.address for r in req.registers)
        assert req.address + req.count == max(r.address + r.words for r in req.registers)
        seen += req.registers
    assert len(seen) == len(set(seen)), "a register is read twice"
    assert set(seen) == wanted


@given(wanted=register_sets)
def test_plan_properties(wanted: set[Register]) -> None:
    plan = plan_reads(wanted)
    check_plan(plan, wanted, MAX_WORDS)
    assert len(plan) == fewest_requests(list(wanted), MAX_WORDS)


@given(wanted=register_sets, max_words=st.integers(8, MAX_WORDS))
def test_plan_properties_for_smaller_requests(wanted: set[Register], max_words: int) -> None:
    plan = plan_reads(wanted, max_words)
    check_plan(plan, wanted, max_words)
    assert len(plan) == fewest_requests(list(wanted), max_words)


@pytest.mark.parametrize(
    "block",
    ["tariff_meter_total_line1", "tariff_meter_total_line2", "tariff_meter_total_line3"],
)
def test_145_word_blocks_are_split(block: str) -> None:
    assert BLOCK_BY_NAME[block].words == 145
    wanted = {r for r in REGISTERS if r.block == block}
    plan = plan_reads(wanted)
    assert len(plan) == 2
    check_plan(plan, wanted, MAX_WORDS)


def test_whole_table_in_fewest_requests() -> None:
    plan = plan_reads(REGISTERS)
    check_plan(plan, set(REGISTERS), MAX_WORDS)
    assert len(plan) == fewest_requests(REGISTERS, MAX_WORDS)


def test_value_contract_plans() -> None:
    for keys in (VALUE_KEYS, keys_for_groups({Group.REALTIME}), keys_for_groups({Group.ENERGY})):
        wanted = set(registers_for(keys))
        plan = plan_reads(wanted)
        check_plan(plan, wanted, MAX_WORDS)
        assert len(plan) == fewest_requests(list(wanted), MAX_WORDS)


def test_order_and_duplicates_do_not_matter() -> None:
    regs = list(REGISTERS[:40])
    assert plan_reads(regs) == plan_reads([*reversed(regs), *regs])


def test_empty_plan() -> None:
    assert plan_reads([]) == ()


def test_register_larger_than_a_request_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than"):
        plan_reads([r for r in REGISTERS if r.words == 8], max_words=4)
