"""Two running instances of a service share one Redis: together they admit the limit once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rl_helpers import free_port

pytestmark = [pytest.mark.redis, pytest.mark.slow]

APP = """
import os

from fastapi import FastAPI

from barbacana.ratelimit import PolicySettings, RateLimitMiddleware, RateLimitSettings, RedisStore


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/orders")
    async def orders() -> list[int]:
        return []

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    settings = RateLimitSettings(
        policies=[
            PolicySettings(
                name="orders", route="/orders", methods=["GET"], limits=["100 per 31 days"]
            )
        ],
        global_policy=None,
    )
    store = RedisStore(os.environ["RL_REDIS_URL"], key_prefix=os.environ["RL_PREFIX"])
    app.add_middleware(RateLimitMiddleware, policies=settings, store=store)
    return app
"""


@pytest.fixture
def instances(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[list[int]]:
    (tmp_path / "rl_two_app.py").write_text(APP)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "RL_REDIS_URL": redis_url,
        "RL_PREFIX": prefix,
    }
    ports = [free_port(), free_port()]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "rl_two_app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-proxy-headers",
                "--log-level",
                "warning",
            ],
            cwd=tmp_path,
            env=env,
        )
        for port in ports
    ]
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)


async def test_two_uvicorn_processes_admit_exactly_the_limit(instances: list[int]) -> None:
    """1,000 concurrent requests spread over two instances, limit 100: exactly 100 admitted."""
    gate = asyncio.Semaphore(100)
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(i: int) -> int:
            async with gate:
                port = instances[i % 2]
                return (await client.get(f"http://127.0.0.1:{port}/orders")).status_code

        codes = await asyncio.gather(*(one(i) for i in range(1000)))
    assert codes.count(200) == 100
    assert codes.count(429) == 900
