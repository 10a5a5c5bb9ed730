#!/usr/bin/env python3
"""jobrunner reference worker (protocol v1) in Python 3, standard library only.

Run it through jobrunner:  server: { command: "python3 examples/python/worker.py" }
By hand:  echo '{"type":"job","id":"1","job":"SendEmail","pipeline":"emails","payload":{"to":"a@b.c"}}' | python3 examples/python/worker.py
Frames arrive on stdin, one JSON object per line; replies go to stdout; stderr is the log.
Payload conventions of the examples: {"fail":"reason"} nacks, {"delay_retry":N} asks for one retry after N seconds,
{"follow_up":{"job":"X","payload":{...}}} publishes a follow-up job to the same pipeline, anything else acks.
"""
import json
import os
import sys


def send(frame):
    sys.stdout.write(json.dumps(frame, separators=(",", ":")) + "\n")
    sys.stdout.flush()  # jobrunner waits for the reply: never leave it in a buffer


def log(text):
    print(text, file=sys.stderr, flush=True)


log(f"worker ready: pipeline {os.environ.get('JOBRUNNER_PIPELINE', '?')}, "
    f"max_concurrency {os.environ.get('JOBRUNNER_MAX_CONCURRENCY', '1')}")

# One job at a time: say so, and jobrunner sends the next job only once this one is answered.
send({"type": "ready", "max_concurrency": 1})
for line in sys.stdin:
    if not line.strip():
        continue
    frame = json.loads(line)
    if frame["type"] == "stop":
        break  # nothing is held between lines, so stopping is just leaving
    if frame["type"] != "job":
        continue  # ignore frame types a later protocol may add
    id_, job, payload = frame["id"], frame["job"], frame.get("payload")
    p = payload if isinstance(payload, dict) else {}
    if "fail" in p:
        log(f"failed {job} {id_}: {p['fail']}")
        send({"type": "nack", "id": id_, "error": str(p["fail"])})
    elif "delay_retry" in p and frame.get("attempt", 1) <= 1:
        log(f"retrying {job} {id_} in {p['delay_retry']}s")
        send({"type": "nack", "id": id_, "error": "retry requested", "requeue": True, "delay": p["delay_retry"]})
    else:
        if p.get("follow_up"):
            fu = p["follow_up"]
            send({"type": "publish", "id": id_, "pipeline": frame["pipeline"],
                  "job": fu.get("job", "FollowUp"), "payload": fu.get("payload", {})})
        log(f"processed {job} {id_} {json.dumps(payload, separators=(',', ':'))}")
        send({"type": "ack", "id": id_})
sys.exit(0)
