#!/usr/bin/env python3
"""The leanest correct protocol v1 worker in Python, for `npm run bench`: acks every job at once.

Reads stdin in chunks with os.read, answers all the jobs of a chunk in one os.write. Holding nothing
(a job is answered before the next chunk is read), it can take any number of jobs at once: its ready
frame announces jobrunner's own cap, JOBRUNNER_MAX_CONCURRENCY.
BENCH_LATENCY_DIR: record (now - payload.ts) per job, in ms, written to a file there on stop.
"""
import json
import os
import time

latency_dir = os.environ.get("BENCH_LATENCY_DIR")
samples = [] if latency_dir else None
loads = json.loads
dumps = json.dumps


def write_all(data):
    view = memoryview(data)
    while view:
        n = os.write(1, view)
        view = view[n:]


def main():
    cap = int(os.environ.get("JOBRUNNER_MAX_CONCURRENCY") or 1)
    write_all(b'{"type":"ready","max_concurrency":' + str(cap).encode() + b"}\n")
    rest = b""
    while True:
        chunk = os.read(0, 1 << 16)
        if not chunk:
            return
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        out = []
        stop = False
        for line in lines:
            if not line.strip():
                continue
            frame = loads(line)
            kind = frame.get("type")
            if kind == "job":
                if samples is not None:
                    payload = frame.get("payload")
                    if isinstance(payload, dict) and isinstance(payload.get("ts"), (int, float)):
                        samples.append(time.time() * 1000 - payload["ts"])
                out.append(b'{"type":"ack","id":' + dumps(frame["id"]).encode() + b"}\n")
            elif kind == "stop":
                stop = True
                break
        if out:
            write_all(b"".join(out))
        if stop:
            return


main()
if samples:
    with open(f"{latency_dir}/python-{os.getpid()}.txt", "w") as f:
        f.write("\n".join(f"{s:.3f}" for s in samples) + "\n")
