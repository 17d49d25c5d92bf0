"""Pure read planner: which FC3 requests fetch a set of registers.

Requests never cross a block of the table (the meter answers an address outside its
blocks with exception 2) and carry at most 125 words (the Modbus PDU limit; the manual's
128 does not fit an FC3 answer), so the 145-word per-phase tariff blocks are split.
Registers are never split across requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from countis.registers import BLOCK_BY_NAME, Register

MAX_WORDS = 125


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadRequest:
    """One FC3 request and the registers it returns."""

    address: int
    count: int
    registers: tuple[Register, ...]


def plan_reads(
    registers: Iterable[Register], max_words: int = MAX_WORDS
) -> tuple[ReadRequest, ...]:
    """Group registers into the fewest requests, block by block, in address order.

    Reading a few unused words inside a block is cheaper than another round trip, so a
    request spans from its first to its last register.
    """
    by_block: dict[str, dict[int, Register]] = {}
    for reg in registers:
        if reg.words > max_words:
            msg = f"register {reg.name} is larger than {max_words} words"
            raise ValueError(msg)
        by_block.setdefault(reg.block, {})[reg.address] = reg
    requests: list[ReadRequest] = []
    for block_name in sorted(by_block, key=lambda name: BLOCK_BY_NAME[name].start):
        chunk: list[Register] = []
        for reg in sorted(by_block[block_name].values(), key=lambda r: r.address):
            if chunk and reg.address + reg.words - chunk[0].address > max_words:
                requests.append(_request(chunk))
                chunk = []
            chunk.append(reg)
        if chunk:
            requests.append(_request(chunk))
    return tuple(requests)


def _request(chunk: list[Register]) -> ReadRequest:
    start = chunk[0].address
    end = max(r.address + r.words for r in chunk)
    return ReadRequest(address=start, count=end - start, registers=tuple(chunk))
