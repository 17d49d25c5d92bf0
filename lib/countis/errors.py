"""One exception tree for the whole project, rooted at :class:`CountisError`.

I/O adapters translate library errors (pymodbus, aiomqtt, OS errors) into these at the
boundary with ``raise ... from err`` so callers never import a third-party exception.
"""

from __future__ import annotations


class CountisError(Exception):
    """Base of every error raised by countis and countis-bridge."""


class MeterError(CountisError):
    """Something went wrong talking to a meter."""


class MeterConnectionError(MeterError):
    """The meter cannot be reached, or the connection was lost."""


class MeterTimeoutError(MeterError):
    """The meter did not answer in time."""


class ModbusExceptionError(MeterError):
    """The meter answered with a Modbus exception response."""

    def __init__(self, code: int, message: str) -> None:
        """Keep the Modbus exception code (2 = illegal address, 3 = illegal value, ...)."""
        super().__init__(message)
        self.code = code


class ProtocolError(MeterError):
    """The meter's answer was malformed or of the wrong size."""


class NotACountisError(MeterError):
    """The device answers Modbus but is not a Socomec COUNTIS E2x meter."""


class WrongMeterError(MeterError):
    """Another meter than the expected one answers at the configured address."""

    def __init__(self, message: str, *, found: str, expected: str) -> None:
        """Keep both serial numbers."""
        super().__init__(message)
        self.found = found
        self.expected = expected


class CommandError(MeterError):
    """A command was rejected or its effect could not be confirmed by read-back."""


class ReadOnlyError(CommandError):
    """Commands are disabled for this meter."""


class CodecError(CountisError, ValueError):
    """A value cannot be encoded to, or decoded from, the register words given."""


class ConfigError(CountisError, ValueError):
    """The configuration is missing or invalid (a ValueError: validators report it as such)."""


class MissingDependencyError(CountisError):
    """An optional package a command needs is not installed (the message says how to)."""
