"""Load for the admission benchmark: bulk creation, wrk at saturation, a paced client.

- `create_all` POSTs thousands of objects to the API server concurrently (aiohttp,
  the admin's client certificate), far faster than one kubectl call each.
- `saturate` runs wrk (C, one thread, a Lua script that cycles through the
  request bodies) pinned to its own core, and reports its own CPU use so that
  the figures show whether the load generator kept up.
- `paced` sends a steady rate from asyncio and measures each latency from the
  moment the request was due, so a slow answer cannot hide the ones queued
  behind it (no coordinated omission).
- `process_cpu` and `process_rss` read /proc.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import resource
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from bench.objects import Review

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PATH = "/validate-deployments"


# -- /proc --------------------------------------------------------------------


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process and all its threads have used."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_rss(pid: int) -> tuple[float, float]:
    """Resident memory now and at its peak, in MiB."""
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return (
        int(status["VmRSS"].split()[0]) / 1024,
        int(status["VmHWM"].split()[0]) / 1024,
    )


def pin(pid: int, cpu: int) -> None:
    """Pin every thread of a process to one CPU (threads it starts later inherit it)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


# -- bulk creation ------------------------------------------------------------


def _admin_tls(kubeconfig: Path, workdir: Path) -> tuple[str, ssl.SSLContext]:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    workdir.mkdir(parents=True, exist_ok=True)
    ca, cert, key = workdir / "ca.crt", workdir / "admin.crt", workdir / "admin.key"
    ca.write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    cert.write_bytes(base64.b64decode(user["client-certificate-data"]))
    key.write_bytes(base64.b64decode(user["client-key-data"]))
    key.chmod(0o600)
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    return cluster["server"], context


def _collection(obj: dict[str, Any]) -> str:
    api, kind = obj["apiVersion"], obj["kind"]
    plural = {"Namespace": "namespaces"}.get(kind, kind.lower() + "s")
    prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
    ns = obj["metadata"].get("namespace")
    return f"{prefix}/namespaces/{ns}/{plural}" if ns else f"{prefix}/{plural}"


async def _create_all(server: str, context: ssl.SSLContext, objects: list[dict[str, Any]]) -> None:
    queue = iter(objects)
    connector = aiohttp.TCPConnector(ssl=context, limit=64)
    async with aiohttp.ClientSession(server, connector=connector) as session:

        async def worker() -> None:
            for obj in queue:
                async with session.post(_collection(obj), json=obj) as response:
                    if response.status not in (201, 409):
                        text = await response.text()
                        raise RuntimeError(f"creating {obj['metadata']}: {response.status} {text}")

        await asyncio.gather(*(worker() for _ in range(32)))


def create_all(kubeconfig: Path, workdir: Path, objects: list[dict[str, Any]]) -> None:
    """Create the objects as the admin (409 Conflict counts as done)."""
    server, context = _admin_tls(kubeconfig, workdir)
    asyncio.run(_create_all(server, context, objects))


# -- correctness --------------------------------------------------------------


async def _answers(url: str, context: ssl.SSLContext, reviews: Sequence[Review]) -> list[bool]:
    connector = aiohttp.TCPConnector(ssl=context, limit=8)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def answer(review: Review) -> bool:
            headers = {"Content-Type": "application/json"}
            async with session.post(url + PATH, data=review.body, headers=headers) as response:
                payload = await response.json()
                return bool(payload["response"]["allowed"])

        return list(await asyncio.gather(*(answer(r) for r in reviews)))


def wrong_answers(url: str, context: ssl.SSLContext, reviews: Sequence[Review]) -> list[str]:
    """Requests whose answer is not the expected one (empty for the allow-all floor's check)."""
    answers = asyncio.run(_answers(url, context, reviews))
    return [
        f"{r.what}: allowed={a}" for r, a in zip(reviews, answers, strict=True) if a != r.allowed
    ]


# -- saturation (wrk) ---------------------------------------------------------


def _lua_script(bodies: Iterable[bytes]) -> str:
    literals = ",\n".join(f"[==[{b.decode()}]==]" for b in bodies)
    return f"""\
local bodies = {{
{literals}
}}
local requests = {{}}
local n = 0
init = function(args)
  for i, body in ipairs(bodies) do
    requests[i] = wrk.format("POST", "{PATH}", {{["Content-Type"] = "application/json"}}, body)
  end
end
request = function()
  n = n % #requests + 1
  return requests[n]
end
"""


@dataclass(frozen=True)
class Saturation:
    requests: int
    seconds: float
    errors: int
    generator_cpu: float  # CPU seconds wrk used

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def saturate(
    url: str, reviews: Sequence[Review], workdir: Path, seconds: int, connections: int, cpu: int
) -> Saturation:
    """Closed-loop load from wrk on `cpu`, as fast as the server answers."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: run hack/ensure-tool.sh wrk")
    script = workdir / "admission.lua"
    script.write_text(_lua_script(r.body for r in reviews))
    command = [wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url + PATH]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    out = subprocess.run(
        ["taskset", "-c", str(cpu), *command], check=True, capture_output=True, text=True
    ).stdout
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    duration = float(done.group(2)) / (1000 if done.group(3) == "ms" else 1)
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|timeout) (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write) (\d+)", out))
    cpu_used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Saturation(int(done.group(1)), duration or elapsed, errors, cpu_used)


# -- steady rate (asyncio) ----------------------------------------------------


@dataclass(frozen=True)
class Paced:
    latencies: list[float]  # seconds, from when each request was due
    seconds: float
    errors: int
    generator_cpu: float

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def _paced(
    url: str, context: ssl.SSLContext, reviews: Sequence[Review], rate: float, count: int
) -> Paced:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(ssl=context, limit=64)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one(body: bytes, due: float) -> None:
            nonlocal errors
            try:
                async with session.post(url + PATH, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append(loop.time() - due)

        # A few requests first, so that connections are open before the clock starts.
        await asyncio.gather(*(one(r.body, loop.time()) for r in reviews[:16]))
        latencies.clear()
        cpu_before = time.process_time()
        start = loop.time() + 0.05
        tasks = []
        for i in range(count):
            due = start + i / rate
            # Pacing the load generator is its job: each request leaves when it is due.
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(reviews[i % len(reviews)].body, due)))
        await asyncio.gather(*tasks)
        seconds = loop.time() - start
        cpu = time.process_time() - cpu_before
    return Paced(latencies, seconds, errors, cpu)


def paced(
    url: str,
    context: ssl.SSLContext,
    reviews: Sequence[Review],
    rate: float,
    seconds: int,
    cpu: int,
) -> Paced:
    """Open-loop load at a steady `rate` from this process, pinned to `cpu` meanwhile."""
    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        return asyncio.run(_paced(url, context, reviews, rate, int(rate * seconds)))
    finally:
        os.sched_setaffinity(0, previous)


def trust(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))
