#!/usr/bin/env python3
"""Scenario S1: Arena's server CPU against the C floor (../shared/peers/floor), interleaved.

The floor is a bare C WebSocket server with S1's message pattern and no game in it (30 inputs and
30 snapshots per client-second, polled per 60 Hz tick), driven by its C load generator; it prints
its own CPU per client-second over its run after a 3 s warm-up. Each Arena server given here is
driven by Arena's load generator and measured from outside like s1-compare.py does: CPU from
/proc/PID/stat (all threads) over a fixed window after all N clients connected, bytes from the
kernel's socket counters. Runs alternate (rep by rep, the order rotating), and the table gives
medians and each Arena's ratio to the floor of the same sitting.

Usage (from the project's root, release binaries built):
  python3 benches/s1-floor.py --n 400 --reps 3 \
      --arena new='target/release/arena-server --scenario s1 --no-lan --bind 127.0.0.1:{port}'
Several --arena LABEL=COMMAND compare builds (an older binary, another flag) in the same sitting.
--snap sets the floor's message size (default: Arena's measured bytes per client-second / 30 of
the first Arena run at that N; 1650 before any). Loopback only; every step bounded in time.
"""
import argparse, importlib.util, json, os, re, shlex, socket, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.path.join(HERE, "..", "..", "shared", "peers")
FLOOR_SRC = os.path.join(PEERS, "floor")


