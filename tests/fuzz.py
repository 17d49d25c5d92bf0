"""Generators of hostile command payloads, shared by the unit and the integration fuzz tests.

A :class:`Probe` is one command message: its command name, its payload bytes and, when the
payload is a valid command carrying a correlation id that the bridge must echo, that id.
Two sources make the same kinds of probes: hypothesis strategies (:func:`probes`, for the
pure tests, which shrink failures) and a seeded :class:`random.Random` generator
(:func:`random_probe`, for the tests that send a fixed batch through a real broker).

Kinds: valid commands (plain, JSON string, JSON object) with odd correlation ids (lone
surrogates, huge integers, empty, long, non-ASCII), deep nesting (under and over 1 KiB,
closed or not), binary garbage, payloads of up to 1 MiB, random JSON values and random
text, under known and unknown command names.

Configuration documents (:func:`mutated_config`) start from valid ones and change keys,
values, types, nesting depth, sizes and encodings, so that each is either valid or must be
refused with one line.
"""

from __future__ import annotations

import copy
import json
import random
import string
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

MAX_PAYLOAD = 1024  # what the bridge parses at most (countis_bridge.commands)
NO_ID: Any = object()  # the probe carries no correlation id the bridge must echo
TARIFF_VALUES = ("1", "2", "T1", "t2", " T2 ", "T1\n")
PARTIAL_VALUES = ("start", "STOP", " Reset ", "reset")
NAMES = ("tariff", "partial")
ODD_NAMES = ("Tariff", "explode", "set", "tariff2", "ü", "\u202e", "x" * 200)


@dataclass(frozen=True, slots=True)
class Probe:
    """One command message and the correlation id its response must carry (or NO_ID)."""

    name: str
    payload: bytes
    cid: Any = NO_ID
    kind: str = ""


def valid_probe(
    name: str, value: Any, cid: Any, *, as_json: bool, ascii_only: bool, kind: str
) -> Probe:
    """A valid command: plain text, or JSON with ``cid`` (NO_ID: without one)."""
    if not as_json:
        return Probe(name, str(value).encode(), NO_ID, kind)
    body = {"value": value} if cid is NO_ID else {"value": value, "correlation_id": cid}
    text = json.dumps(body, ensure_ascii=ascii_only)
    # ensure_ascii=False keeps a lone surrogate raw: its bytes are not UTF-8 (an error).
    payload = text.encode("utf-8", "surrogatepass")
    echoed = cid if cid is not NO_ID and len(payload) <= MAX_PAYLOAD and _utf8(payload) else NO_ID
    return Probe(name, payload, echoed, kind)


def _utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def nested(depth: int, *, opener: str, closed: bool, inner: str = "1") -> bytes:
    """``{"value": <depth levels of opener> ... }``: deep JSON, closed or not."""
    closer = {"[": "]", '{"a":': "}"}[opener]
    body = opener * depth + inner + (closer * depth if closed else "")
    return ('{"value":' + body + ("}" if closed else "")).encode()


# -- hypothesis strategies ---------------------------------------------------------------

SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ANY_CHAR = st.characters(exclude_categories=())  # surrogates included
ODD_TEXT_IDS = st.one_of(
    st.text(ANY_CHAR, max_size=40),
    st.builds(lambda a, s, b: a + s + b, st.text(max_size=5), SURROGATE, st.text(max_size=5)),
    st.just(""),
    st.builds(lambda n, c: c * n, st.integers(900, 1100), st.sampled_from(string.printable)),
)
ODD_INT_IDS = st.one_of(
    st.integers(),
    st.integers(min_value=10**30, max_value=10**300),
    st.integers(max_value=-(10**30), min_value=-(10**300)),
)
JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(ANY_CHAR, max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=5,
)


