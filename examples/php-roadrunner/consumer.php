<?php
// A RoadRunner jobs worker, written against spiral/roadrunner-jobs 4.x and nothing else, run by jobrunner
// with `pool.protocol: goridge` exactly as RoadRunner would run it (see jobs.yaml and
// docs/protocol-goridge.md). Not run by jobrunner's CI: the spiral/* packages need `composer install`,
// which CI does not do; jobrunner's own goridge tests use test/fixtures/workers/goridge-scripted.php.
//
// Payload conventions (JSON bodies): {"fail":"reason"} fails the job (the pipeline's retry policy
// decides), {"retry_in":N} requeues it once after N seconds with a header, {"drop":"reason"} nacks it
// with no redelivery, anything else is acked.
declare(strict_types=1);

require __DIR__ . '/vendor/autoload.php';

use Spiral\RoadRunner\Jobs\Consumer;
use Spiral\RoadRunner\Jobs\Task\ReceivedTaskInterface;

$consumer = new Consumer();

/** @var ReceivedTaskInterface $task */
while ($task = $consumer->waitTask()) {
    try {
        $payload = json_decode($task->getPayload(), true) ?: [];
        // echo and print are sent to stderr by the library, which jobrunner logs with the worker's pid
        echo sprintf("%s %s on %s (%s)\n", $task->getName(), $task->getId(), $task->getPipeline(), $task->getQueue());

        if (isset($payload['fail'])) {
            throw new RuntimeException((string) $payload['fail']);
        }
        if (isset($payload['drop'])) {
            $task->nack((string) $payload['drop']);            // no redelivery: retry policy, then dead letter
            continue;
        }
        if (isset($payload['retry_in']) && !$task->hasHeader('retried')) {
            $task->withHeader('retried', '1')
                ->withDelay((int) $payload['retry_in'])
                ->requeue('asked to run again later');          // back after retry_in seconds, with the header
            continue;
        }

        // ... the job's work ...
        $task->ack();
    } catch (\Throwable $e) {
        $task->nack($e);                                        // the retry policy decides
    }
}
