#!/usr/bin/env python3
"""Runs one `boxoffice-load --spawn ... --json FILE` command and watches what else happened
during it, to tell where a stall of the answers came from.

    python3 bench/stall-probe.py --out DIR -- target/release/boxoffice-load --spawn \
        target/release/boxoffice --shards 1 -c 64 -r 15863 -d 20s --live-holds 4000000 -q

Every 100 ms, while the command runs, it samples (all from /proc, nothing in the server):
  - each server thread's CPU time and run-queue delay (/proc/PID/task/*/schedstat: the time
    the thread was runnable but not running), summed by thread name;
  - the machine's steal and I/O-wait time (/proc/stat) and pressure stall (/proc/pressure);
  - the server's `boxoffice_wal_fsync_seconds` histogram (its /metrics, on the port the
    server listens on, found in /proc/net/tcp), so a slow log sync shows as itself;
and a probe thread writes 4 KiB and fdatasyncs it every 20 ms in the server's temp directory's
file system (the device the log is on), timing each.

Then it joins them with the load generator's quarter-second timeline (`timeline_p99_ms`,
`measure_start_unix_ms` of `--json`) and prints, for each quarter second, the answers' p99
next to the worst probe sync, the log's syncs, the run-queue delay of the HTTP workers and of
the shard, the CPU of the server and of the load generator, idle and steal time, and I/O
pressure. Everything is also written to DIR (samples.jsonl,
probe.jsonl, load.json, joined.tsv). Bounded: the command's own duration, plus 600 s at most.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request

SAMPLE_S = 0.1
PROBE_EVERY_S = 0.02
LIMIT_S = 600
HZ = os.sysconf("SC_CLK_TCK")


def now_ms():
    return time.time() * 1000.0


def children(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(d))
        except OSError:
            continue
    return out


def comm_of(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def group(name):
    """Thread names, folded: tokio workers, the shard, the log, the follower, the writer."""
    name = re.sub(r"[-_ ]?\d+$", "", name)
    return name or "?"


def threads(pid):
    """{group: [cpu_ns, run_delay_ns]} for every thread of pid."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns, delay_ns, _ = (int(x) for x in f.read().split())
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                name = group(f.read().strip())
        except (OSError, ValueError):
            continue
        acc = out.setdefault(name, [0, 0])
        acc[0] += run_ns
        acc[1] += delay_ns
    return out


def machine():
    with open("/proc/stat") as f:
        cpu = [int(x) for x in f.readline().split()[1:]]
    out = {"idle_ms": cpu[3] * 1000 / HZ, "iowait_ms": cpu[4] * 1000 / HZ,
           "steal_ms": cpu[7] * 1000 / HZ}
    for kind in ("io", "cpu"):
        try:
            with open(f"/proc/pressure/{kind}") as f:
                for line in f:
                    parts = line.split()
                    total = int(parts[-1].split("=")[1])
                    out[f"psi_{kind}_{parts[0]}_us"] = total
        except OSError:
            pass
    return out