@st.composite
def valid_probes(draw: st.DrawFn) -> Probe:
    """Valid commands, with or without odd correlation ids."""
    name = draw(st.sampled_from(NAMES))
    plain = TARIFF_VALUES if name == "tariff" else PARTIAL_VALUES
    value: Any = draw(st.sampled_from(plain))
    if name == "tariff" and draw(st.booleans()):
        value = draw(st.sampled_from((1, 2)))
    cid = draw(st.one_of(st.just(NO_ID), ODD_TEXT_IDS, ODD_INT_IDS))
    as_json = isinstance(value, int) or cid is not NO_ID or draw(st.booleans())
    return valid_probe(
        name, value, cid, as_json=as_json, ascii_only=draw(st.booleans()), kind="valid"
    )


@st.composite
def deep_probes(draw: st.DrawFn) -> Probe:
    """JSON nested 1 to 5,000 levels (most over any sane limit), under and over 1 KiB."""
    depth = draw(st.one_of(st.integers(1, 12), st.integers(13, 1100), st.integers(1100, 5000)))
    opener = draw(st.sampled_from(("[", '{"a":')))
    payload = nested(depth, opener=opener, closed=draw(st.booleans()))
    return Probe(draw(st.sampled_from(NAMES)), payload, kind="deep")


@st.composite
def huge_probes(draw: st.DrawFn) -> Probe:
    """Payloads from just over the limit to 1 MiB (one repeated byte, or a JSON prefix)."""
    size = draw(st.one_of(st.integers(1025, 4096), st.integers(4096, 1 << 20)))
    fill = bytes([draw(st.integers(0, 255))])
    prefix = draw(st.sampled_from((b"", b'{"value": "T2", "correlation_id": "', b"T2 ")))
    return Probe(draw(st.sampled_from(NAMES)), prefix + fill * size, kind="huge")


@st.composite
def junk_probes(draw: st.DrawFn) -> Probe:
    """Binary garbage, random text, random JSON documents, under known or odd names."""
    name = draw(st.sampled_from(NAMES + ODD_NAMES))
    kind = draw(st.sampled_from(("binary", "text", "json")))
    if kind == "binary":
        payload = draw(st.binary(max_size=64)) * draw(st.sampled_from((1, 2, 40)))
    elif kind == "text":
        payload = draw(st.text(ANY_CHAR, max_size=40)).encode("utf-8", "surrogatepass")
    else:
        doc = draw(st.dictionaries(st.sampled_from(("value", "correlation_id", "x")), JSON_VALUES))
        payload = json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    return Probe(name, payload, kind=kind)


def probes() -> st.SearchStrategy[Probe]:
    """Every kind, valid commands weighted up (they are the ones that act and echo ids).

    A share comes from the seeded generator below (cheap to draw: one random source).
    """
    seeded = st.builds(random_probe, st.randoms(use_true_random=False), st.integers(0, 10**6))
    return st.one_of(
        valid_probes(), valid_probes(), deep_probes(), huge_probes(), junk_probes(), seeded
    )


# -- a seeded generator of the same kinds --------------------------------------------------


def _odd_id(rng: random.Random, index: int) -> Any:
    """A correlation id that is odd but unique in a batch (the index is part of it)."""
    kind = rng.randrange(6)
    if kind == 0:
        return f"{chr(rng.randrange(0xD800, 0xE000))}-{index}"  # a lone surrogate
    if kind == 1:
        return 10**40 + index  # beyond 64 bits (and JavaScript's safe integers)
    if kind == 2:
        return -index - 1
    if kind == 3:
        return f"ünïcode \u202e {index} 🌡"
    if kind == 4:
        return f"{index}:" + "x" * rng.randrange(0, 900)
    return str(index)


