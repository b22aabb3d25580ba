"""Many shoppers at once against ``atelier serve`` on 127.0.0.1: throughput, latency, errors, lost turns.

Three servers in one run, on the same store and the same sessions database: one worker with the old global
turn lock (the baseline), one worker without it (turn pool + per-session locks), and two worker processes.
Against each, N shoppers (1, 5, 10, 20) each hold a session and talk for a bounded time: a search, a
refinement, "cheaper", a photo turn, a click (like) and "show me more", over and over. Photo turns upload
distinct photos in turn from a pool of the H&M test split's photos, half as they are (a screenshot of a product
page) and half degraded like a phone photo of a screen (cropped, rescaled, rotated, framed, recompressed), so no
turn is answered from another's caches. Measured per turn: the
first SSE event (what the shopper waits for before anything moves) and the whole turn; per level: turns/s,
errors, and, read back from the server, lost or duplicated turns. Then 20 clients without keep-alive send
5 messages each to one session, so both workers write it at once: its turns must come back numbered 1..100.

    python -m benchmarks load [--shoppers 1,5,10,20] [--seconds 15] [--store DIR] [--db URL]

Prints a table and writes benchmarks/results/load.png (latency vs shoppers). Timings depend on what else
the machine is doing: compare configurations within one run, as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import percentile, print_table

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
MESSAGES = ["a black dress", "in red instead", "cheaper", None, "like", "show me more"]
PHOTO_TEXT = "something like this"
ARRIVAL_GAP_S = 0.05
"""Shoppers of a level arrive this far apart (locust's spawn rate, 20/s): a burst of 20 connections at one instant
was taken up to 16:4 by one of two worker processes (asyncio accepts every pending connection at a wake-up), and
the 2-worker results were a coin toss (39-59 turns/s in repeat runs)."""
CONFIGS = [("1 worker, global lock", 1, True), ("1 worker", 1, False), ("2 workers", 2, False)]
if os.environ.get("BENCH_CONFIGS"):
    CONFIGS = [c for c in CONFIGS if c[0] in os.environ["BENCH_CONFIGS"].split(";")]


@dataclass
class Turn:
    first_s: float
    total_s: float
    ok: bool
    number: int = 0
    product_ids: list[str] = field(default_factory=list)
    kind: str = "text"


@dataclass
class Session:
    session_id: str
    headers: dict[str, str]
    turns: list[Turn] = field(default_factory=list)
    likes: int = 0


async def open_session(client: httpx.AsyncClient) -> Session:
    response = await client.post("/v1/sessions")
    response.raise_for_status()
    body = response.json()
    return Session(body["session_id"], {"Authorization": f"Bearer {body['token']}"})


async def send(client: httpx.AsyncClient, session: Session, text: str, photo: bytes | None = None) -> Turn:
    """One message; the time to the first SSE event and to the end of the stream."""
    url = f"/v1/sessions/{session.session_id}/messages"
    kwargs = ({"data": {"text": text}, "files": {"image": ("photo.jpg", photo, "image/jpeg")}} if photo
              else {"json": {"text": text}})
    started = time.perf_counter()
    first, ok, number, products, event = None, True, 0, [], ""
    try:
        async with client.stream("POST", url, headers=session.headers, **kwargs) as response:
            ok = response.status_code == 200
            async for line in response.aiter_lines():
                first = first or time.perf_counter() - started
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                    ok = ok and event != "error"
                    if event == "products" and not products:
                        products = [r["id"] for r in data.get("results", [])]
                    elif event == "done":
                        number = data.get("turn") or 0
    except httpx.HTTPError:
        ok = False
    total = time.perf_counter() - started
    return Turn(first or total, total, ok, number, products, "photo" if photo else "text")


async def click(client: httpx.AsyncClient, session: Session, product_id: str) -> Turn:
    started = time.perf_counter()
    try:
        response = await client.post(f"/v1/sessions/{session.session_id}/feedback", headers=session.headers,
                                     json={"product_id": product_id, "kind": "like"})
        ok = response.status_code == 200
    except httpx.HTTPError:
        ok = False
    elapsed = time.perf_counter() - started
    session.likes += ok
    return Turn(elapsed, elapsed, ok, kind="click")


class Uploads:
    """The photos shoppers upload, handed out in turn (built before the clock starts: the client stays light)."""

    def __init__(self, count: int = 160, seed: int = 0) -> None:
        import numpy as np
        from PIL import Image

        from atelier.tools.training.recognition import degrade

        datasets = REPO.parent / "shared" / "datasets"
        codes = {int(c) for c in (datasets / "splits" / "hm_test_product_codes.txt").read_text().split()}
        paths = [p for p in sorted((datasets / "hm" / "images").glob("*/*.jpg")) if int(p.stem[:-3]) in codes]
        rng = np.random.default_rng(seed)
        chosen = [paths[i] for i in rng.choice(len(paths), size=min(count, len(paths)), replace=False)]
        self.photos = []
        for i, path in enumerate(chosen):
            if i % 2:
                self.photos.append(_jpeg(degrade(Image.open(path), rng)))
            else:
                self.photos.append(path.read_bytes())
        self.handed = 0

    def next(self) -> bytes:
        photo = self.photos[self.handed % len(self.photos)]
        self.handed += 1
        return photo


def _jpeg(image: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


async def shopper(client: httpx.AsyncClient, deadline: float, photos: Uploads, max_turns: int,
                  arrives_after: float = 0.0) -> Session:
    await asyncio.sleep(arrives_after)
    session = await open_session(client)
    shown: list[str] = []
    step = 0
    while time.perf_counter() < deadline and len(session.turns) < max_turns:
        message = MESSAGES[step % len(MESSAGES)]
        step += 1
        if message == "like":
            if shown:
                session.turns.append(await click(client, session, shown[0]))
            continue
        turn = await send(client, session, message or PHOTO_TEXT, photos.next() if message is None else None)
        shown = turn.product_ids or shown
        session.turns.append(turn)
    return session


async def lost_and_duplicated(client: httpx.AsyncClient, sessions: list[Session]) -> tuple[int, int]:
    """Message turns the shoppers saw answered but the server has not logged (lost), or logged twice."""
    lost = duplicated = 0
    for session in sessions:
        answered = sum(1 for t in session.turns if t.ok and t.number)
        view = (await client.get(f"/v1/sessions/{session.session_id}", headers=session.headers)).json()
        numbers = [h["turn"] for h in view["history"] if h["kind"] == "message" and not h["failed"]]
        likes = sum(1 for h in view["history"] if h["kind"] == "feedback")
        duplicated += len(numbers) - len(set(numbers))
        lost += max(0, answered - len(set(numbers))) + max(0, session.likes - likes)
        lost += max(0, len(set(numbers)) - view["memory"].get("turn", 0))
    return lost, duplicated


async def level(base: str, shoppers: int, seconds: float, photos: Uploads, max_turns: int) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        started, client_cpu, machine = time.perf_counter(), time.process_time(), cpu_times()
        deadline = started + seconds
        sessions = await asyncio.gather(*(shopper(client, deadline, photos, max_turns, i * ARRIVAL_GAP_S)
                                                 for i in range(shoppers)))
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - client_cpu
        busy, total = (after - before for after, before in zip(cpu_times(), machine))
        lost, duplicated = await lost_and_duplicated(client, list(sessions))
    turns = [t for s in sessions for t in s.turns]
    messages = [t for t in turns if t.kind != "click"]
    firsts, totals = [t.first_s for t in messages], [t.total_s for t in messages]
    return {"shoppers": shoppers, "turns": len(turns), "turns_per_s": len(turns) / elapsed,
            "first_p50": percentile(firsts, 50), "first_p95": percentile(firsts, 95),
            "turn_p50": percentile(totals, 50), "turn_p95": percentile(totals, 95),
            "photo_p95": percentile([t.total_s for t in turns if t.kind == "photo"], 95),
            "click_p95": percentile([t.total_s for t in turns if t.kind == "click"], 95),
            "errors": sum(not t.ok for t in turns), "lost": lost, "duplicated": duplicated,
            "machine_busy": round(busy / max(total, 1e-9), 2),
            "client_cpu": round(client_cpu / max(elapsed * (os.cpu_count() or 1), 1e-9), 2)}


def cpu_times() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far (``/proc/stat``; zeros where there is none): the load
    generator shares the cores with the servers, so each level reports how busy the box was and the
    generator's own share."""
    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0, 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
    return sum(fields) - idle, sum(fields)


async def one_session_from_everywhere(base: str, clients: int = 20, each: int = 5) -> dict:
    """``clients`` connections without keep-alive (so both workers get some) write one session at once."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        session = await open_session(client)

        async def talk(i: int) -> list[Turn]:
            return [await send(client, session, f"a {'red black blue green white'.split()[(i + j) % 5]} dress")
                    for j in range(each)]

        turns = [t for batch in await asyncio.gather(*(talk(i) for i in range(clients))) for t in batch]
        view = (await client.get(f"/v1/sessions/{session.session_id}", headers=session.headers)).json()
    numbers = sorted(h["turn"] for h in view["history"] if h["kind"] == "message" and not h["failed"])
    return {"sent": clients * each, "answered": sum(t.ok for t in turns), "logged": len(numbers),
            "distinct": len(set(numbers)), "memory_turn": view["memory"].get("turn"),
            "numbered_1_to_n": numbers == list(range(1, len(numbers) + 1))}


class Server:
    """``atelier serve`` in a child process on a free loopback port (stopped by its own pid)."""

    def __init__(self, env: dict[str, str], workers: int, global_lock: bool) -> None:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        command = [str(Path(sys.executable).parent / "atelier"), "serve", "--port", str(self.port),
                   "--workers", str(workers)] + (["--global-lock"] if global_lock else [])
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench-load-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO)

    def wait(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError("server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def warm_up(base: str, photos: Uploads, workers: int) -> None:
    """Every worker loads its models before the clock starts (several connections reach every process)."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, timeout=300, limits=limits) as client:
        await asyncio.gather(*(shopper(client, time.perf_counter() + 240, photos, len(MESSAGES))
                               for _ in range(4 * workers)))


def choose_store(store: Path | None) -> Path:
    """``--store``, else ``ATELIER_STORE`` if set, else the H&M test sample store the tests build for this
    checkout's encoder (waiting while a test run is still ingesting it). Never a store picked up by size:
    one still being ingested by someone else fails reads at random."""
    if store is None and os.environ.get("ATELIER_STORE"):
        store = Path(os.environ["ATELIER_STORE"])
    if store is None:
        from filelock import FileLock

        sys.path.insert(0, str(REPO / "tests"))
        from conftest import encoder_version

        store = REPO / ".atelier" / "test-stores" / f"hm-sample-{encoder_version()}"
        with FileLock(str(store) + ".lock", timeout=900):
            pass
    if not (store / "chroma.sqlite3").exists():
        raise SystemExit(f"no store at {store}: pass --store DIR, or run tests/test_api.py once to build the "
                         "H&M sample")
    return store


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for i, (name, _, _) in enumerate(CONFIGS):
        mine = [r for r in rows if r["config"] == name]
        x = [r["shoppers"] for r in mine]
        left.plot(x, [r["turn_p95"] for r in mine], marker="o", color=f"C{i}", label=f"{name} p95")
        left.plot(x, [r["turn_p50"] for r in mine], marker=".", linestyle="--", color=f"C{i}", label=f"{name} p50")
        right.plot(x, [r["first_p95"] * 1000 for r in mine], marker="o", color=f"C{i}", label=name)
    for axis in (left, right):
        axis.set_xticks(sorted({r["shoppers"] for r in rows}))
    left.set(xlabel="shoppers", ylabel="whole turn (s)", title="Turn latency")
    right.set(xlabel="shoppers", ylabel="first event p95 (ms)", title="Time to first event", yscale="log")
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shoppers", default="1,5,10,20")
    parser.add_argument("--seconds", type=float, default=15.0, help="per level (bounded)")
    parser.add_argument("--max-turns", type=int, default=60, help="per shopper and level (bounded)")
    parser.add_argument("--store", type=Path, default=None)
    parser.add_argument("--db", default=None, help="sessions DB for all servers (default: a fresh SQLite file)")
    parser.add_argument("--plot", type=Path, default=RESULTS / "load.png")
    args = parser.parse_args(argv or [])
    levels = [int(n) for n in args.shoppers.split(",")]
    store = choose_store(args.store)
    home = Path(tempfile.mkdtemp(prefix="bench-load-"))
    db = args.db or str(home / "sessions.db")
    photos = Uploads()
    env = dict(os.environ, ATELIER_STORE=str(store), ATELIER_DB=db, ATELIER_HOME=str(home), ATELIER_LLM="none",
               ATELIER_RATE_LIMIT_PER_MINUTE="0", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    print(f"store {store}; sessions DB {db.split('@')[-1]}; load {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    rows, shared = [], None
    for name, workers, global_lock in CONFIGS:
        server = Server(env, workers, global_lock)
        try:
            server.wait()
            asyncio.run(warm_up(server.base, photos, workers))
            for n in levels:
                row = asyncio.run(level(server.base, n, args.seconds, photos, args.max_turns))
                rows.append({"config": name, **row})
                print(f"  {name}, {n} shoppers: {row['turns_per_s']:.1f} turns/s", flush=True)
            if workers > 1:
                shared = asyncio.run(one_session_from_everywhere(server.base))
        finally:
            server.stop()
    columns = {"config": "config", "shoppers": "shoppers", "turns": "turns", "turns_per_s": "turns/s",
               "first_p50": "first p50 s", "first_p95": "first p95 s", "turn_p50": "turn p50 s",
               "turn_p95": "turn p95 s", "photo_p95": "photo p95 s", "click_p95": "click p95 s",
               "errors": "errors", "lost": "lost", "duplicated": "dup", "machine_busy": "CPU busy",
               "client_cpu": "of it the client"}
    print_table(f"Load ({store.name})", list(columns.values()), [[r[k] for k in columns] for r in rows])
    for n in levels:
        by = {r["config"]: r["turns_per_s"] for r in rows if r["shoppers"] == n}
        base = by.get("1 worker, global lock")
        if base:
            print(f"{n} shoppers: throughput vs the global lock: "
                  + ", ".join(f"{name} {value / base:.2f}x" for name, value in by.items()))
    if shared:
        print(f"one session, 20 clients x 5 messages over 2 workers: {shared}")
    plot(rows, args.plot)
    print(f"plot: {args.plot}; machine load now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
