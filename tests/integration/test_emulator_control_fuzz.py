"""The emulator's control API answers every request, however malformed (issue 11).

Hundreds of random requests (methods, paths, versions, headers, bodies: invalid JSON,
deep nesting, wrong types, binary, lying Content-Length, over-long lines, nothing at all)
over TCP to a control API serving two emulated meters. Each must get an HTTP status line
and a JSON body; none may be a 500 (a bug) or a connection closed without an answer.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from typing import Any

import pytest

from countis_bridge.emulator import EmulatorServer
from countis_bridge.emulator.control import ControlServer

HOST = "127.0.0.1"
REQUESTS = 400
METHODS = ("GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "get", "G\x00T", "", "PO ST")
PATHS = (
    "/meters", "/meters/0", "/meters/1", "/meters/0/values", "/meters/0/faults",
    "/meters/1/partial", "/meters/0/tariff", "/meters/2", "/meters/99999999999999", "/meters/-1",
    "/meters/\u0661", "/meters/\u00b2/faults", "/", "/x", "/meters/0/faults/extra",
    "/meters?x=1", "*", "", "/%00", "/meters/0/../0", "/meters//0", "/meters/0/values?",
    "/ü", "/" + "9" * 5000,
)  # fmt: skip
VERSIONS = ("HTTP/1.1", "HTTP/1.0", "HTTP/9", "", "garbage")
GOOD_BODIES: tuple[Any, ...] = (
    {"delay": 0.01}, {"delay": None}, {"no_answer": False}, {"exception": None},
    {"freeze": False}, {"clear": True}, {"action": "stop"}, {"action": "start"},
    {"tariff": 2}, {"tariff": 1}, {},
)  # fmt: skip
WRONG_BODIES: tuple[Any, ...] = (
    {"action": []}, {"action": {"a": 1}}, {"action": None}, {"tariff": "1"}, {"tariff": True},
    {"tariff": [1]}, {"delay": "x"}, {"delay": -1}, {"delay": 1e400}, {"exception": 1e10},
    {"exception": 10**30}, {"exception": True}, {"no_answer": 1}, {"drop": "yes"},
    {"clear": None}, {"colour": "blue"}, [1, 2], "text", None, 1.5, {"delay": {"x": []}},
)  # fmt: skip


def random_body(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return json.dumps(rng.choice(GOOD_BODIES)).encode()
    if kind == 1:
        return json.dumps(rng.choice(WRONG_BODIES)).encode()
    if kind == 2:  # nested deeper than any decoder's recursion limit
        depth = rng.choice((100, 2000, 30000))
        return (rng.choice(("[", '{"a":')) * depth).encode()
    if kind == 3:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 4:
        return b'{"tariff": 2' + rng.choice((b"", b",", b"}}", b"\xff"))
    if kind == 5:
        return rng.choice((b"NaN", b"null", b"[]", b'"\\ud800"', b"1" * 5000, b"\xed\xa0\x80"))
    if kind == 6:
        return b""
    return json.dumps({"action": "reset"}).encode()


def random_request(rng: random.Random) -> bytes:
    """One request's bytes: mostly HTTP-shaped, some of it anything at all."""
    roll = rng.random()
    if roll < 0.05:
        return b""  # connect and close
    if roll < 0.1:
        return rng.randbytes(rng.randrange(1, 500))
    if roll < 0.13:
        return b"GET /meters HTTP/1.1"  # no line end before EOF
    if roll < 0.16:
        return b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"  # over the line limit
    method = rng.choice(METHODS)
    path = rng.choice(PATHS)
    line = " ".join(part for part in (method, path, rng.choice(VERSIONS)) if part or rng.random())
    body = random_body(rng)
    headers = []
    length = rng.randrange(6)
    if length == 0:
        headers.append(f"Content-Length: {len(body)}")
    elif length == 1:
        headers.append(f"Content-Length: {len(body) + rng.choice((1, 100))}")  # a lie
    elif length == 2:
        lies = ("Content-Length: -5", "Content-Length: x", f"Content-Length: {10**30}")
        headers.append(rng.choice((*lies, "Content-Length: 70000")))
    elif length == 3:
        headers += [f"Content-Length: {len(body)}", "Content-Length: 0"]
    if rng.random() < 0.2:
        headers.append(rng.choice(("no colon here", "X-A: " + "b" * 70_000, "\x00: \xff")))
    head = "\r\n".join([line, *headers, "", ""])
    return head.encode("utf-8", "surrogatepass") + body


async def exchange(port: int, request: bytes) -> bytes:
    """Send ``request``, close our side, read the whole answer."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(request)
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), 15)
    finally:
        writer.close()
        await writer.wait_closed()


def status_of(request: bytes, answer: bytes) -> int:
    """The status of an answer that must be an HTTP response with a JSON body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 "), (request[:120], answer[:200])
    status = int(status_line.split()[1])
    assert status in (200, 400, 404, 405), (request[:120], answer[:200])  # never 500
    assert isinstance(json.loads(body), dict | list)
    return status


async def test_every_request_gets_an_http_answer(make_meter) -> None:
    meters = [make_meter(), make_meter()]
    rng = random.Random(11)
    requests = [random_request(rng) for _ in range(REQUESTS)]
    statuses: Counter[int] = Counter()
    limit = asyncio.Semaphore(16)

    async def one(port: int, request: bytes) -> None:
        async with limit:
            statuses[status_of(request, await exchange(port, request))] += 1

    async with (
        EmulatorServer(meters, host=HOST, port=0) as server,
        ControlServer(meters, server.ports) as control,
    ):
        await asyncio.gather(*(one(control.port, r) for r in requests))
        # The API still works afterwards.
        ok = await exchange(control.port, b"GET /meters/1/values HTTP/1.1\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200 OK")
    assert sum(statuses.values()) == REQUESTS
    assert all(statuses[code] >= 10 for code in (200, 400, 404, 405)), statuses  # all kinds


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"POST /meters/0/faults HTTP/1.1\r\nContent-Length: 9001\r\n\r\n" + b"[" * 9001, 400),
        (b'POST /meters/0/partial HTTP/1.1\r\nContent-Length: 15\r\n\r\n{"action": [1]}', 400),
        (b"POST /meters/0/tariff HTTP/1.1\r\nContent-Length: 1\r\n\r\n\xff", 400),
        (b"GET /meters/\xd9\xa1 HTTP/1.1\r\n\r\n", 404),
        (b"DELETE /meters HTTP/1.1\r\n\r\n", 405),
    ],
    ids=["deep nesting", "action of a wrong type", "not UTF-8", "arabic digit", "DELETE"],
)
async def test_the_requests_of_the_issue(make_meter, request_bytes: bytes, status: int) -> None:
    meter = make_meter()
    async with (
        EmulatorServer([meter], host=HOST, port=0) as server,
        ControlServer([meter], server.ports) as control,
    ):
        answer = await exchange(control.port, request_bytes)
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert meter.partial_running
    assert meter.tariff == 1
