<?php
// jobrunner reference worker (protocol v1) in PHP (php-cli, no extensions beyond json).
// Run it through jobrunner:  server: { command: "php examples/php/worker.php" }
// By hand:  echo '{"type":"job","id":"1","job":"SendEmail","pipeline":"emails","payload":{"to":"a@b.c"}}' | php examples/php/worker.php
// Frames arrive on stdin, one JSON object per line; replies go to stdout; stderr is the log.
// Payload conventions of the examples: {"fail":"reason"} nacks, {"delay_retry":N} asks for one retry after N seconds,
// {"follow_up":{"job":"X","payload":{...}}} publishes a follow-up job to the same pipeline, anything else acks.
declare(strict_types=1);

const JSON_FLAGS = JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION | JSON_THROW_ON_ERROR;
function send(array $frame): void { fwrite(STDOUT, json_encode($frame, JSON_FLAGS) . "\n"); }
function logLine(string $text): void { fwrite(STDERR, $text . "\n"); }

logLine('worker ready: pipeline ' . (getenv('JOBRUNNER_PIPELINE') ?: '?') . ', max_concurrency ' . (getenv('JOBRUNNER_MAX_CONCURRENCY') ?: '1'));

// One job at a time: say so, and jobrunner sends the next job only once this one is answered.
send(['type' => 'ready', 'max_concurrency' => 1]);
while (($line = fgets(STDIN)) !== false) {
    if (trim($line) === '') continue;
    $frame = json_decode($line, false, 512, JSON_THROW_ON_ERROR); // objects stay objects, so {} is echoed as {}
    if ($frame->type === 'stop') break; // nothing is held between lines, so stopping is just leaving
    if ($frame->type !== 'job') continue; // ignore frame types a later protocol may add
    $id = $frame->id;
    $p = is_object($frame->payload ?? null) ? $frame->payload : new stdClass();
    if (isset($p->fail)) {
        logLine("failed {$frame->job} $id: {$p->fail}");
        send(['type' => 'nack', 'id' => $id, 'error' => (string) $p->fail]);
    } elseif (isset($p->delay_retry) && ($frame->attempt ?? 1) <= 1) {
        logLine("retrying {$frame->job} $id in {$p->delay_retry}s");
        send(['type' => 'nack', 'id' => $id, 'error' => 'retry requested', 'requeue' => true, 'delay' => $p->delay_retry]);
    } else {
        if (isset($p->follow_up)) {
            send(['type' => 'publish', 'id' => $id, 'pipeline' => $frame->pipeline,
                  'job' => $p->follow_up->job ?? 'FollowUp', 'payload' => $p->follow_up->payload ?? new stdClass()]);
        }
        logLine("processed {$frame->job} $id " . json_encode($frame->payload ?? null, JSON_FLAGS));
        send(['type' => 'ack', 'id' => $id]);
    }
}
exit(0);
