"""Generate lib/countis/registers.py from docs/meter/registers.csv (Socomec's E2x tables).

Run after the CSV changes: ``python scripts/gen_registers.py``. A unit test checks
that the generated table still matches the CSV.
"""

from __future__ import annotations

import csv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CSV = ROOT / "docs" / "meter" / "registers.csv"
OUT = ROOT / "lib" / "countis" / "registers.py"

HEADER = '''"""The COUNTIS E2x register table as data (generated from docs/meter/registers.csv).

Do not edit by hand: run ``python scripts/gen_registers.py``. Addresses are 0-based wire
addresses (the table's hex column). ``scale`` multiplies the raw integer to give ``unit``.
Reserved rows are not listed; the blocks that hold them are (``BLOCKS``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class Register:
    """One register (or group of words) of the meter's table."""

    name: str
    address: int
    words: int
    dtype: str
    unit: str
    scale: float | None
    access: str
    block: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """A contiguous block of the table; reads must stay inside one block."""

    name: str
    start: int
    words: int

    @property
    def end(self) -> int:
        """First address after the block."""
        return self.start + self.words


'''


def main() -> None:
    """Write the module."""
    rows = list(csv.DictReader(CSV.open(encoding="utf-8")))
    blocks: dict[str, tuple[int, int]] = {}
    for row in rows:
        blocks.setdefault(row["table"], (int(row["block_start_hex"], 16), int(row["block_words"])))
    out = [HEADER, "BLOCKS: tuple[Block, ...] = (\n"]
    for name, (start, words) in sorted(blocks.items(), key=lambda kv: kv[1][0]):
        out.append(f'    Block(name="{name}", start=0x{start:04X}, words={words}),\n')
    out.append(")\n\nREGISTERS: tuple[Register, ...] = (\n")
    data = [r for r in rows if r["data_type"] != "-"]
    for r in sorted(data, key=lambda r: int(r["hex_address"], 16)):
        scale = r["scale"] or "None"
        if scale != "None":
            scale = repr(float(scale))
        out.append(
            f'    Register(name="{r["name"]}", address=0x{int(r["hex_address"], 16):04X}, '
            f'words={r["words"]}, dtype="{r["data_type"]}", unit="{r["unit"]}", '
            f'scale={scale}, access="{r["access"]}", block="{r["table"]}"),\n'
        )
    out.append(")\n\n")
    out.append(
        "BY_NAME: dict[str, Register] = {r.name: r for r in REGISTERS}\n"
        "BLOCK_BY_NAME: dict[str, Block] = {b.name: b for b in BLOCKS}\n"
    )
    OUT.write_text("".join(out), encoding="utf-8")


if __name__ == "__main__":
    main()