def random_probe(rng: random.Random, index: int) -> Probe:
    """One probe of a random kind; valid commands get a correlation id unique per index."""
    kind = rng.choices(("valid", "deep", "huge", "binary", "json", "text"), (5, 2, 1, 1, 1, 1))[0]
    name = rng.choice(NAMES)
    if kind == "valid":
        value = rng.choice(TARIFF_VALUES if name == "tariff" else PARTIAL_VALUES)
        cid = _odd_id(rng, index)
        return valid_probe(name, value, cid, as_json=True, ascii_only=True, kind=kind)
    if kind == "deep":
        depth = rng.choice((20, 300, 1000, 5000))
        opener = rng.choice(("[", '{"a":'))
        return Probe(name, nested(depth, opener=opener, closed=rng.random() < 0.5), kind=kind)
    if kind == "huge":
        return Probe(name, b"T2" * rng.choice((600, 5000, 1 << 19)), kind=kind)
    if kind == "binary":
        return Probe(name, rng.randbytes(rng.randrange(1, 300)), kind=kind)
    if kind == "json":
        doc = {"value": [[{"x": None}]], "correlation_id": [index], "y": 1.5}
        return Probe(rng.choice(NAMES + ODD_NAMES), json.dumps(doc).encode(), kind=kind)
    text = "".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(1, 50)))
    return Probe(name, text.encode("utf-8", "surrogatepass"), kind=kind)


# -- configuration documents ---------------------------------------------------------------


class Raw(str):
    """YAML text written as it is (unquoted) in place of a value: tags, .inf, nesting, ..."""

    __slots__ = ()


#: Values a mutation puts somewhere in a configuration (wrong types, limits, encodings).
ODD_VALUES: tuple[Any, ...] = (
    None, True, False, 0, -1, 1, 0.5, -0.0, 1e-9, 1e308, 59, 65535, 65536, 70000,
    2**31, 2**63, 2**64, 10**29, "", " ", "\t", "a" * 70000, "ü" * 40000, "\ud800",
    "a\udfffb", "\x00", "a\x00b", "\x01", "a\x7fb", "\u0085", "\ufffe", "\ufdd0", "a\nb",
    "a\r\nb", "#", "+", "a/#", "/a", "a/", "a//b", "a..b", "a" * 64 + ".com", "-a.com",
    "no-such-host.invalid", "[::1]", "::1", "fe80::1%eth0", "999.1.1.1", "1.2.3",
    "ünïcode.example", "xn--", "xn--zz", "*", "a b", "http://x", "bridge", "Bridge!", "___",
    "/proc/countis", "/dev/null/x", "/etc/passwd", "relative/dir", ".", "~", "\u202e",
    "🌡" * 20, [], [1], [[]], {}, {"a": 1}, {"host": "1.2.3.4"}, "DEBUG", "trace", "entity",
    "Device", "T2", "0x10",
)  # fmt: skip
#: Raw YAML scalars and collections.
RAW_VALUES: tuple[str, ...] = (
    ".inf", "-.inf", ".nan", ".NaN", "1e400", "-1e400", "0x7FFFFFFF", "0o777", "1_000",
    "0b101", "190:20:30", "yes", "no", "on", "off", "~", "2024-13-45",
    "2001-12-14t21:59:43.10-05:00", "!!binary aGVsbG8=", "!!binary '***'",
    "!!python/object/apply:os.system ['true']", "!!str 5", "!!int '12'", "!!float 'x'",
    "!!int 'x'", "!!int '" + "9" * 40 + "'", "!!set {a, b}", "!!omap [a: 1]", "&self [*self]",
    "{? [1, 2] : 3}", "'\\x00'", '"\\x00"', '"\\uD800"', '"\\uDFFF\\uD800"', "|\n  x",
)  # fmt: skip
KNOWN_KEYS = (
    "mqtt", "host", "port", "username", "password", "client_id", "keepalive", "qos", "tls",
    "enabled", "ca_file", "cert_file", "key_file", "insecure", "base_topic", "discovery_prefix",
    "discovery_mode", "per_value_topics", "meters", "name", "unit", "realtime_interval",
    "energy_interval", "timeout", "read_only", "tariff_broadcast", "offline_after",
    "retry_max", "serial", "data_dir", "log_level",
)  # fmt: skip


