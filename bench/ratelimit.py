"""Rate-limit decisions per second: Barbacana vs the `limits` library, side by side.

    uv run python bench/ratelimit.py [--redis redis://127.0.0.1:6379/0] [--quick]

Four tables, one run (bounded: about a minute on two shared cores):

1. In process, per algorithm: Barbacana's MemoryStore vs `limits`' MemoryStorage
   (async and sync APIs); then the rate on a key that already took many hits
   against a fresh key, to show whether a decision gets slower as hits pile up.
2. Redis, sequential (one decision at a time, asyncio): the floor (one raw
   EVALSHA of the same script through redis-py), Barbacana, `limits` async
   (redis-py implementation) and `limits` sync.
3. Redis, 50 concurrent asyncio tasks: Barbacana (coalesced pipelines) vs `limits` async.

`limits` has no token bucket or GCRA; those rows compare against `limits`'
fixed window, its cheapest algorithm. Every key is removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

# Run as a script, this folder comes first on sys.path, where a sibling bench
# module could shadow a standard-library module (bench/http.py shadows `http`).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent.resolve()]

import limits  # noqa: E402
import limits.aio.storage  # noqa: E402
import limits.aio.strategies  # noqa: E402
import limits.storage  # noqa: E402
import limits.strategies  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from barbacana.ratelimit import ALGORITHMS, Limit, MemoryStore, Meter, RedisStore  # noqa: E402
from barbacana.ratelimit._lua import SCRIPTS  # noqa: E402

LIMITS_ASYNC = {
    "fixed_window": limits.aio.strategies.FixedWindowRateLimiter,
    "sliding_window_log": limits.aio.strategies.MovingWindowRateLimiter,
    "sliding_window_counter": limits.aio.strategies.SlidingWindowCounterRateLimiter,
    "token_bucket": limits.aio.strategies.FixedWindowRateLimiter,
    "leaky_bucket": limits.aio.strategies.FixedWindowRateLimiter,
}
LIMITS_SYNC = {
    "fixed_window": limits.strategies.FixedWindowRateLimiter,
    "sliding_window_log": limits.strategies.MovingWindowRateLimiter,
    "sliding_window_counter": limits.strategies.SlidingWindowCounterRateLimiter,
    "token_bucket": limits.strategies.FixedWindowRateLimiter,
    "leaky_bucket": limits.strategies.FixedWindowRateLimiter,
}
#: Algorithms `limits` has too; the others are compared with its fixed window.
LIMITS_SAME = {"fixed_window", "sliding_window_log", "sliding_window_counter"}
BIG = 10_000_000  # never refuses during the bench: every decision does the full work
HOUR = 3600.0


class Run:
    """Rate overall and over the first and last tenth of the operations."""

    def __init__(self, times: list[float]) -> None:
        n = len(times) - 1
        self.n = n
        self.rate = n / (times[-1] - times[0])
        tenth = max(1, n // 10)
        self.first = tenth / (times[tenth] - times[0])
        self.last = tenth / (times[-1] - times[-1 - tenth])


async def timed_async(op: Callable[[], Awaitable[object]], n: int, budget: float) -> Run:
    times = [time.perf_counter()]
    deadline = times[0] + budget
    for _ in range(n):
        await op()
        now = time.perf_counter()
        times.append(now)
        if now > deadline:
            break
    return Run(times)


def timed_sync(op: Callable[[], object], n: int, budget: float) -> Run:
    times = [time.perf_counter()]
    deadline = times[0] + budget
    for _ in range(n):
        op()
        now = time.perf_counter()
        times.append(now)
        if now > deadline:
            break
    return Run(times)


async def concurrent(op: Callable[[], Awaitable[object]], n: int, tasks: int) -> float:
    left = [n]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await op()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(tasks)))
    return n / (time.perf_counter() - start)


def fmt(rate: float) -> str:
    return f"{rate:,.0f}"


async def in_process(n: int, rounds: int = 5) -> list[str]:
    rows = [
        f"Best of {rounds} interleaved rounds of {n // rounds:,} hits on one key.",
        "",
        "| algorithm | Barbacana | limits async | limits sync | Barbacana / best limits |",
        "|---|---:|---:|---:|---:|",
    ]
    item = limits.parse(f"{BIG}/hour")
    for name, algorithm in ALGORITHMS.items():
        store = MemoryStore()
        meter = (Meter("m", "s", Limit(BIG, HOUR)),)
        aio = LIMITS_ASYNC[name](limits.aio.storage.MemoryStorage())
        sync = LIMITS_SYNC[name](limits.storage.MemoryStorage())

        async def ours_op(s: MemoryStore = store, m: tuple = meter, a: type = algorithm) -> object:
            return await s.hit("k", m, algorithm=a)

        async def theirs_op(lim: object = aio) -> object:
            return await lim.hit(item, "k")  # type: ignore[attr-defined]

        def sync_op(lim: object = sync) -> object:
            return lim.hit(item, "k")  # type: ignore[attr-defined]

        ours: list[float] = []
        theirs: list[float] = []
        theirs_sync: list[float] = []
        for _ in range(rounds):
            ours.append((await timed_async(ours_op, n // rounds, 4)).rate)
            theirs.append((await timed_async(theirs_op, n // rounds, 4)).rate)
            theirs_sync.append(timed_sync(sync_op, n // rounds, 4).rate)
        best = max(max(theirs), max(theirs_sync))
        label = name if name in LIMITS_SAME else f"{name} (vs fixed)"
        rows.append(
            f"| {label} | {fmt(max(ours))} | {fmt(max(theirs))} | {fmt(max(theirs_sync))} "
            f"| {max(ours) / best:.2f}x |"
        )
    return rows


async def flatness(preload: int, n: int, rounds: int = 5) -> list[str]:
    """Cost of a hit on a key that already took ``preload`` hits, vs on a fresh key."""
    rows = [
        f"Best of {rounds} interleaved rounds of {n // rounds:,} hits: on a key that already "
        f"took {preload:,} hits, and on a fresh key each round.",
        "",
        "| algorithm | Barbacana old key | fresh key | old / fresh "
        "| limits async old key | fresh key | old / fresh |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    item = limits.parse(f"{BIG}/hour")
    for name, algorithm in ALGORITHMS.items():
        store = MemoryStore()
        meter = (Meter("m", "s", Limit(BIG, HOUR)),)
        aio = LIMITS_ASYNC[name](limits.aio.storage.MemoryStorage())
        fresh = [0]

        async def ours(
            key: str, s: MemoryStore = store, m: tuple = meter, a: type = algorithm
        ) -> object:
            return await s.hit(key, m, algorithm=a)

        async def theirs(key: str, lim: object = aio) -> object:
            return await lim.hit(item, key)  # type: ignore[attr-defined]

        for _ in range(preload):
            await ours("old")
            await theirs("old")
        best = {"ours-old": 0.0, "ours-new": 0.0, "theirs-old": 0.0, "theirs-new": 0.0}
        for _ in range(rounds):
            fresh[0] += 1
            key = f"fresh{fresh[0]}"
            for label, op in (
                ("ours-old", lambda: ours("old")),
                ("ours-new", lambda k=key: ours(k)),
                ("theirs-old", lambda: theirs("old")),
                ("theirs-new", lambda k=key: theirs(k)),
            ):
                best[label] = max(best[label], (await timed_async(op, n // rounds, 4)).rate)
        label = name if name in LIMITS_SAME else f"{name} (vs fixed)"
        rows.append(
            f"| {label} | {fmt(best['ours-old'])} | {fmt(best['ours-new'])} "
            f"| {best['ours-old'] / best['ours-new']:.2f} | {fmt(best['theirs-old'])} "
            f"| {fmt(best['theirs-new'])} | {best['theirs-old'] / best['theirs-new']:.2f} |"
        )
    return rows


async def best_of(
    ops: dict[str, Callable[[], Awaitable[object]]], n: int, rounds: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Run the ops in interleaved rounds of n/rounds each.

    Answers each op's best rate (per second, wall clock) and its least client CPU
    per operation (µs, this process only). Interleaving and best-of keep a noisy,
    shared machine from favouring one side; CPU time is what the client code itself
    costs, whatever else the machine is doing.
    """
    best = dict.fromkeys(ops, 0.0)
    cpu = dict.fromkeys(ops, float("inf"))
    for _ in range(rounds):
        for name, op in ops.items():
            started = time.process_time()
            run = await timed_async(op, n // rounds, 10)
            cpu[name] = min(cpu[name], (time.process_time() - started) / run.n * 1e6)
            best[name] = max(best[name], run.rate)
    return best, cpu


async def on_redis(url: str, n: int, n_concurrent: int, tasks: int) -> tuple[list[str], list[str]]:
    tag = uuid.uuid4().hex[:10]
    ours_prefix, theirs_prefix = f"brbbench{tag}", f"limbench{tag}"
    client = aioredis.Redis.from_url(url)
    # The floor: the algorithm's own script, one packed EVALSHA written and its reply
    # read on a held redis-py connection (the least redis-py can do per decision).
    conn = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    sequential = [
        "Floor: one raw `EVALSHA` of the same algorithm's script, written and read on a "
        "held redis-py connection. `Redis.evalsha`, which also takes a pooled connection "
        "each time, is shown too.",
        "",
        "| algorithm | floor | `Redis.evalsha` | Barbacana | floor / Barbacana "
        "| client CPU µs: floor / Barbacana | limits async | limits sync "
        "| Barbacana / limits async |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    parallel = [
        f"{tasks} asyncio tasks sharing one store, {n_concurrent:,} decisions per run, "
        "best of 3 interleaved runs.",
        "",
        "| algorithm | Barbacana | limits async | ratio |",
        "|---|---:|---:|---:|",
    ]
    store = RedisStore(url, key_prefix=ours_prefix)
    sync_storage = limits.storage.RedisStorage(url, key_prefix=theirs_prefix)
    aio_storage = limits.aio.storage.RedisStorage(
        "async+" + url, implementation="redispy", key_prefix=theirs_prefix
    )
    item = limits.parse(f"{BIG}/hour")
    try:
        for name, algorithm in ALGORITHMS.items():
            code = algorithm.code
            sha = await client.script_load(SCRIPTS[code])
            key = f"{ours_prefix}:{{floor}}:{code}"

            async def raw_conn(sha: str = sha, key: str = key) -> object:
                await conn.send_packed_command(
                    conn.pack_command("EVALSHA", sha, 1, key, "", 1, BIG, HOUR)
                )
                return await conn.read_response()

            async def raw_client(sha: str = sha, key: str = key) -> object:
                return await client.evalsha(sha, 1, key + "c", "", 1, BIG, HOUR)  # type: ignore[misc]

            meter = (Meter("m", "s", Limit(BIG, HOUR)),)
            aio = LIMITS_ASYNC[name](aio_storage)
            sync = LIMITS_SYNC[name](sync_storage)

            async def ours_op(alg: type = algorithm, m: tuple = meter, k: str = name) -> object:
                return await store.hit(f"seq-{k}", m, algorithm=alg)

            async def theirs_op(a: object = aio, k: str = name) -> object:
                return await a.hit(item, "seq", k)  # type: ignore[attr-defined]

            async def theirs_sync_op(s: object = sync, k: str = name) -> object:
                return s.hit(item, "seqs", k)  # type: ignore[attr-defined]

            ops = {
                "floor": raw_conn,
                "client": raw_client,
                "ours": ours_op,
                "theirs": theirs_op,
                "sync": theirs_sync_op,
            }
            await best_of(ops, 50 * len(ops), 1)  # warm up connections and scripts
            rate, cpu = await best_of(ops, n, 20)
            label = name if name in LIMITS_SAME else f"{name} (vs fixed)"
            sequential.append(
                f"| {label} | {fmt(rate['floor'])} | {fmt(rate['client'])} | {fmt(rate['ours'])} "
                f"| {rate['floor'] / rate['ours']:.2f}x "
                f"| {cpu['floor']:.0f} / {cpu['ours']:.0f} ({cpu['ours'] / cpu['floor']:.2f}x) "
                f"| {fmt(rate['theirs'])} "
                f"| {fmt(rate['sync'])} | {rate['ours'] / rate['theirs']:.2f}x |"
            )

            async def ours_par_op(alg: type = algorithm, m: tuple = meter, k: str = name) -> object:
                return await store.hit(f"par-{k}", m, algorithm=alg)

            async def theirs_par_op(a: object = aio, k: str = name) -> object:
                return await a.hit(item, "par", k)  # type: ignore[attr-defined]

            ours_par, theirs_par = 0.0, 0.0
            for _ in range(3):
                ours_par = max(ours_par, await concurrent(ours_par_op, n_concurrent, tasks))
                theirs_par = max(theirs_par, await concurrent(theirs_par_op, n_concurrent, tasks))
            parallel.append(
                f"| {label} | {fmt(ours_par)} | {fmt(theirs_par)} | {ours_par / theirs_par:.2f}x |"
            )
    finally:
        await client.connection_pool.release(conn)
        await store.aclose()
        for prefix in (ours_prefix, theirs_prefix):
            keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
            if keys:
                await client.delete(*keys)
        await client.aclose()
    return sequential, parallel


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="fewer operations (a smoke run)")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    start = time.perf_counter()
    print("## In process (decisions per second, one key)\n")
    print("\n".join(await in_process(int(50_000 * scale))))
    print("\n## In process, as hits pile up on one key\n")
    print("\n".join(await flatness(int(50_000 * scale), int(10_000 * scale))))
    sequential, parallel = await on_redis(
        args.redis, int(2000 * scale), int(3000 * scale), tasks=50
    )
    print("\n## Redis, sequential (asyncio, one decision at a time)\n")
    print("\n".join(sequential))
    print("\n## Redis, 50 concurrent tasks\n")
    print("\n".join(parallel))
    print(f"\n(whole run: {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
