"""Identity of an emulated meter: serial number parts and the identification constants.

Values Socomec does not publish are our choices (documented here, one place):
product id 27/28 (per model), firmware 1.02 (102), product version 1.2, JBUS table
version 103.18 (the table file's version), code table and VLO = the order reference
(4850 3054 for the E27, 4850 3055 for the E28), COM board id 0 (the E27/E28 Ethernet
port is built in; the table lists ids only for separate boards).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from countis.errors import ConfigError
from countis.models import MeterIdentity

MODELS = ("E27", "E28")
VENDOR = "SOCOMEC"
PRODUCT_NAME = "COUNTIS"
SIGNATURE = "SOCO"
PRODUCT_ORDER_ID = 100  # Countis family
PRODUCT_ID = {"E27": 27, "E28": 28}
JBUS_TABLE_VERSION = 10318  # x100 -> "103.18"
SOFTWARE_VERSION = 102  # x100 -> "1.02"
PRODUCT_VERSION = (1, 2)
ORDER_REFERENCE = {"E27": 0x48503054, "E28": 0x48503055}  # "4850 3054" / "4850 3055"
COM_BOARD_ID = 0
DEFAULT_SERIAL = "21170A0100001"

_SERIAL = re.compile(r"^([0-9A-Fa-f]{4})([0-9A-Fa-f]{4})([0-9]{5})(?:-([0-9]{1,10}))?$")


@dataclass(frozen=True, slots=True, kw_only=True)
class Serial:
    """The serial number as the registers 0xC358..0xC35C carry it."""

    aa_ss: int  # U16_HEX
    sst_l: int  # U16_HEX
    order: int  # U16, shown with 5 digits
    reserve: int = 0  # U32, shown as "-N" only when not 0

    def __str__(self) -> str:
        """The agreed text form, e.g. ``21170A0100042`` (``-N`` when reserve != 0)."""
        text = f"{self.aa_ss:04X}{self.sst_l:04X}{self.order:05d}"
        return f"{text}-{self.reserve}" if self.reserve else text

    @classmethod
    def parse(cls, text: str) -> Serial:
        """Parse ``AAAASSSSNNNNN[-R]`` (4 hex, 4 hex, 5 decimal digits <= 65535)."""
        match = _SERIAL.match(text.strip())
        if match is None:
            msg = f"serial {text!r} must look like 21170A0100042 (4 hex, 4 hex, 5 digits)"
            raise ConfigError(msg)
        aa_ss, sst_l, order, reserve = match.groups()
        serial = cls(
            aa_ss=int(aa_ss, 16),
            sst_l=int(sst_l, 16),
            order=int(order),
            reserve=int(reserve) if reserve else 0,
        )
        if serial.order > 0xFFFF or serial.reserve > 0xFFFFFFFF:
            msg = f"serial {text!r}: order part must be <= 65535 (it is a 16-bit register)"
            raise ConfigError(msg)
        return serial

    def plus(self, n: int) -> Serial:
        """The serial ``n`` further on (fleets: distinct serials from the first one)."""
        order = self.order + n
        if order > 0xFFFF:
            msg = f"serial {self} + {n}: the order part would exceed 65535"
            raise ConfigError(msg)
        return Serial(aa_ss=self.aa_ss, sst_l=self.sst_l, order=order, reserve=self.reserve)


def check_model(model: str) -> str:
    """The model name, upper case; E27 or E28."""
    upper = model.upper()
    if upper not in MODELS:
        msg = f"model {model!r} must be one of {', '.join(MODELS)}"
        raise ConfigError(msg)
    return upper


def identity(model: str, serial: Serial) -> MeterIdentity:
    """What a client reads from the identification block of this meter."""
    return MeterIdentity(
        vendor=VENDOR,
        product_name=PRODUCT_NAME,
        extended_name=f"{PRODUCT_NAME} {model}",
        model=model,
        serial_number=str(serial),
        firmware_version=f"{SOFTWARE_VERSION / 100:.2f}",
        table_version=f"{JBUS_TABLE_VERSION / 100:.2f}",
        mid=model == "E28",
    )