def base_configs(*, broker_port: int, meter_port: int, data_dir: str) -> list[dict[str, Any]]:
    """Valid configurations to start mutating from (the broker and meters on loopback)."""
    mqtt = {"host": "127.0.0.1", "port": broker_port}
    meter = {"name": "Main", "host": "127.0.0.1", "port": meter_port}
    full_mqtt = {
        **mqtt, "username": "bridge", "password": "secret", "client_id": "countis-1",
        "keepalive": 60, "qos": 1,
        "tls": {"enabled": False, "ca_file": None, "cert_file": None, "key_file": None,
                "insecure": False},
        "base_topic": "site/countis", "discovery_prefix": "homeassistant",
        "discovery_mode": "device", "per_value_topics": False,
    }  # fmt: skip
    full_meter = {
        **meter, "unit": 5, "realtime_interval": 2.0, "energy_interval": 10.0, "timeout": 3.0,
        "read_only": False, "tariff_broadcast": False, "offline_after": 3, "retry_max": 3.0,
    }  # fmt: skip
    return [
        {"mqtt": mqtt, "meters": [meter], "data_dir": data_dir},
        {"mqtt": full_mqtt, "meters": [full_meter], "offline_after": 3, "data_dir": data_dir,
         "log_level": "INFO"},
        {"mqtt": mqtt, "data_dir": data_dir, "meters": [
            meter, {"name": "Heat pump", "host": "localhost", "port": meter_port, "unit": 6},
            {"host": "127.0.0.1", "port": meter_port, "unit": 7, "read_only": True},
        ]},
    ]  # fmt: skip


#: Values that are often right somewhere (so that a share of the documents stays valid).
PLAUSIBLE_VALUES: tuple[Any, ...] = (
    "Küche Süd-West", "meter.lan", "192.168.1.1", "::1", "countis/site", "1883", 1, 2, 5, 10,
    0.2, 2.5, 65535, True, False, None, "a" * 65000, "INFO", "device",
)  # fmt: skip


