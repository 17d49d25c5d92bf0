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
"""

from __future__ import annotations

import json
import random
import string
from dataclasses import dataclass
from typing import Any

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
