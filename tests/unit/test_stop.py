"""Stopping is bounded even when a library swallows a cancellation (no network)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from countis_bridge import poller, service


async def swallow_one_cancellation() -> None:
    """What Python 3.11's ``wait_for`` does when the answer and the cancellation meet."""
    with contextlib.suppress(asyncio.CancelledError):  # returns the answer instead
        await asyncio.sleep(10)


async def test_the_poll_loop_check_stops_a_task_whose_cancellation_was_swallowed():
    reached = asyncio.Event()

    async def poll_loop() -> None:
        while True:
            poller._raise_if_cancelling()
            reached.set()
            await swallow_one_cancellation()

    task = asyncio.create_task(poll_loop())
    await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)


async def test_a_task_not_cancelled_is_left_alone():
    async def check() -> bool:
        poller._raise_if_cancelling()
        return True

    assert await asyncio.create_task(check())


async def test_stragglers_are_cancelled_again_until_they_stop(caplog):
    caplog.set_level(logging.WARNING, logger="countis_bridge.service")

    async def stubborn() -> None:
        await swallow_one_cancellation()
        await swallow_one_cancellation()
        await asyncio.sleep(10)

    task = asyncio.create_task(stubborn(), name="meter stubborn")
    await asyncio.sleep(0)
    task.cancel()
    service._keep_cancelling([task], 0.05)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1.0)
    assert [r.getMessage() for r in caplog.records] == [
        "stopping: meter stubborn still running; cancelling again",
        "stopping: meter stubborn still running; cancelling again",
    ]
