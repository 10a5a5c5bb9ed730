// A whole RoadRunner `.rr.yaml` validates: what jobrunner has no use for is set aside here, before the
// schema sees the file, and named once as a warning (with RoadRunner's behaviour where there is one).
// Runs on a copy of the data as written, before the schema's copy (defaults filled in) is made from it.
//   - RoadRunner's other plugin sections (metrics, status, reload, kv, grpc, ...): not used
//   - an `http` section in RoadRunner's HTTP-plugin shape (pool, middleware, uploads, ...): that is
//     RoadRunner's web server, not jobrunner's control API, which stays on its loopback default
//   - a jobs section with no pipelines (RoadRunner declares them over RPC): nothing to consume
//   - amqp pipelines without the global `amqp` section: RoadRunner's default address
//   - jobs.consume missing or empty: nothing is consumed until a pipeline is resumed

import { obj, type Obj } from './values.js';
import { dottedPath, type Problem } from './problems.js';
import { locate, type ParsedYaml } from './yaml.js';

/** RoadRunner's plugin sections that jobrunner accepts and does not use (when its schema has no such key). */
const ROADRUNNER_SECTIONS = [
  'metrics', 'status', 'reload', 'kv', 'grpc', 'service', 'temporal', 'tcp', 'centrifuge', 'fileserver', 'lock',
  'informer', 'resetter', 'endure', 'redis', 'boltdb', 'memcached', 'beanstalk', 'kafka', 'sqs', 'nats',
  'google_pub_sub', 'websockets', 'broadcast', 'headers', 'gzip', 'static', 'prometheus', 'app_logger', 'rpc',
];

/** keys of jobrunner's own `http` section (the control API) */
const CONTROL_HTTP_KEYS = new Set(['address', 'token', 'allow_unauthenticated']);

/** RoadRunner's default AMQP address, used by its amqp driver when the global section is missing */
export const ROADRUNNER_AMQP_DEFAULT = 'amqp://guest:guest@127.0.0.1:5672/';

/** a Problem with code W_CONFIG: printed by validate and logged by serve, never refused */
export type Warning = Problem;

/**
 * Sets aside, in `raw` (a copy: it is changed), what the schema would refuse but RoadRunner accepts;
 * returns the warnings. `rootKeys`: the schema's top-level keys (a section it knows is never set aside).
 */
export function setAsideRoadRunner(file: string, raw: Obj, parsed: ParsedYaml, rootKeys: readonly string[]): Warning[] {
  const warnings: Warning[] = [];
  const warn = (segs: (string | number)[], message: string, at: 'key' | 'value' = 'key'): void => {
    const pos = locate(parsed, segs, at);
    warnings.push({ file, line: pos.line, col: pos.col, path: dottedPath(segs), message, code: 'W_CONFIG' });
  };
  const drop = (key: string): void => {
    delete raw[key];
  };

  for (const key of Object.keys(raw)) {
    if (rootKeys.includes(key) || !ROADRUNNER_SECTIONS.includes(key)) continue;
    warn([key], `RoadRunner's \`${key}\` section is not used by jobrunner`);
    drop(key);
  }

  const http = raw.http;
  if (http !== null && typeof http === 'object' && !Array.isArray(http) && Object.keys(http).some((k) => !CONTROL_HTTP_KEYS.has(k))) {
    const others = Object.keys(http).filter((k) => !CONTROL_HTTP_KEYS.has(k));
    warn(
      ['http'],
      `this is RoadRunner's HTTP server (it has \`${others.join('`, `')}\`), which jobrunner does not run: section not used; ` +
        "the control API stays on 127.0.0.1:2114 (set it with jobrunner's own `http: { address, token }` or --http-address)",
    );
    drop('http');
  }

  const jobs = obj(raw.jobs);
  const pipelines = obj(jobs.pipelines);
  const names = Object.keys(pipelines);
  if (names.length === 0) {
    warn(raw.jobs === undefined ? [] : ['jobs'], 'no pipeline is defined (RoadRunner declares them over RPC, which jobrunner does not serve): nothing will be consumed');
  } else if (!Array.isArray(jobs.consume) || jobs.consume.length === 0) {
    warn(raw.jobs !== undefined && 'consume' in jobs ? ['jobs', 'consume'] : ['jobs'], 'jobs.consume is missing or empty: no pipeline is consumed until one is resumed (jobrunner resume PIPELINE)');
  }

  const amqpPipeline = names.find((n) => ['amqp', 'amqp091'].includes(String(obj(pipelines[n]).driver)));
  if (amqpPipeline !== undefined && raw.amqp === undefined) {
    warn(['jobs', 'pipelines', amqpPipeline, 'driver'], `no top-level \`amqp\` section: connecting to RoadRunner's default, ${ROADRUNNER_AMQP_DEFAULT.replace('guest:guest@', '')}`, 'value');
    raw.amqp = { addr: ROADRUNNER_AMQP_DEFAULT };
  }
  return warnings;
}
