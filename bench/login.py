"""login: residents logging in through the gateway (form, CSRF, auth, argon2id, session) per second,
against raw argon2id verifications per second with the same parameters and the same two threads."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import argon2

from bench.report import Result
from bench.rounds import ROUNDS, alternate
from services.auth.settings import Settings as AuthSettings
from tests.support.resident import Resident, csrf_of, known_debtor, new_email
from tests.support.suite import Suite

CONNECTIONS = 8


async def _raw_verifications_per_second(seconds: float) -> float:
    defaults = AuthSettings()
    hasher = argon2.PasswordHasher(
        time_cost=defaults.argon2_time_cost,
        memory_cost=defaults.argon2_memory_kib,
        parallelism=defaults.argon2_parallelism,
        type=argon2.Type.ID,
    )
    stored = hasher.hash("une phrase de passe de banc d'essai")
    pool = ThreadPoolExecutor(max_workers=defaults.hashing_threads)
    loop = asyncio.get_running_loop()
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await loop.run_in_executor(pool, hasher.verify, stored, "une phrase de passe de banc d'essai")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    pool.shutdown()
    return done / elapsed


async def run(suite: Suite, seconds: float) -> Result:
    town = await suite.create_town()
    resident = Resident(suite, town, new_email("bench"), password="une phrase de passe de banc d'essai")
    await known_debtor(suite, town, resident.email)
    await resident.activate()
    await resident.close()

    latencies: list[float] = []
    failures = 0

    async def client(deadline: float) -> None:
        nonlocal failures
        browser = Resident(suite, town, resident.email, password=resident.password)
        try:
            page = await browser.get("/")
            token = csrf_of(page.text)
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                answer = await browser.post(
                    "/connexion",
                    {"csrf_token": token, "email": resident.email, "password": resident.password},
                )
                if answer.status == 303:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures += 1
                browser.http.cookie_jar.clear(lambda c: c.key != "portail_csrf")
        finally:
            await browser.close()

    async def logins_per_second() -> dict[str, float]:
        before = len(latencies)
        started = time.perf_counter()
        await asyncio.gather(*(client(started + seconds) for _ in range(CONNECTIONS)))
        return {"per s": (len(latencies) - before) / (time.perf_counter() - started)}

    async def verifications_per_second() -> dict[str, float]:
        return {"per s": await _raw_verifications_per_second(seconds)}

    rounds = await alternate(logins_per_second, verifications_per_second, "per s")
    logins = rounds.median("subject", "per s")
    raw = rounds.median("baseline", "per s")
    latencies.sort()
    ratio = rounds.ratio
    return Result(
        name="login",
        what="logins per second through the gateway vs raw argon2id verifications per second",
        subject={
            "logins/s": logins,
            "p50 ms": 1000 * latencies[len(latencies) // 2] if latencies else 0.0,
            "p99 ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else 0.0,
            "errors": float(failures),
        },
        baseline={"verifications/s": raw},
        ratio=ratio,
        target="≥ 80 %",
        met=ratio >= 0.8,
        notes=[
            f"{CONNECTIONS} concurrent clients, {ROUNDS} rounds of {seconds:.0f} s for each side, alternating "
            "(medians of the rounds); each login is a full form post (CSRF, "
            "gateway → auth, throttle check, argon2id verification in auth's thread pool, new session row).",
            "Baseline: the same argon2id parameters and the same number of threads, in one process, no I/O.",
            rounds.describe(),
        ],
    )