def process_cpu_ms(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000 / HZ
    except (OSError, ValueError, IndexError):
        return 0.0


def listening_port(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        return None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            if parts[3] == "0A" and parts[9] in inodes:
                return int(parts[1].split(":")[1], 16)
    return None


FSYNC = re.compile(r'^boxoffice_wal_fsync_seconds_(bucket|sum|count)\{([^}]*)\} (\S+)$')


def fsync_histogram(port):
    """{"le=..": cumulative count, "sum": s, "count": n} summed over shards."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=0.5) as r:
            text = r.read().decode()
    except Exception:
        return None
    out = {}
    for line in text.splitlines():
        m = FSYNC.match(line)
        if not m:
            continue
        kind, labels, value = m.groups()
        if kind == "bucket":
            le = re.search(r'le="([^"]+)"', labels).group(1)
            key = f"le={le}"
        else:
            key = kind
        out[key] = out.get(key, 0.0) + float(value)
    return out


def probe(dirname, stop, out):
    path = os.path.join(dirname, f"stall-probe-{os.getpid()}.bin")
    block = os.urandom(4096)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        offset = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            os.pwrite(fd, block, offset)
            os.fdatasync(fd)
            took = (time.perf_counter() - t0) * 1000.0
            out.write(json.dumps({"at_ms": now_ms(), "sync_ms": took}) + "\n")
            offset = (offset + 4096) % (1 << 20)
            time.sleep(PROBE_EVERY_S)
    finally:
        os.close(fd)
        os.unlink(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--probe-dir", default="/tmp")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    os.makedirs(args.out, exist_ok=True)
    load_json = os.path.join(args.out, "load.json")
    cmd = cmd + ["--json", load_json]

    stop = threading.Event()
    probe_file = open(os.path.join(args.out, "probe.jsonl"), "w")
    t = threading.Thread(target=probe, args=(args.probe_dir, stop, probe_file), daemon=True)
    t.start()
    load = subprocess.Popen(cmd)
    started = time.monotonic()
    server, port = None, None
    with open(os.path.join(args.out, "samples.jsonl"), "w") as samples:
        while load.poll() is None and time.monotonic() - started < LIMIT_S:
            if server is None:
                kids = [p for p in children(load.pid) if comm_of(p).startswith("boxoffice")]
                server = kids[0] if kids else None
            if server is not None and port is None:
                port = listening_port(server)
            row = {"at_ms": now_ms(), "load_cpu_ms": process_cpu_ms(load.pid), **machine()}
            if server is not None:
                row["threads"] = threads(server)
            if port is not None:
                row["fsync"] = fsync_histogram(port)
            samples.write(json.dumps(row) + "\n")
            time.sleep(SAMPLE_S)
    if load.poll() is None:
        load.terminate()  # our own child, by its PID
    rc = load.wait()
    stop.set()
    t.join()
    probe_file.close()
    if rc != 0 or not os.path.exists(load_json):
        print(f"the load command failed (rc {rc})", file=sys.stderr)
        return rc or 1
    join(args.out)
    return 0


def join(outdir):
    with open(os.path.join(outdir, "load.json")) as f:
        rep = json.load(f)["boxoffice"]
    start, width = rep["measure_start_unix_ms"], rep["bucket_s"] * 1000.0
    p99s, maxes = rep["timeline_p99_ms"], rep["timeline_max_ms"]
    samples = [json.loads(l) for l in open(os.path.join(outdir, "samples.jsonl"))]
    probes = [json.loads(l) for l in open(os.path.join(outdir, "probe.jsonl"))]

    def at(ts):
        """The last sample at or before ts."""
        best = None
        for s in samples:
            if s["at_ms"] <= ts:
                best = s
            else:
                break
        return best

    def delta(a, b, key):
        return (b.get(key, 0) - a.get(key, 0)) if a and b else 0

    def thread_delta(a, b, name_pred, idx):
        if not a or not b or "threads" not in a or "threads" not in b:
            return 0.0
        tot = 0
        for name, v in b["threads"].items():
            if name_pred(name):
                tot += v[idx] - a["threads"].get(name, [0, 0])[idx]
        return tot / 1e6

    def fsync_over(a, b, le):
        if not a or not b or not a.get("fsync") or not b.get("fsync"):
            return None, None
        fa, fb = a["fsync"], b["fsync"]
        n = fb.get("count", 0) - fa.get("count", 0)
        under = fb.get(f"le={le}", 0) - fa.get(f"le={le}", 0)
        return int(n), int(n - under)

    rows = []
    les = sorted({k[3:] for s in samples if s.get("fsync") for k in s["fsync"] if k.startswith("le=")},
                 key=lambda x: float("inf") if x == "+Inf" else float(x))
    slow_le = next((le for le in les if le != "+Inf" and float(le) >= 0.05), les[-1] if les else None)
    header = ["t_s", "p99_ms", "max_ms", "probe_sync_max_ms", "wal_syncs",
              f"wal_syncs_over_{slow_le}s", "workers_runq_ms", "shard_runq_ms", "all_runq_ms",
              "server_cpu_ms", "load_cpu_ms", "idle_ms", "steal_ms", "iowait_ms", "psi_io_full_ms", "psi_cpu_some_ms"]
    for i, (p99, mx) in enumerate(zip(p99s, maxes)):
        lo, hi = start + i * width, start + (i + 1) * width
        a, b = at(lo), at(hi)
        pr = [p["sync_ms"] for p in probes if lo <= p["at_ms"] < hi]
        n, slow = fsync_over(a, b, slow_le) if slow_le else (None, None)
        rows.append([
            f"{i * width / 1000:.2f}", f"{p99:.1f}", f"{mx:.1f}",
            f"{max(pr):.1f}" if pr else "",
            "" if n is None else str(n), "" if slow is None else str(slow),
            f"{thread_delta(a, b, lambda x: 'tokio' in x or 'worker' in x, 1):.1f}",
            f"{thread_delta(a, b, lambda x: x.startswith('shard'), 1):.1f}",
            f"{thread_delta(a, b, lambda x: True, 1):.1f}",
            f"{thread_delta(a, b, lambda x: True, 0):.1f}",
            f"{delta(a, b, 'load_cpu_ms'):.0f}", f"{delta(a, b, 'idle_ms'):.0f}",
            f"{delta(a, b, 'steal_ms'):.0f}", f"{delta(a, b, 'iowait_ms'):.0f}",
            f"{delta(a, b, 'psi_io_full_us') / 1000:.1f}",
            f"{delta(a, b, 'psi_cpu_some_us') / 1000:.1f}",
        ])
    with open(os.path.join(outdir, "joined.tsv"), "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    names = sorted({n for s in samples for n in s.get("threads", {})})
    print("server threads seen:", ", ".join(names))
    print("\t".join(header))
    p99_all = sorted(float(r[1]) for r in rows)
    cut = p99_all[int(len(p99_all) * 0.9)] if p99_all else 0
    for r in rows:
        mark = " <" if float(r[1]) >= cut else ""
        print("\t".join(r) + mark)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--join":
        join(sys.argv[2])
    else:
        sys.exit(main())
