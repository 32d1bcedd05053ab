"""Helpers for tests that run `python gateway.py` as a real subprocess."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp


async def wait_healthy(
    base: str, exited: Callable[[], bool], output: Callable[[], str], timeout: float
) -> None:
    """Poll base/healthz until it answers 200; fail with the process output if it exits."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if exited():
                raise AssertionError(f"gateway exited early:\n{output()}")
            try:
                async with session.get(base + "/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"gateway did not become ready:\n{output()}")
