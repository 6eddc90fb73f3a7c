"""District ingest (#15): a simulated fleet of real gates -> Mosquitto -> central, and a storm.

For each `--gates` N: N simulated gates (menjin/sim_fleet.py: real GateCache + real MqttBridge,
in `--processes` worker processes) connect to a private Mosquitto; one `menjin central serve`
(PostgreSQL with --pg, else SQLite) has them registered. Every gate journals `--events` entries
at once; the clock runs from the first write until every entry is acked by central (which acks
only after its commit), giving events/s stored durably and acked.

Raw baseline, in the same run: a plain paho publisher sends the same number of QoS 1 messages
(one sample event each) through the same broker to a plain subscriber.

Reconnect storm: with the N gates connected, the broker is SIGKILLed and started again empty;
each gate journals one more entry; the clock runs until every gate is connected and drained.
Central's RSS is sampled throughout (VmRSS now, VmHWM peak).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import tomllib
from pathlib import Path

from _stack import (
    Mosquitto,
    central_config,
    central_proc,
    cpu_seconds,
    database,
    print_load,
    print_machine,
    raw_drain,
    wait_http,
)

from menjin.sim_fleet import Fleet, FleetSpec
from menjin.sim_provision import register_gates
from protocol.keyfiles import SIGNING_FILE, init_key_dir


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def run_fleet(spec: FleetSpec, central_pid: int, broker: Mosquitto, timeout: float) -> None:
    fleet = Fleet(spec)
    t_start = time.monotonic()
    fleet.start(send=False)
    try:
        fleet.wait("connected", timeout)
        took = time.monotonic() - t_start
        totals = fleet.poll(1.5)  # every worker's process figures
        print(f"  {spec.gates} gates connected in {took:.1f} s (from process start) in "
              f"{totals['processes']} processes, at most {totals['threads_max']} threads and "
              f"{totals['rss_mib_max']} MiB RSS each; central RSS "
              f"{rss_kib(central_pid) // 1024} MiB")  # fmt: skip
        workers = list(fleet.view.processes)
        t0, cpu0 = time.monotonic(), cpu_seconds(central_pid)
        fleet_cpu0 = sum(cpu_seconds(pid) for pid in workers)
        fleet.send(spec.events)
        totals = fleet.wait("drained", timeout)
        took = time.monotonic() - t0
        total = spec.gates * spec.events
        cpu = cpu_seconds(central_pid) - cpu0  # what bounds it: central's CPU or the box
        fleet_cpu = sum(cpu_seconds(pid) for pid in workers) - fleet_cpu0
        print(f"  ingest: {total} events stored+acked in {took:.1f} s = {total / took:.0f} ev/s; "
              f"ack p50 {totals['ack_p50_s']} s, p99 {totals['ack_p99_s']} s")  # fmt: skip
        print(f"  central CPU {cpu:.1f} s = {cpu / took:.0%} of one core, "
              f"{cpu / total * 1e6:.0f} µs/event; the fleet's CPU {fleet_cpu:.1f} s "
              f"({fleet_cpu / total * 1e6:.0f} µs/event)")  # fmt: skip
        storm(fleet, broker, central_pid, timeout)
    finally:
        fleet.stop()


def storm(fleet: Fleet, broker: Mosquitto, central_pid: int, timeout: float) -> None:
    before = rss_kib(central_pid)
    broker.kill()
    time.sleep(1.0)
    broker.start()
    t0 = time.monotonic()
    fleet.send(1)
    peak = before
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        totals = fleet.poll(0.5)
        peak = max(peak, rss_kib(central_pid))
        if fleet.holds("drained", totals):
            break
    took = time.monotonic() - t0
    print(f"  storm: broker restarted empty; all {totals['connected']} gates online and drained "
          f"in {took:.1f} s (goal < 60 s); connects {totals['connects']}; central RSS "
          f"{before // 1024} -> peak {peak // 1024} MiB (VmHWM "
          f"{rss_kib(central_pid, 'VmHWM') // 1024} MiB)")  # fmt: skip


def print_rejects(log: Path) -> None:
    """Central logs its rejects (a shed message is resent by its gate after resend_after_s)."""
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if "rejected message" in ln]
    if lines:
        print(f"  central rejected messages ({len(lines)} log lines, one per reason per period); "
              f"last: {lines[-1][-160:]}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gates", type=int, nargs="+", default=[1000, 2000])
    ap.add_argument("--events", type=int, default=5, help="entries per gate")
    ap.add_argument("--processes", type=int, default=2, help="fleet worker processes")
    ap.add_argument("--pg", action="store_true", help="central on PostgreSQL")
    ap.add_argument("--timeout", type=float, default=600)
    args = ap.parse_args()
    print_machine(sys.argv, vars(args))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        broker = Mosquitto(work)
        broker.start()
        try:
            with database(work, args.pg) as db_url:
                for n in args.gates:
                    bench_one(work, broker, db_url, n, args)
        finally:
            broker.stop()
    print_load("at end")


def bench_one(work: Path, broker: Mosquitto, db_url: str, n: int, args: argparse.Namespace) -> None:
    print(f"--- {n} gates x {args.events} entries, {args.processes} processes")
    spec = FleetSpec(workdir=work / f"fleet-{n}", urls=[broker.url], password_seed="bench",
                     gates=n, events=args.events, rate=1000.0, site=f"b{n}",
                     processes=args.processes, resend_after_s=10.0)  # fmt: skip
    register_gates(spec, db_url)
    if not (work / "keys" / SIGNING_FILE).exists():
        init_key_dir(work / "keys")
    config = central_config(work, db_url, broker.url)
    central = central_proc(config).start()
    try:
        wait_http(int(tomllib.loads(config.read_text())["http"]["port"]), timeout=60)
        assert central.proc is not None
        run_fleet(spec, central.proc.pid, broker, args.timeout)
    finally:
        central.stop()
        print_rejects(central.log)
    raw_s = raw_drain(broker, n * args.events)
    print(f"  raw paho QoS 1, same broker: {n * args.events} messages in {raw_s:.1f} s = "
          f"{n * args.events / raw_s:.0f} msg/s")  # fmt: skip


if __name__ == "__main__":
    main()
