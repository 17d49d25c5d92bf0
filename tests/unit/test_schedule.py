"""A fleet's schedule: realtime phases and energy offsets spread the work evenly."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from pathlib import Path

import pytest
from countis.config import MeterConfig
from countis.schedule import energy_offset

from countis_bridge.discovery import DiscoveryOptions
from countis_bridge.mqtt import BrokerOptions
from countis_bridge.service import Bridge, BridgeConfig


def test_energy_offsets_are_whole_realtime_ticks_spread_over_the_energy_interval():
    assert [energy_offset(i, 1.0, 10.0) for i in range(12)] == [*range(10), 0.0, 1.0]
    assert [energy_offset(i, 0.2, 0.5) for i in range(4)] == [0.0, 0.2, 0.0, 0.2]
    assert energy_offset(7, 2.0, 2.0) == 0.0  # energy on every tick: nothing to spread
    assert energy_offset(7, 10.0, 2.0) == 0.0  # energy more often than realtime
    assert energy_offset(3, 0.1, 0.3) == 0.0  # 0.3 / 0.1 is 2.9999...: still 3 ticks


def fleet(tmp_path: Path, count: int, realtime: float = 1.0, energy: float = 10.0) -> Bridge:
    meters = [
        MeterConfig(
            name=f"m{i}", host="127.0.0.1", realtime_interval=realtime, energy_interval=energy
        )
        for i in range(count)
    ]
    return Bridge(
        BridgeConfig(
            broker=BrokerOptions(), meters=meters, data_dir=tmp_path, discovery=DiscoveryOptions()
        )
    )


@pytest.mark.parametrize("count", [1000, 37])
def test_every_second_of_a_fleet_carries_its_share_of_energy_reads(tmp_path, count):
    bridge = fleet(tmp_path, count)
    # Energy reads of meter p happen at phase + offset + n x 10 s (after the first poll).
    per_second = Counter(int(p.phase + p.energy_offset) for p in bridge.pollers)
    assert set(per_second) <= set(range(10))
    assert max(per_second.values()) - min(per_second.values()) <= 1
    # ... and within each second, spread over the whole second.
    for second in range(10):
        phases = sorted(p.phase for p in bridge.pollers if int(p.energy_offset) == second)
        gaps = [b - a for a, b in pairwise(phases)]
        assert all(gap == pytest.approx(10 / count) for gap in gaps)


def test_energy_reads_stay_on_the_realtime_grid(tmp_path):
    bridge = fleet(tmp_path, 50, realtime=0.5, energy=2.0)
    for poller in bridge.pollers:
        ticks = poller.energy_offset / 0.5
        assert ticks == int(ticks)
        assert 0 <= ticks < 4