def _peer_harness():
    """The measuring helpers of ../shared/peers/s1-compare.py (same CPU, RSS and byte counters)."""
    spec = importlib.util.spec_from_file_location("s1_compare", os.path.join(PEERS, "s1-compare.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_harness = _peer_harness()
free_port, cpu_s, rss_mb, sockets = _harness.free_port, _harness.cpu_s, _harness.rss_mb, _harness.sockets


def wait_listen(port, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close(); return True
        except OSError:
            time.sleep(0.1)
    return False


def build_floor(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    cfloor, wsclient = os.path.join(out_dir, "cfloor"), os.path.join(out_dir, "wsclient")
    if not os.path.exists(cfloor):
        subprocess.run(["gcc", "-O2", "-o", cfloor, os.path.join(FLOOR_SRC, "cfloor.c"), "-luring"], check=True)
    if not os.path.exists(wsclient):
        subprocess.run(["gcc", "-O2", "-o", wsclient, os.path.join(FLOOR_SRC, "wsclient.c")], check=True)
    return cfloor, wsclient


def run_floor(bins, n, snap, mode, window):
    cfloor, wsclient = bins
    port = free_port()
    secs = 3 + window
    srv = subprocess.Popen([cfloor, str(port), str(n), mode, str(snap), str(secs)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rec = {"system": f"floor-{mode}", "n": n, "snap": snap}
    try:
        # Not probed: the floor takes any connection for one of its N clients.
        time.sleep(0.5)
        # The floor accepts its N clients before it starts its clock; wsclient outlives it.
        cl = subprocess.Popen([wsclient, str(port), str(n), "30", str(secs + 5)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out, _ = srv.communicate(timeout=secs + 60)
        cl.kill(); cl.wait()
        m = re.search(r"([0-9.]+) ms CPU per client-second", out)
        if not m:
            rec["error"] = f"no figure in {out!r}"; return rec
        rec["cpu_ms_per_client_s"] = float(m.group(1))
        rec["detail"] = out.strip()
    finally:
        if srv.poll() is None:
            srv.kill(); srv.wait()
    return rec


def run_arena(label, command, loadgen, n, warmup, window, cwd):
    port = free_port()
    secs = warmup + window + 8  # joins + warm-up + window + margin
    srv = subprocess.Popen(shlex.split(command.format(port=port)), cwd=cwd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rec = {"system": label, "n": n}
    try:
        if not wait_listen(port):
            rec["error"] = "server did not listen"; return rec
        lg = subprocess.Popen(shlex.split(loadgen.format(port=port, n=n, secs=secs)), cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        end = time.time() + 90
        while time.time() < end and sockets(port)[0] < n and lg.poll() is None:
            time.sleep(0.25)
        rec["connected"] = sockets(port)[0]
        if rec["connected"] < n:
            rec["error"] = f"only {rec['connected']} of {n} connected"
        time.sleep(warmup)
        c0, (k0, b0), t0, l0 = cpu_s(srv.pid), sockets(port), time.time(), cpu_s(lg.pid)
        time.sleep(window)
        c1, (k1, b1), t1, l1 = cpu_s(srv.pid), sockets(port), time.time(), cpu_s(lg.pid)
        w = t1 - t0
        rec.update(window_s=round(w, 2), server_cores=round((c1 - c0) / w, 3),
                   cpu_ms_per_client_s=round(1000 * (c1 - c0) / (n * w), 4),
                   wire_bytes_per_client_s=round((b1 - b0) / w / n, 1),
                   loadgen_cores=round((l1 - l0) / w, 3),
                   rss_mb=round(rss_mb(srv.pid), 1), sockets_start=k0, sockets_end=k1)
        try:
            out, _ = lg.communicate(timeout=secs + 60)
            summary = [line for line in out.splitlines() if line.startswith("{")]
            if summary:
                rec["loadgen"] = json.loads(summary[-1])
        except subprocess.TimeoutExpired:
            lg.kill()
        rec["loadgen_exit"] = lg.returncode
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            srv.kill()
    return rec


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[400])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=3)
    ap.add_argument("--window", type=float, default=15)
    ap.add_argument("--arena", action="append", default=[], help="LABEL=COMMAND ({port} is filled in)")
    ap.add_argument("--loadgen", default="target/release/loadgen --url ws://127.0.0.1:{port}/ws --clients {n} "
                                         "--warmup 3 --window {secs} --json")
    ap.add_argument("--floor-mode", default="tick", help="cfloor mode: tick (recv every 60 Hz tick) or tick30")
    ap.add_argument("--snap", type=int, default=0)
    ap.add_argument("--floor-bin", default="target/floor")
    a = ap.parse_args()
    if not a.arena:
        a.arena = ["arena=target/release/arena-server --scenario s1 --no-lan --bind 127.0.0.1:{port}"]
    arenas = [tuple(spec.split("=", 1)) for spec in a.arena]
    bins = build_floor(a.floor_bin)
    runs, snap_for = [], {}
    for rep in range(a.reps):
        for n in a.n:
            systems = [label for label, _ in arenas] + ["floor"]
            k = rep % len(systems)
            for system in systems[k:] + systems[:k]:
                if system == "floor":
                    snap = a.snap or snap_for.get(n, 1650)
                    r = run_floor(bins, n, snap, a.floor_mode, a.window)
                else:
                    command = dict(arenas)[system]
                    r = run_arena(system, command, a.loadgen, n, a.warmup, a.window, os.getcwd())
                    if "wire_bytes_per_client_s" in r and n not in snap_for:
                        snap_for[n] = max(64, int(r["wire_bytes_per_client_s"] / 30) - 4)
                r["rep"] = rep
                print(json.dumps(r), flush=True)
                runs.append(r)
    print("\n| N | system | CPU ms/client-s | × floor | server cores | wire B/s/client | loadgen cores | RSS MB | tick p99 ms |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n in a.n:
        floor_runs = [r for r in runs if r["n"] == n and r["system"].startswith("floor") and "error" not in r]
        floor = statistics.median(r["cpu_ms_per_client_s"] for r in floor_runs) if floor_runs else None
        if floor:
            print(f"| {n} | floor ({a.floor_mode}) | {floor:.3f} | 1.00 | | | | | |")
        for label, _ in arenas:
            rs = [r for r in runs if r["n"] == n and r["system"] == label and "error" not in r]
            if not rs:
                print(f"| {n} | {label} | failed | | | | | | |"); continue
            med = lambda k: statistics.median(r[k] for r in rs)
            cpu = med("cpu_ms_per_client_s")
            ratio = f"{cpu / floor:.2f}" if floor else "-"
            ticks = [r["loadgen"]["tick_ms_p99"] for r in rs if isinstance(r.get("loadgen", {}).get("tick_ms_p99"), (int, float))]
            tick = f"{statistics.median(ticks):.2f}" if ticks else "-"
            print(f"| {n} | {label} | {cpu:.3f} | {ratio} | {med('server_cores'):.3f} | "
                  f"{med('wire_bytes_per_client_s'):.0f} | {med('loadgen_cores'):.3f} | {med('rss_mb'):.0f} | {tick} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
