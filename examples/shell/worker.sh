#!/usr/bin/env bash
# jobrunner reference worker (protocol v1) in bash + jq.
# Run it through jobrunner:  server: { command: "bash examples/shell/worker.sh" }
# By hand:  echo '{"type":"job","id":"1","job":"SendEmail","pipeline":"emails","payload":{"to":"a@b.c"}}' | bash examples/shell/worker.sh
# Frames arrive on stdin, one JSON object per line; replies go to stdout; stderr is the log.
# Payload conventions of the examples: {"fail":"reason"} nacks, {"delay_retry":N} asks for one retry after N seconds,
# {"follow_up":{"job":"X","payload":{...}}} publishes a follow-up job to the same pipeline, anything else acks.
set -euo pipefail
echo "worker ready: pipeline ${JOBRUNNER_PIPELINE:-?}, max_concurrency ${JOBRUNNER_MAX_CONCURRENCY:-1}" >&2

# One job at a time: say so, and jobrunner sends the next job only once this one is answered.
echo '{"type":"ready","max_concurrency":1}'
while IFS= read -r line; do
  [[ -z "${line// /}" ]] && continue
  type=$(jq -r '.type' <<<"$line")
  [[ $type == stop ]] && break   # nothing is held between lines, so stopping is just leaving
  [[ $type == job ]] || continue # ignore frame types a later protocol may add
  # jq answers with tagged lines: "out <frame>" goes to stdout (jobrunner), "log <text>" to stderr (the log).
  jq -r '
    .id as $id | .job as $job | (if (.payload | type) == "object" then .payload else {} end) as $p
    | if $p | has("fail") then
        "log failed \($job) \($id): \($p.fail)",
        {type: "nack", id: $id, error: ($p.fail | tostring)}
      elif ($p | has("delay_retry")) and ((.attempt // 1) <= 1) then
        "log retrying \($job) \($id) in \($p.delay_retry)s",
        {type: "nack", id: $id, error: "retry requested", requeue: true, delay: $p.delay_retry}
      else
        (if $p.follow_up then {type: "publish", id: $id, pipeline: .pipeline,
          job: ($p.follow_up.job // "FollowUp"), payload: ($p.follow_up.payload // {})} else empty end),
        "log processed \($job) \($id) \(.payload | tojson)",
        {type: "ack", id: $id}
      end
    | if type == "string" then gsub("\n"; " ") else "out \(tojson)" end' <<<"$line" |
  while IFS= read -r reply; do
    if [[ $reply == out\ * ]]; then printf '%s\n' "${reply#out }"; else printf '%s\n' "${reply#log }" >&2; fi
  done
done
exit 0
