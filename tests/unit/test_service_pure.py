"""Pure helpers of the service."""

from __future__ import annotations

import json

from countis_bridge.mqtt import dump_json


def test_dump_json_keeps_numbers_and_read_only_mappings():
    from types import MappingProxyType  # noqa: PLC0415

    data = {"power": 2070, "voltage": 230.12, "values": MappingProxyType({"a": 1})}
    assert json.loads(dump_json(data)) == {"power": 2070, "voltage": 230.12, "values": {"a": 1}}
