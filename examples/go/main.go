// jobrunner reference worker (protocol v1) in Go, standard library only.
// Build: cd examples/go && go build -o worker .   Run it through jobrunner: server: { command: "examples/go/worker" }
// By hand: echo '{"type":"job","id":"1","job":"SendEmail","pipeline":"emails","payload":{"to":"a@b.c"}}' | (cd examples/go && go run .)
// Frames arrive on stdin, one JSON object per line; replies go to stdout; stderr is the log.
// Payload conventions of the examples: {"fail":"reason"} nacks, {"delay_retry":N} asks for one retry after N seconds,
// {"follow_up":{"job":"X","payload":{...}}} publishes a follow-up job to the same pipeline, anything else acks.
package main

import (
	"bufio"
	"encoding/json"
	"log"
	"os"
)

type frame struct {
	Type     string          `json:"type"`
	ID       string          `json:"id"`
	Job      string          `json:"job"`
	Pipeline string          `json:"pipeline"`
	Payload  json.RawMessage `json:"payload"`
	Attempt  int             `json:"attempt"`
}

type conventions struct {
	Fail       *string  `json:"fail"`
	DelayRetry *float64 `json:"delay_retry"`
	FollowUp   *struct {
		Job     string          `json:"job"`
		Payload json.RawMessage `json:"payload"`
	} `json:"follow_up"`
}

func main() {
	log.SetFlags(0)                   // stderr lines go to jobrunner's log, which stamps them itself
	out := json.NewEncoder(os.Stdout) // os.Stdout is unbuffered: each reply leaves at once
	log.Printf("worker ready: pipeline %s, max_concurrency %s", os.Getenv("JOBRUNNER_PIPELINE"), os.Getenv("JOBRUNNER_MAX_CONCURRENCY"))
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 64*1024*1024) // frames may carry large payloads
	// One job at a time: say so, and jobrunner sends the next job only once this one is answered.
	_ = out.Encode(map[string]any{"type": "ready", "max_concurrency": 1})
	for in.Scan() {
		var f frame
		if len(in.Bytes()) == 0 || json.Unmarshal(in.Bytes(), &f) != nil {
			continue
		}
		if f.Type == "stop" {
			break // nothing is held between lines, so stopping is just leaving
		}
		if f.Type != "job" {
			continue // ignore frame types a later protocol may add
		}
		var p conventions
		_ = json.Unmarshal(f.Payload, &p) // a payload that is not an object has no conventions: ack it
		switch {
		case p.Fail != nil:
			log.Printf("failed %s %s: %s", f.Job, f.ID, *p.Fail)
			out.Encode(map[string]any{"type": "nack", "id": f.ID, "error": *p.Fail})
		case p.DelayRetry != nil && f.Attempt <= 1:
			log.Printf("retrying %s %s in %vs", f.Job, f.ID, *p.DelayRetry)
			out.Encode(map[string]any{"type": "nack", "id": f.ID, "error": "retry requested", "requeue": true, "delay": *p.DelayRetry})
		default:
			if fu := p.FollowUp; fu != nil {
				job, payload := fu.Job, fu.Payload
				if job == "" {
					job = "FollowUp"
				}
				if len(payload) == 0 {
					payload = json.RawMessage("{}")
				}
				out.Encode(map[string]any{"type": "publish", "id": f.ID, "pipeline": f.Pipeline, "job": job, "payload": payload})
			}
			log.Printf("processed %s %s %s", f.Job, f.ID, f.Payload)
			out.Encode(map[string]any{"type": "ack", "id": f.ID})
		}
	}
	os.Exit(0)
}
