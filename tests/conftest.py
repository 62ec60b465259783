from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from speed_kings.clock import SystemClock
from speed_kings.http import make_session


@pytest.fixture
def clock() -> SystemClock:
    return SystemClock()


@pytest.fixture
async def session(clock: SystemClock) -> AsyncIterator[aiohttp.ClientSession]:
    async with make_session(clock) as s:
        yield s
