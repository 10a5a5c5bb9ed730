<?php
// The leanest correct goridge jobs worker in PHP, for `npm run bench` (pool.protocol: goridge): answers
// jobrunner's pid frame, then acks every job ({"type":2}) as spiral/roadrunner-jobs' ReceivedTask::ack()
// writes it, one job at a time as RoadRunner's PHP workers do. Built with pack()/crc32() alone.
// BENCH_LATENCY_DIR: record (now - body.ts) per job, in ms, written to a file there on stop.

function readExactly(int $n): ?string
{
    $buf = '';
    while (strlen($buf) < $n) {
        $chunk = fread(STDIN, $n - strlen($buf));
        if ($chunk === false || ($chunk === '' && feof(STDIN))) {
            return null;
        }
        $buf .= $chunk;
    }
    return $buf;
}

function frame(string $payload, array $options, int $flags): string
{
    $header = pack('CCV', 0x10 | (count($options) + 3), $flags, strlen($payload));
    $out = $header . pack('VCC', crc32($header), 0, 0);
    foreach ($options as $o) {
        $out .= pack('V', $o);
    }
    return $out . $payload;
}

$latencyDir = getenv('BENCH_LATENCY_DIR') ?: '';
$samples = [];
$ack = frame('{"type":2,"data":[]}', [0], 0);

while (($header = readExactly(12)) !== null) {
    $words = ord($header[0]) & 0x0F;
    $length = unpack('V', $header, 2)[1];
    $options = $words > 3 ? array_values(unpack('V*', readExactly(($words - 3) * 4))) : [];
    $payload = $length > 0 ? readExactly($length) : '';
    if (ord($header[1]) & 0x01) { // CONTROL: {"pid":N} or {"stop":true}
        $cmd = json_decode($payload, true);
        if (!empty($cmd['stop'])) {
            break;
        }
        fwrite(STDOUT, frame(json_encode(['pid' => getmypid()]), [], 0x01));
        continue;
    }
    if ($latencyDir !== '') {
        $body = json_decode(substr($payload, $options[0]), true);
        if (is_array($body) && isset($body['ts'])) {
            $samples[] = sprintf('%.3f', microtime(true) * 1000 - $body['ts']);
        }
    }
    fwrite(STDOUT, $ack);
}
if ($samples !== []) {
    file_put_contents("$latencyDir/php-" . getmypid() . '.txt', implode("\n", $samples) . "\n");
}