def _odd_value(rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.15:
        return rng.choice(PLAUSIBLE_VALUES)
    if roll < 0.45:
        return copy.deepcopy(rng.choice(ODD_VALUES))  # later mutations may change it
    if roll < 0.7:
        return Raw(rng.choice(RAW_VALUES))
    if roll < 0.8:  # an integer or float of a random size
        digits = rng.choice((1, 5, 10, 29, 30, 31, 100, 4300, 5000))
        sign = rng.choice(("", "-"))
        return Raw(sign + "1" + "0" * (digits - 1) + rng.choice(("", ".5", "e3")))
    if roll < 0.9:  # nesting, around the limit and far over it
        depth = rng.choice((2, 49, 50, 51, 200, 600, 5000))
        if rng.random() < 0.5:
            return Raw("[" * depth + "1" + "]" * depth)
        return Raw("{a: " * depth + "1" + "}" * depth)
    size = rng.choice((1, 10, 300, 70000))
    alphabet = rng.choice(("ascii", "unicode", "surrogates"))
    if alphabet == "ascii":
        return "".join(rng.choice(string.printable) for _ in range(min(size, 300))) * max(
            1, size // 300
        )
    top = 0x10FFFF if alphabet == "unicode" else 0xDFFF
    low = 0x80 if alphabet == "unicode" else 0xD800
    return "".join(chr(rng.randrange(low, top)) for _ in range(min(size, 300)))


def _containers(node: Any, out: list[Any]) -> list[Any]:
    """Every dict and list of a document (the places a mutation can act on)."""
    if isinstance(node, dict | list):
        out.append(node)
        for child in node.values() if isinstance(node, dict) else node:
            _containers(child, out)
    return out


def _mutate_tree(rng: random.Random, doc: dict[str, Any]) -> str:
    """Change one thing in the document; returns what (for failure messages)."""
    target = rng.choice(_containers(doc, []))
    if isinstance(target, list):
        if not target or rng.random() < 0.3:
            target.append(rng.choice((_odd_value(rng), {"host": "127.0.0.1"}, {})))
            return "list append"
        index = rng.randrange(len(target))
        if rng.random() < 0.2:
            target.extend([target[index]] * rng.choice((1, 50)))  # duplicates
            return "list duplicate"
        target[index] = _odd_value(rng)
        return "list item"
    op = rng.choice(("replace", "replace", "replace", "delete", "rename", "add"))
    if not target or op == "add":
        key = rng.choice((*KNOWN_KEYS, "colour", "", "Port", "ünï", "a" * 300, "\ud800"))
        target[key] = _odd_value(rng)
        return f"add {key[:20]!r}"
    key = rng.choice(list(target))
    if op == "delete":
        del target[key]
    elif op == "rename":
        new = rng.choice((key.upper(), key + "_", key[:-1], f"{key} ", "\ufeff" + key))
        target[new] = target.pop(key)
    else:
        target[key] = _odd_value(rng)
    return f"{op} {key[:20]!r}"


def render(doc: Any, rng: random.Random) -> str:
    """YAML text of a document: block style or flow (JSON) style, ``Raw`` values inlined."""
    raws: list[str] = []

    def hide(node: Any) -> Any:
        if isinstance(node, Raw):
            raws.append(str(node))
            return f"@@RAW{len(raws) - 1}@@"
        if isinstance(node, dict):
            return {hide(k): hide(v) for k, v in node.items()}
        if isinstance(node, list):
            return [hide(v) for v in node]
        return node

    hidden = hide(doc)
    if rng.random() < 0.5:
        text = json.dumps(hidden, ensure_ascii=True)
        for i, raw in enumerate(raws):
            text = text.replace(f'"@@RAW{i}@@"', raw.replace("\n", " "))
        return text
    text = yaml.safe_dump(hidden, sort_keys=False, allow_unicode=rng.random() < 0.5, width=80)
    for i, raw in enumerate(raws):
        inline = raw if "\n" not in raw else raw.replace("\n", " ")
        text = text.replace(f"'@@RAW{i}@@'", inline).replace(f"@@RAW{i}@@", inline)
    return text


def _mutate_bytes(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    op = rng.choice(("truncate", "insert", "utf16", "latin1", "bom", "tabs", "crlf", "docs"))
    if op == "truncate":
        return data[: rng.randrange(len(data) + 1)], op
    if op == "insert":
        at = rng.randrange(len(data) + 1)
        junk = rng.choice((b"\x00", b"\xff", b"\xed\xa0\x80", b"\t", b":", b"- ", b"\n  x", b"{"))
        return data[:at] + junk + data[at:], op
    if op == "utf16":
        return data.decode("utf-8", "replace").encode("utf-16"), op
    if op == "latin1":
        return data.decode("utf-8", "replace").encode("latin-1", "replace") + b"\xe9", op
    if op == "bom":
        return b"\xef\xbb\xbf" + data, op
    if op == "tabs":
        return data.replace(b"  ", b"\t"), op
    if op == "crlf":
        return data.replace(b"\n", b"\r\n"), op
    return data + b"\n---\n" + data, op


def mutated_config(rng: random.Random, bases: list[dict[str, Any]]) -> tuple[bytes, str]:
    """A configuration file's bytes made from a valid base by one to three mutations."""
    doc = json.loads(json.dumps(rng.choice(bases)))  # a deep copy
    ops = [_mutate_tree(rng, doc) for _ in range(rng.choice((1, 1, 2, 3)))]
    data = render(doc, rng).encode("utf-8", "surrogatepass")
    if rng.random() < 0.2:
        data, op = _mutate_bytes(rng, data)
        ops.append(op)
    return data, "; ".join(ops)
