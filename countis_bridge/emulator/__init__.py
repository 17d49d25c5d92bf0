"""The emulated COUNTIS E27/E28: physics model, register image, Modbus TCP server, faults.

Use: ``EmulatorServer([EmulatedMeter(model="E28", serial="21170A0100042")], port=0)`` as an
async context manager; ``server.ports`` lists where each meter listens.
"""

from countis_bridge.emulator.clock import Clock, ManualClock, SystemClock
from countis_bridge.emulator.faults import Faults
from countis_bridge.emulator.meter import EmulatedMeter
from countis_bridge.emulator.profiles import PROFILE_NAMES, ConstantProfile, Profile
from countis_bridge.emulator.server import EmulatorServer

__all__ = [
    "PROFILE_NAMES",
    "Clock",
    "ConstantProfile",
    "EmulatedMeter",
    "EmulatorServer",
    "Faults",
    "ManualClock",
    "Profile",
    "SystemClock",
]
