"""What the emulated meter answers to a Modbus request (pure: no pymodbus, no I/O).

Exception behaviour — Socomec does not document it (register notes §7); these are our
choices (docs/design.md, the meter), all made here and nowhere else:

* Only function codes 3 (read), 6 (write one) and 16 (write many) exist: the table lists
  READ / WRITE / WRITE_MANY only. Every other code, FC4 included, answers exception 1.
* A read of 0 or more than 125 words answers exception 3 (the Modbus PDU limit; the
  manual's 128 does not fit a TCP frame).
* A read must stay inside one block of the table: an address outside every block, or a
  read that runs past the end of its block (into a gap or the next block), answers
  exception 2. Reserved words inside a block read 0.
* Write-only command registers read 0 (they are part of their block).
* A write to a read-only or reserved register, or outside every block, answers
  exception 2; so does a write to a settings register of lock level USER (slave
  address, RS-485 settings): the unlock procedure is not documented, so they stay locked.
* A command register written with a value the table does not define answers exception 3.
  A write of several words is checked completely before anything is applied.
* The meter answers its own unit id only; other unit ids get no answer at all (as if
  nobody listened). Unit 0 is broadcast: writes of the tariff register are applied,
  other broadcast requests are ignored, and a broadcast never gets an answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from countis.registers import BY_NAME


class ExceptionCode(IntEnum):
    """Modbus exception codes the meter answers with."""

    ILLEGAL_FUNCTION = 1
    ILLEGAL_ADDRESS = 2
    ILLEGAL_VALUE = 3


READ_HOLDING = 3
WRITE_SINGLE = 6
WRITE_MULTIPLE = 16
SUPPORTED_FUNCTIONS = frozenset({READ_HOLDING, WRITE_SINGLE, WRITE_MULTIPLE})
MAX_READ = 125  # words per read
MAX_WRITE = 123  # words per FC16 write (Modbus PDU limit)
BROADCAST = 0

TARIFF = BY_NAME["set_tariff_number"].address  # 0x9E21: 1 = T1, 2 = T2
RESET_PARTIAL = BY_NAME["reset_partial_energies_cmd"].address  # 0x9E40: 0x20
RESET_PARTIAL_MASK = BY_NAME["reset_partial_energies_mask"].address  # 0xE222: bit mask
RESET_TARIFF_MASK = BY_NAME["reset_tariff_counters_mask"].address  # 0xE224: see meter
SYSTEM_ACTION = BY_NAME["system_action"].address  # 0xE200: 0xA1 store, 0xB2 restart

PARTIAL_RESET_VALUE = 0x20
STORE_CONFIGURATION = 0xA1
PRODUCT_RESET = 0xB2

#: Accepted values of each writable command register.
_VALID: dict[int, frozenset[int]] = {
    TARIFF: frozenset({1, 2}),
    RESET_PARTIAL: frozenset({PARTIAL_RESET_VALUE}),
    RESET_PARTIAL_MASK: frozenset(range(1, 0x20)),  # any non-empty combination of 5 bits
    RESET_TARIFF_MASK: frozenset({0x0001, 0x0002, 0x0003, 0xFFFF}),
    SYSTEM_ACTION: frozenset({STORE_CONFIGURATION, PRODUCT_RESET}),
}


def check_read(count: int) -> ExceptionCode | None:
    """Exception for a read of ``count`` words before looking at the address, if any."""
    if not 1 <= count <= MAX_READ:
        return ExceptionCode.ILLEGAL_VALUE
    return None


def check_write(address: int, values: Sequence[int]) -> ExceptionCode | None:
    """Exception for writing ``values`` from ``address``, or None when all may be applied."""
    if not 1 <= len(values) <= MAX_WRITE:
        return ExceptionCode.ILLEGAL_VALUE
    for offset, value in enumerate(values):
        valid = _VALID.get(address + offset)
        if valid is None:  # read-only, reserved, locked setting or outside every block
            return ExceptionCode.ILLEGAL_ADDRESS
        if value not in valid:
            return ExceptionCode.ILLEGAL_VALUE
    return None


def broadcast_applies(address: int, values: Sequence[int]) -> bool:
    """Whether a broadcast write is applied: only the tariff (manual §8.2)."""
    return address == TARIFF and len(values) == 1 and values[0] in _VALID[TARIFF]
