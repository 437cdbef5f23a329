#!/usr/bin/env python3
"""Where a server's CPU samples go, by phase of a request (docs/benchmarks.md, "The HTTP
path, socket to socket").

    perf record -e cpu-clock -F 499 --call-graph dwarf,32768 -p SERVER_PID -o perf.data -- sleep 5
    perf script -i perf.data -F comm,ip,sym --no-inline > perf.script
    python3 bench/perf-categories.py perf.script [CPU_US_PER_ANSWER] [PHASE]

Each sample is named by the innermost frame of its stack that matches one of PHASES (a
malloc inside the JSON parser counts as allocation), per thread name; with the server's CPU
per answer (what boxoffice-load prints), each share is also given in µs per answer. With a
PHASE name, the frames and leaves behind that phase are listed too.
"""
import collections
import re
import sys

# phase patterns, checked from the leaf up: the innermost match names the sample
PHASES = [
 ("alloc (mimalloc)", r"^_?mi_|mimalloc|__rust_alloc|__rust_dealloc|__rust_realloc"),
 ("JSON parse (serde_json, path tracking)", r"serde_json::de|serde_path_to_error|parse_json|ApiJson|HoldBody.*Deserialize|Deserialize.*HoldBody|_serde::__private::de"),
 ("JSON encode (answer)", r"serde_json::ser|hold_json|HoldJson|<axum::json::Json<T> as axum_core::response::into_response|serialize"),
 ("auth (token check)", r"auth::Auth|Principal|jsonwebtoken|constant_time|subtle"),
 ("metrics (request counter, latency histogram)", r"^metrics|metrics_exporter|metrics_util|record_request|quanta|AtomicBucket"),
 ("request id, tracing span", r"request_id|rand::|ChaCha|tracing::|tracing_core|task_local|Instrumented"),
 ("timers (request timeout, outcome wait)", r"tokio::time|tokio::runtime::time|TimerEntry|Sleep"),
 ("reply channel (oneshot)", r"tokio::sync::oneshot"),
 ("enqueue to the shard (crossbeam)", r"crossbeam|ShardHandle::try_send|client::enqueue|api::enqueue"),
 ("handler (holds::place, convert, idempotency)", r"api::holds|api::convert|idempotency|user_for|item_requests|AppState::submit|engine::"),
 ("axum routing, middleware glue", r"axum::|tower::|MatchedPath|api::cors|refuse_declared|cluster::forward|from_fn|PathRouter|matchit"),
 ("hyper: parse the request", r"hyper::proto::h1::role|httparse|parse_headers|HeaderMap|http::header"),
 ("hyper: write the answer", r"poll_write|poll_flush|write_head|encode_headers|Encoder|WriteBuf|writev|__GI___writev"),
 ("hyper: read the socket", r"poll_read_from_io|read_mem|__libc_recv|recvfrom"),
 ("tokio scheduler, park/wake", r"tokio::runtime::scheduler|epoll|park|unpark|futex|syscall$|tokio::runtime::driver|tokio::runtime::io|mio::"),
 ("hyper connection glue", r"hyper::|hyper_util::"),
]
COMPILED = [(name, re.compile(pattern)) for name, pattern in PHASES]


def samples(path):
    """(thread name, frames leaf first; kernel frames marked [k]) of each sample."""
    comm, frames = None, []
    for line in open(path):
        if not line.startswith("\t"):
            if comm is not None:
                yield comm, frames
            comm = line.split()[0] if line.strip() else None
            frames = []
            continue
        parts = line.strip().split(None, 1)
        if len(parts) == 2:
            addr, sym = parts
            frames.append(("[k]" + sym) if addr.startswith("ffffffff8") else sym)
    if comm is not None:
        yield comm, frames


def phase(frames):
    """The innermost phase of a stack, and the frame that matched it."""
    for frame in frames:
        for name, pattern in COMPILED:
            if pattern.search(frame):
                return name, frame
    return "other", None


def main():
    per_comm = collections.defaultdict(collections.Counter)
    kernel = collections.Counter()
    matched, leaves = collections.Counter(), collections.Counter()
    want = sys.argv[3] if len(sys.argv) > 3 else None
    for comm, frames in samples(sys.argv[1]):
        name, frame = phase(frames)
        per_comm[comm][name] += 1
        if frames and frames[0].startswith("[k]"):
            kernel[comm] += 1
        if name == want:
            matched[frame[:110]] += 1
            leaves[frames[0][:90]] += 1
    total = sum(sum(c.values()) for c in per_comm.values())
    cpu_us = float(sys.argv[2]) if len(sys.argv) > 2 else None
    for comm, counts in sorted(per_comm.items(), key=lambda kv: -sum(kv[1].values())):
        n = sum(counts.values())
        print(f"== {comm}: {n} samples ({100 * n / total:.1f} %), kernel leaf {100 * kernel[comm] / n:.0f} %")
        for name, k in counts.most_common():
            us = f"  {cpu_us * k / total:5.1f} µs" if cpu_us else ""
            print(f"   {100 * k / total:5.1f} % of the server{us}  {name}")
    if want:
        print("-- matched frames")
        for frame, k in matched.most_common(12):
            print(f"  {k:4d} {frame}")
        print("-- leaves")
        for leaf, k in leaves.most_common(15):
            print(f"  {k:4d} {leaf}")


if __name__ == "__main__":
    main()
