"""Pure parts of the client and of ``read``: identity decoding, planning, target parsing."""

from __future__ import annotations

import json
import struct

import pytest
from countis import client, codec
from countis.catalogue import VALUE_KEYS, Group, keys_for_groups
from countis.errors import CommandError, ConfigError, NotACountisError
from countis.models import MeterIdentity, MeterReading
from countis.registers import BY_NAME
from countis.values import registers_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from countis_bridge.readcmd import MENUS, menu_of, parse_target, render_json, render_table


def ident_words(**fields: codec.Value) -> list[int]:
    """The identification block with the given registers set (others zero)."""
    words = [0] * client._IDENT.words
    defaults: dict[str, codec.Value] = {
        "soco_signature": "SOCO",
        "vendor_name": "SOCOMEC",
        "product_name": "COUNTIS E28",
        "extended_name": "COUNTIS E28",
        "product_software_version": 102,
        "jbus_table_version": 101,
        "serial_aa_ss": 0x2117,
        "serial_sst_l": 0x0A01,
        "serial_order": 42,
    }
    for name, value in (defaults | fields).items():
        reg = BY_NAME[name]
        start = reg.address - client._IDENT.start
        words[start : start + reg.words] = codec.encode(reg.dtype, value, reg.words)
    return words


def test_identity_from_the_block() -> None:
    identity = client._decode_identity(ident_words())
    assert identity.model == "E28"
    assert identity.serial_number == "21170A0100042"
    assert identity.firmware_version == "1.02"
    assert identity.table_version == "1.01"
    assert identity.vendor == "SOCOMEC"
    assert identity.name == "COUNTIS E28"


@pytest.mark.parametrize("model", ["E27", "E28", "E23", "E24"])
def test_models_from_the_extended_name(model: str) -> None:
    words = ident_words(extended_name=f"Countis {model} MID")
    assert client._decode_identity(words).model == model


def test_serial_reserve_is_appended_only_when_set() -> None:
    words = ident_words(serial_reserve=7, serial_order=5)
    assert client._decode_identity(words).serial_number == "21170A0100005-7"


@pytest.mark.parametrize(
    "fields",
    [
        {"soco_signature": ""},
        {"soco_signature": "ABB"},
        {"extended_name": "DIRIS A40"},
        {"extended_name": "COUNTIS E34"},
        {"extended_name": ""},
    ],
)
def test_foreign_devices_are_refused(fields: dict[str, codec.Value]) -> None:
    with pytest.raises(NotACountisError):
        client._decode_identity(ident_words(**fields))


def test_zeros_are_not_a_countis() -> None:
    with pytest.raises(NotACountisError):
        client._decode_identity([0] * client._IDENT.words)


def test_plans_are_cached_and_cover_the_keys() -> None:
    first = client._plan(VALUE_KEYS)
    assert client._plan(tuple(VALUE_KEYS)) is first
    planned = {field[0] for step in first for field in step.fields}
    assert planned == {r.name for r in registers_for(VALUE_KEYS)}
    for step in first:
        for _name, _dtype, start, end in step.fields:
            assert 0 <= start < end <= step.count


KEY_SETS = (
    VALUE_KEYS,
    keys_for_groups({Group.REALTIME}),
    keys_for_groups({Group.ENERGY}),
    ("power_factor_l2", "energy_balance", "phase_sequence", "tariff"),
)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_struct_layouts_decode_like_the_codec(data: st.DataObject) -> None:
    for keys in KEY_SETS:
        for step in client._plan(keys):
            words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=step.count,
                                       max_size=step.count))  # fmt: skip
            got = step.layout.unpack(struct.pack(f">{step.count}H", *words))
            want = tuple(
                codec.decode(dtype, words[start:end]) for _, dtype, start, end in step.fields
            )
            assert got == want


def test_readers_convert_in_plan_order() -> None:
    for keys in KEY_SETS:
        reader = client._reader(keys)
        assert reader.steps is client._plan(keys)
        order = tuple(name for step in reader.steps for name, *_ in step.fields)
        assert reader.convert.registers == order
        assert reader.convert.keys == keys


def test_strings_have_no_struct_layout() -> None:
    with pytest.raises(ValueError, match="soco_signature"):
        client._layout(4, (("soco_signature", "STRING_16", 0, 4),))


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ValueError, match="no_such_key"):
        client._plan(("voltage_l1", "no_such_key"))


def test_client_init_is_inert() -> None:
    meter = client.MeterClient("192.0.2.1", 502, unit=5, timeout=1.0)
    assert not meter.connected
    meter.close()  # closing a client that never connected is fine


async def test_bad_tariff_is_refused_before_any_io() -> None:
    async with client.MeterClient("192.0.2.1", 1, timeout=0.1) as meter:
        for tariff in (0, 3, -1):
            with pytest.raises(CommandError):
                await meter.set_tariff(tariff)
        assert not meter.connected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("192.168.0.4", ("192.168.0.4", 502)),
        ("192.168.0.4:5020", ("192.168.0.4", 5020)),
        ("meter.local:502", ("meter.local", 502)),
        ("[::1]:5020", ("::1", 5020)),
        ("[fe80::1%eth0]", ("fe80::1%eth0", 502)),
        ("::1", ("::1", 502)),
    ],
)
def test_parse_target(target: str, expected: tuple[str, int]) -> None:
    assert parse_target(target) == expected


@pytest.mark.parametrize(
    "target", ["", ":502", "host:", "host:0", "host:65536", "host:x", "[::1", "[::1]5020", "[]:1"]
)
def test_parse_target_errors(target: str) -> None:
    with pytest.raises(ConfigError):
        parse_target(target)


def test_every_key_has_a_menu() -> None:
    codes = {code for code, _ in MENUS}
    for key in VALUE_KEYS:
        assert menu_of(key) in codes
    assert menu_of("voltage_l1") == "rt"
    assert menu_of("phase_sequence") == "rt"
    assert menu_of("energy_import") == "tot"
    assert menu_of("energy_import_l2") == "tot"
    assert menu_of("energy_import_t1") == "Tar.1"
    assert menu_of("energy_export_t2_l3") == "Tar.2"
    assert menu_of("tariff_time_t2") == "Tar.2"
    assert menu_of("partial_energy_import_t1") == "Par.b"
    assert menu_of("energy_balance") == "Par.b"
    assert menu_of("tariff") == "Info"


IDENTITY = MeterIdentity(
    vendor="SOCOMEC",
    product_name="COUNTIS E28",
    extended_name="COUNTIS E28",
    model="E28",
    serial_number="21170A0100042",
    firmware_version="1.02",
    table_version="1.01",
    mid=True,
)


def test_render_table_and_json() -> None:
    values = {"voltage_l1": 231.45, "energy_balance": -1.5, "phase_sequence": "123", "tariff": 2}
    text = render_table(IDENTITY, values)
    assert "rt - Realtime" in text
    assert "Par.b - Partial & balance" in text
    assert "Tar.1" not in text  # empty menus are left out
    assert "231.45 V" in text
    assert "-1.5 kWh" in text
    assert "21170A0100042" in text
    doc = json.loads(render_json(IDENTITY, MeterReading(timestamp=0.0, values=values)))
    assert doc == {
        "identity": {
            "vendor": "SOCOMEC",
            "product_name": "COUNTIS E28",
            "extended_name": "COUNTIS E28",
            "model": "E28",
            "serial_number": "21170A0100042",
            "firmware_version": "1.02",
            "table_version": "1.01",
            "mid": True,
        },
        "values": values,
    }
