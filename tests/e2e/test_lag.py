"""`/metrics` tells the lag by domain: what a reactor measured, and how long ago."""

from __future__ import annotations

import re

import httpx

from tests.e2e.sse import post_location
from tests.helpers import eventually, unique_name
from tests.processes import Stack


def gauge(text: str, name: str) -> float | None:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return None if found is None else float(found.group(1))


async def test_metrics_show_the_lag_of_each_domain(fresh_stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=fresh_stack.url, timeout=10) as client:
        for _ in range(2):  # in flight at the reactor for 6 s each
            accepted = await post_location(client, unique_name("Slow"), **{"X-Simulate-Delay": "6"})
            assert accepted.status_code == 202

        async def lag_is(count: float) -> str | None:
            text = (await client.get("/metrics")).text
            return text if gauge(text, 'notify_commands_lag{domain="locations"}') == count else None

        text = await eventually(lambda: lag_is(2.0), within=6)
        assert gauge(text, 'notify_commands_lag{domain="accounting"}') == 0.0
        age = gauge(text, "notify_commands_lag_age_seconds")
        assert age is not None
        assert 0.0 <= age < 10
        await eventually(lambda: lag_is(0.0), within=15)  # done, and measured again
