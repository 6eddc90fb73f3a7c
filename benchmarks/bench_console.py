"""The console under load, each figure beside its raw baseline measured in the same run.

  1. live view first render (GET /) and 2. events-page search (GET /events?...), with N events
     in PostgreSQL, beside the raw SQL of the same queries run directly;
  3. gate journal -> row painted in Chromium (a MutationObserver stamps each row), beside a
     raw SSE client reading the same stream in the same run;
  4. API p95 (GET /api/v1/events) while 100 events/s arrive: no consoles vs 50 open streams.

Run: .venv/bin/python benchmarks/bench_console.py [--events 5000000] [--samples 50]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._stack import percentile, print_load, print_machine  # noqa: E402
from central.store import presence  # noqa: E402
from central.store.tables import alerts, events, gates  # noqa: E402
from tests.integration.console.conftest import CHROMIUM, CHROMIUM_ARGS, VIEWPORT  # noqa: E402
from tests.integration.console.stack import GATE, PASSWORD, SITE, ConsoleStack  # noqa: E402
from tests.integration.services import Mosquitto, pg_schema  # noqa: E402

SEARCHES = [
    {"gate": f"{SITE}/{GATE}", "result": "denied"},
    {"reason": "expired"},
    {"gate": f"{SITE}/west", "type": "decision", "result": "granted"},
    {"pass_id": "00000000000abcde"},
]


def fill(url: str, count: int) -> None:
    """`count` decisions over three gates and a year, generated inside PostgreSQL."""
    engine = create_engine(url)
    with engine.begin() as conn:
        for gate in ("north", "west", "bench"):
            presence.register_gate(conn, SITE, gate, datetime.now(UTC))
        conn.execute(text(
            "INSERT INTO events (site, gate, epoch, seq, type, at, at_offset_min, received_at,"
            " granted, reason, pass_id, temperature_c, details)"
            " SELECT :site, (ARRAY['north','west','bench'])[1 + i % 3], 1, i, 'decision',"
            " now() - make_interval(secs => (:n - i) * 6), 480,"
            " now() - make_interval(secs => (:n - i) * 6),"
            " i % 10 <> 0, CASE WHEN i % 10 = 0 THEN 'expired' ELSE 'ok' END,"
            " lpad(to_hex(i % 50000), 16, '0'), 36.5, '{\"holder_kind\": \"resident\"}'::json"
            " FROM generate_series(1, :n) AS i"
        ), {"site": SITE, "n": count})  # fmt: skip
        conn.execute(text("ANALYZE events"))
    engine.dispose()


def timed(samples: int, call: Callable[[int], object]) -> list[float]:
    out = []
    for i in range(samples):
        started = time.perf_counter()
        call(i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def line(label: str, ms: list[float], raw: list[float]) -> str:
    p50, p95, r95 = percentile(ms, 0.5), percentile(ms, 0.95), percentile(raw, 0.95)
    return (f"{label:<34} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   raw SQL p95 {r95:6.1f} ms"
            f"  ({p95 / max(r95, 0.01):.1f}x)")  # fmt: skip


def raw_live_view(engine: Engine) -> None:
    with engine.connect() as conn:
        rows = conn.execute(select(gates).order_by(gates.c.site, gates.c.gate)).all()
        for g in rows:
            conn.execute(select(events).where(events.c.site == g.site, events.c.gate == g.gate)
                         .order_by(events.c.id.desc()).limit(1)).all()  # fmt: skip
        conn.execute(select(alerts).where(alerts.c.state == "open").limit(500)).all()
        conn.execute(select(events).order_by(events.c.id.desc()).limit(50)).all()


def raw_search(engine: Engine, flt: dict[str, str]) -> None:
    query = select(events).order_by(events.c.id.desc()).limit(50)
    if "gate" in flt:
        site, gate = flt["gate"].split("/")
        query = query.where(events.c.site == site, events.c.gate == gate)
    for key, column in (("type", events.c.type), ("reason", events.c.reason),
                        ("pass_id", events.c.pass_id)):  # fmt: skip
        if key in flt:
            query = query.where(column == flt[key])
    if "result" in flt:
        query = query.where(events.c.granted.is_(flt["result"] == "granted"))
    with engine.connect() as conn:
        conn.execute(query).all()


def console_client(stack: ConsoleStack) -> httpx.Client:
    client = httpx.Client(base_url=stack.url, timeout=60)
    page = client.get("/login").text
    csrf = page.split('name="csrf" value="')[1].split('"')[0]
    client.post("/login", data={"username": "guard", "password": PASSWORD, "csrf": csrf})
    return client


def render_and_search(stack: ConsoleStack, samples: int) -> None:
    client, engine = console_client(stack), create_engine(stack.db_url)
    client.get("/")  # warm up
    first = timed(samples, lambda i: client.get("/").raise_for_status())
    raw = timed(samples, lambda i: raw_live_view(engine))
    print(line("live view GET / (first render)", first, raw))
    search = timed(samples, lambda i: client.get("/events", params=SEARCHES[i % len(SEARCHES)]))
    raw = timed(samples, lambda i: raw_search(engine, SEARCHES[i % len(SEARCHES)]))
    print(line("events page search", search, raw))
    engine.dispose()


class RawStream(threading.Thread):
    """A plain SSE reader: when each event (by display_name stamp) arrived, in wall ms."""

    def __init__(self, url: str, token: str) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.arrived = url, token, {}
        self.stop = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.stream("GET", self.url, headers=headers, timeout=None) as r:
            for line in r.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("data: "):
                    name = json.loads(line[6:]).get("details", {}).get("display_name", "")
                    if name.startswith("t"):
                        self.arrived[name] = time.time() * 1000


PAINT_OBSERVER = """() => {
  window.painted = {};
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('#feed [data-field=name]')) {
      const name = el.textContent;
      if (name.startsWith('t') && !(name in window.painted)) window.painted[name] = Date.now();
    }
  }).observe(document.getElementById('feed'), {childList: true, subtree: true});
}"""


def paint_latency(stack: ConsoleStack, count: int) -> None:
    from playwright.sync_api import sync_playwright

    raw = RawStream(f"{stack.url}/api/v1/events/stream", stack.token("guard"))
    raw.start()
    written: dict[str, float] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.goto(f"{stack.url}/login")
        page.fill("input[name=username]", "guard")
        page.fill("input[name=password]", PASSWORD)
        page.click("[data-testid=login-submit]")
        page.wait_for_selector("[data-testid=stream-state][data-state=live]")
        page.evaluate(PAINT_OBSERVER)
        for i in range(count):
            name = f"t{i:05d}"
            written[name] = time.time() * 1000
            stack.journal(details={"holder_kind": "resident", "display_name": name, "flags": []})
            time.sleep(0.05)
        time.sleep(3)
        painted: dict[str, float] = page.evaluate("window.painted")
        browser.close()
    raw.stop.set()
    lat = [painted[n] - written[n] for n in written if n in painted]
    base = [raw.arrived[n] - written[n] for n in written if n in raw.arrived]
    print(f"journal -> row painted ({len(lat)}/{count})  p50 {percentile(lat, 0.5):6.0f} ms"
          f"  p99 {percentile(lat, 0.99):6.0f} ms   raw SSE client p99"
          f" {percentile(base, 0.99):6.0f} ms")  # fmt: skip


def _consoles(url: str, token: str, count: int, stop: MpEvent) -> None:
    """`count` open live streams, in their own process so they do not slow the measuring one."""
    streams = [RawStream(url, token) for _ in range(count)]
    for stream in streams:
        stream.start()
    stop.wait()


def api_under_consoles(stack: ConsoleStack, samples: int, consoles: int) -> None:
    token = stack.token("guard")
    headers = {"Authorization": f"Bearer {token}"}
    results = {}
    for n in (0, consoles):
        stop_readers = mp.Event()
        args = (f"{stack.url}/api/v1/events/stream", token, n, stop_readers)
        readers = mp.Process(target=_consoles, args=args, daemon=True)
        readers.start()
        stop = threading.Event()
        writer = threading.Thread(target=_write_at, args=(stack, 100, stop), daemon=True)
        writer.start()
        time.sleep(2)
        with httpx.Client(base_url=stack.url, headers=headers, timeout=60) as client:
            results[n] = timed(samples, lambda i: client.get("/api/v1/events?limit=50"))
        stop.set()
        stop_readers.set()
        readers.join(10)
    base, loaded = percentile(results[0], 0.95), percentile(results[consoles], 0.95)
    print(
        f"GET /api/v1/events at 100 events/s   p95 {loaded:6.1f} ms with {consoles} open"
        f" streams, {base:6.1f} ms with none  ({loaded / base:.2f}x)"
    )


def _write_at(stack: ConsoleStack, per_s: int, stop: threading.Event) -> None:
    while not stop.is_set():
        started = time.monotonic()
        stack.journal(per_s // 10)
        stop.wait(max(0.0, 0.1 - (time.monotonic() - started)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--paint", type=int, default=100, help="events for the paint latency")
    parser.add_argument("--consoles", type=int, default=50)
    args = parser.parse_args()
    print_machine(sys.argv, vars(args))
    workdir = Path(tempfile.mkdtemp(prefix="bench-console-"))
    broker = Mosquitto(workdir)
    broker.start()
    try:
        with pg_schema() as url:
            run(args, workdir, broker, url)
    finally:
        broker.stop()


def run(args: argparse.Namespace, workdir: Path, broker: Mosquitto, url: str) -> None:
    stack = ConsoleStack(workdir, broker)
    stack.db_url = url
    started = time.monotonic()
    stack.setup(fill=lambda: fill(url, args.events))
    print(f"filled {args.events} events in {time.monotonic() - started:.0f} s")
    print_load("after filling")
    try:
        render_and_search(stack, args.samples)
        paint_latency(stack, args.paint)
        api_under_consoles(stack, args.samples, args.consoles)
    finally:
        stack.close()
    print_load("at end")


if __name__ == "__main__":
    main()
