"""The emulated COUNTIS E27/E28: model, counters, register image, commands, state."""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from countis.catalogue import VALUE_KEYS
from countis.errors import ConfigError
from countis.models import MeterIdentity, ValueType
from countis.values import compute_values, registers_for

from countis_bridge.durable import write_json_durably
from countis_bridge.emulator import energy, identity, modbus
from countis_bridge.emulator.clock import Clock, SystemClock
from countis_bridge.emulator.faults import Faults
from countis_bridge.emulator.image import Frame, decode_registers, static_blocks
from countis_bridge.emulator.physics import Snapshot, compute
from countis_bridge.emulator.profiles import Profile, make_profile
from countis_bridge.emulator.state import FORMAT, read_state

_VALUE_REGISTERS = registers_for(VALUE_KEYS)

TICK = 0.05  # s of real time: the model updates at most this often (wall clock)
MAX_STEP = 5.0  # s of simulated time per integration step
MAX_STEPS = 500  # per update; longer jumps take longer steps
DEFAULT_OVERFLOW_KWH = 1_000_000  # the display's 8 digits with 2 decimals


class EmulatedMeter:
    """One emulated meter: ask it for register bytes, send it commands, inject faults."""

    def __init__(
        self,
        *,
        model: str = "E28",
        serial: str = identity.DEFAULT_SERIAL,
        unit_id: int = 5,
        profile: str | Profile = "daily",
        speed: float = 1.0,
        state_file: str | Path | None = None,
        seed: int | None = None,
        clock: Clock | None = None,
        overflow_kwh: int = DEFAULT_OVERFLOW_KWH,
    ) -> None:
        """Build the meter; with ``state_file`` its counters continue from the saved state.

        ``seed`` defaults to one derived from the serial (distinct meters, same runs);
        ``speed`` multiplies time; ``overflow_kwh`` is where the totals wrap.
        """
        self.model = identity.check_model(model)
        self.serial = identity.Serial.parse(serial)
        if not 1 <= unit_id <= 247:
            msg = f"unit id must be 1..247, not {unit_id}"
            raise ConfigError(msg)
        if not (math.isfinite(speed) and speed > 0):
            msg = f"speed must be a positive number, not {speed}"
            raise ConfigError(msg)
        if not 1 <= overflow_kwh <= 0xFFFFFFFF // 100:
            msg = f"overflow must be 1..{0xFFFFFFFF // 100} kWh, not {overflow_kwh}"
            raise ConfigError(msg)
        self.unit_id = unit_id
        self.speed = float(speed)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.seed = seed if seed is not None else zlib.crc32(str(self.serial).encode())
        self.profile = (
            profile
            if isinstance(profile, Profile)
            else make_profile(profile, seed=self.seed, utc_offset=self.clock.utc_offset)
        )
        self.state_file = Path(state_file) if state_file is not None else None
        self.wrap = overflow_kwh * 100  # in 10 Wh steps, like register 0x9000
        self.identity: MeterIdentity = identity.identity(self.model, self.serial)
        self.faults = Faults(on_change=self._faults_changed)
        self._static = static_blocks(self._static_values())
        self._tick = 0.0 if self.clock.manual else TICK
        self._counters = energy.new_counters()
        self._tariff = 1
        self._partial_running = True
        now = self.clock.now()
        sim = now
        saved = read_state(self.state_file) if self.state_file is not None else None
        if saved is not None:
            sim = max(sim, self._restore(saved))
        self._real_base, self._sim_base = now, sim
        self._last_real, self._sim_last = now, sim
        self._frozen: Frame | None = None
        self._live = self._served = self._frame(sim)

    # ---------------------------------------------------------------- public API
    @property
    def tariff(self) -> int:
        """The active tariff (1 or 2)."""
        return self._tariff

    @property
    def partial_running(self) -> bool:
        """Whether the partial counters run (front panel start/stop)."""
        return self._partial_running

    @property
    def sim_time(self) -> float:
        """Simulated time of the model now (Unix seconds)."""
        self._refresh()
        return self._sim_last

    def set_tariff(self, tariff: int) -> None:
        """Switch the active tariff (1 or 2); counters until now stay with the old one."""
        if tariff not in (1, 2):
            msg = f"tariff must be 1 or 2, not {tariff}"
            raise ValueError(msg)
        self._command(lambda: setattr(self, "_tariff", tariff))

    def partial_start(self) -> None:
        """Front panel: start the partial counters."""
        self._command(lambda: setattr(self, "_partial_running", True))

    def partial_stop(self) -> None:
        """Front panel: stop the partial counters (they keep their values)."""
        self._command(lambda: setattr(self, "_partial_running", False))

    def partial_reset(self, mask: int = energy.RESET_ALL) -> None:
        """Clear the partial counters selected by the 0xE222 bit mask (default: all)."""
        self._command(lambda: energy.reset_partial(self._counters, mask))

    def reset_tariff_time(self, mask: int) -> None:
        """0xE224: clear the time-in-tariff counters (1 = T1, 2 = T2, 3 or 0xFFFF = both).

        Socomec does not say which "tariff counters" this resets; the per-tariff
        energies are totals the table calls not resettable, so it resets the time
        counters (0xC6C2/0xC6C4 and 0xC822/0xC824).
        """
        tariffs = [t for t in (1, 2) if mask & t]
        self._command(lambda: energy.reset_tariff_time(self._counters, tariffs))

    def values(self) -> dict[str, ValueType]:
        """The model's values by value key, now, quantized exactly as the registers carry them.

        Faults are ignored: this is what a healthy meter would show.
        """
        self._refresh()
        return compute_values(VALUE_KEYS, decode_registers(self._live, _VALUE_REGISTERS))

    def counters(self) -> dict[str, float]:
        """A copy of the exact counters (Wh, varh, VAh; tariff time in s), now."""
        self._refresh()
        return dict(self._counters)

    def frame(self) -> Frame:
        """What the registers show now (faults applied): the server reads from this."""
        now = self.clock.now()
        if now - self._last_real >= self._tick and now > self._last_real:
            self._advance(now)
        return self._served

    def apply_write(self, address: int, values: Sequence[int]) -> None:
        """Apply a Modbus write that ``modbus.check_write`` accepted."""
        for offset, value in enumerate(values):
            register = address + offset
            if register == modbus.TARIFF:
                self.set_tariff(value)
            elif register == modbus.RESET_PARTIAL:
                self.partial_reset()
            elif register == modbus.RESET_PARTIAL_MASK:
                self.partial_reset(value)
            elif register == modbus.RESET_TARIFF_MASK:
                self.reset_tariff_time(value)
            elif register == modbus.SYSTEM_ACTION:
                self._system_action(value)

    def state(self) -> dict[str, Any]:
        """The persistent state (what the state file holds), now."""
        self._refresh()
        return {
            "format": FORMAT,
            "serial": str(self.serial),
            "model": self.model,
            "sim_time": self._sim_last,
            "tariff": self._tariff,
            "partial_running": self._partial_running,
            "counters": dict(self._counters),
            "saved_at": time.time(),
        }

    def save_state(self) -> None:
        """Write the state file now (no-op without one)."""
        if self.state_file is not None:
            write_json_durably(self.state_file, self.state())

    def __repr__(self) -> str:
        """Model, serial and unit, for logs."""
        return f"<EmulatedMeter COUNTIS {self.model} {self.serial} unit {self.unit_id}>"

    # ---------------------------------------------------------------- internals
    def _static_values(self) -> dict[str, int | str]:
        s = self.serial
        return {
            "soco_signature": identity.SIGNATURE,
            "product_order_id": identity.PRODUCT_ORDER_ID,
            "product_id": identity.PRODUCT_ID[self.model],
            "jbus_table_version": identity.JBUS_TABLE_VERSION,
            "product_software_version": identity.SOFTWARE_VERSION,
            "serial_aa_ss": s.aa_ss,
            "serial_sst_l": s.sst_l,
            "serial_order": s.order,
            "serial_reserve": s.reserve,
            "code_table": identity.ORDER_REFERENCE[self.model],
            "product_version_major": identity.PRODUCT_VERSION[0],
            "product_version_minor": identity.PRODUCT_VERSION[1],
            "product_vlo": f"{identity.ORDER_REFERENCE[self.model]:08X}",
            "vendor_name": identity.VENDOR,
            "product_name": identity.PRODUCT_NAME,
            "extended_name": self.identity.extended_name,
            "indus_mode": 0,
            "mid_status": 1 if self.identity.mid else 0,
            "com_board_product_id": identity.COM_BOARD_ID,
            "slave_address": self.unit_id,
            # The E27/E28 has no RS-485 port; the settings block exists and reads 0.
            "rs485_baudrate": 0,
            "rs485_stop_bits": 0,
            "rs485_parity": 0,
        }

    def _restore(self, saved: dict[str, Any]) -> float:
        """Take counters, tariff and partial state from a saved state; its sim time."""
        if saved.get("serial") != str(self.serial):
            msg = (
                f"state file {self.state_file} belongs to meter {saved.get('serial')}, "
                f"not {self.serial}"
            )
            raise ConfigError(msg)
        counters = saved.get("counters")
        self._counters = energy.load_counters(counters if isinstance(counters, dict) else {})
        self._tariff = 2 if saved.get("tariff") == 2 else 1
        self._partial_running = saved.get("partial_running") is not False
        sim = saved.get("sim_time")
        return float(sim) if isinstance(sim, int | float) else 0.0

    def _snapshot(self, t: float) -> Snapshot:
        sample = self.profile.sample(t)
        return compute(sample.voltages, sample.currents, sample.angle, sample.frequency)

    def _frame(self, sim: float, snap: Snapshot | None = None) -> Frame:
        return Frame(
            sim_time=sim,
            snap=snap if snap is not None else self._snapshot(sim),
            counters=dict(self._counters),
            tariff=self._tariff,
            wrap=self.wrap,
            static=self._static,
        )

    def _integrate_to(self, now: float) -> Snapshot | None:
        """Integrate the model up to clock time ``now``; the snapshot at ``now`` if computed.

        A short span (the wall-clock case: one tick of 0.05 s or more) takes the powers
        at its end, the snapshot the registers then show: a tick costs one snapshot and
        one integration. Longer spans (acceleration, manual clocks) take midpoint steps of
        at most ``MAX_STEP`` simulated seconds.
        """
        sim = self._sim_base + (now - self._real_base) * self.speed
        span = sim - self._sim_last
        self._last_real = max(self._last_real, now)
        if span <= 0:
            return None
        counters, tariff, running = self._counters, self._tariff, self._partial_running
        if span <= MAX_STEP:
            end = self._snapshot(sim)
            energy.integrate(counters, end, span, tariff, running)
        else:
            end = None
            steps = min(MAX_STEPS, math.ceil(span / MAX_STEP))
            step = span / steps
            for n in range(steps):
                snap = self._snapshot(self._sim_last + (n + 0.5) * step)
                energy.integrate(counters, snap, step, tariff, running)
        self._sim_last = sim
        return end

    def _advance(self, now: float) -> None:
        end = self._integrate_to(now)
        self._live = self._frame(self._sim_last, end)
        self._update_served()

    def _refresh(self) -> None:
        now = self.clock.now()
        if now > self._last_real:
            self._advance(now)

    def _command(self, change: Callable[[], object]) -> None:
        """Integrate up to now under the old settings, change, show the result at once."""
        end = self._integrate_to(self.clock.now())
        change()
        self._live = self._frame(self._sim_last, end)
        self._update_served()

    def _faults_changed(self) -> None:
        self._refresh()
        if not self.faults.frozen:
            self._frozen = None
        elif self._frozen is None:
            self._frozen = self._live
        self._update_served()

    def _update_served(self) -> None:
        base = self._frozen if self._frozen is not None else self._live
        if self.faults.zeroed:
            base = base.derive(energy.zeroed(base.counters))
        elif self.faults.lowered:
            base = base.derive(energy.lowered(base.counters))
        self._served = base

    def _system_action(self, value: int) -> None:
        """0xE200: 0xA1 stores the state; 0xB2 (restart) stores it and drops connections."""
        self.save_state()
        if value == modbus.PRODUCT_RESET:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.faults.drop_connections()
            else:  # after the answer has been sent
                loop.call_soon(self.faults.drop_connections)
