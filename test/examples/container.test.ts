// The container files and the documented configurations: the Dockerfile passes the hadolint-style lint of
// scripts/docker-build-check.sh (and the lint catches what it should), docker-compose accepts
// docker-compose.yml, config/compose.yaml and every configuration shown in the container and migration
// docs validate with the real loader. The full engine-free build replay (npm ci twice, ~30 s) runs under
// CI=true or DOCKER_BUILD_CHECK=1.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { checkConfigText, formatProblem } from '../../src/config/index.js';
import { repoRoot } from './worker-harness.js';

const script = join(repoRoot, 'scripts/docker-build-check.sh');
const tmp = mkdtempSync(join(tmpdir(), 'jobrunner-container-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function lint(dockerfile: string): { status: number | null; stderr: string } {
  const r = spawnSync('bash', [script, '--lint-only'], { env: { ...process.env, DOCKERFILE: dockerfile }, encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('Dockerfile lint', () => {
  test('the Dockerfile passes', () => {
    const r = lint(join(repoRoot, 'Dockerfile'));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /lint: ok/);
  });

  test('the lint reports unpinned images, root, a missing healthcheck, shell-form CMD and loose apt-get', () => {
    const bad = join(tmp, 'Dockerfile.bad');
    writeFileSync(
      bad,
      [
        'FROM node:latest AS build',
        'WORKDIR src',
        'RUN npm install',
        'FROM node:22-slim',
        'RUN apt-get update && apt-get install -y tini',
        'ADD . /app',
        'USER root',
        'CMD jobrunner serve',
        '',
      ].join('\n'),
    );
    const r = lint(bad);
    assert.equal(r.status, 1);
    const lines = r.stderr.trim().split('\n');
    assert.deepEqual(lines, [
      'docker-build-check: lint: FROM node:latest: not pinned (no tag, or latest)',
      'docker-build-check: lint: WORKDIR is not absolute: src',
      'docker-build-check: lint: RUN uses npm install; use npm ci: npm install',
      'docker-build-check: lint: FROM node:22-slim: tag is not a full version (x.y.z)',
      'docker-build-check: lint: apt-get install without --no-install-recommends',
      'docker-build-check: lint: apt-get install without rm -rf /var/lib/apt/lists/* in the same RUN',
      'docker-build-check: lint: apt package not pinned (pkg=version): tini',
      'docker-build-check: lint: ADD used for local files; use COPY: . /app',
      'docker-build-check: lint: CMD is not in exec (JSON) form: jobrunner serve',
      'docker-build-check: lint: the word :latest appears in the Dockerfile',
      'docker-build-check: lint: the final stage runs as root (USER root)',
      'docker-build-check: lint: no HEALTHCHECK',
      'docker-build-check: FAIL: Dockerfile lint',
    ]);
  });

  test('a final stage without USER is reported', () => {
    const noUser = join(tmp, 'Dockerfile.nouser');
    writeFileSync(noUser, 'FROM node:22.23.2-bookworm-slim\nUSER node\nFROM node:22.23.2-bookworm-slim\nHEALTHCHECK CMD ["true"]\n');
    const r = lint(noUser);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /the final stage has no USER: it would run as root/);
  });
});

describe('docker-compose.yml', () => {
  const has = spawnSync('docker-compose', ['version'], { stdio: 'ignore', timeout: 30_000 }).status === 0;
  test('docker-compose config -q accepts it', { skip: has ? false : 'docker-compose not installed (scripts/install-example-runtimes.sh)' }, () => {
    const r = spawnSync('docker-compose', ['-f', join(repoRoot, 'docker-compose.yml'), 'config', '-q'], { cwd: repoRoot, encoding: 'utf8', timeout: 30_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
  });

  test('the jobrunner service mounts config/compose.yaml and waits for a healthy RabbitMQ 4', () => {
    const doc = parseAllDocuments(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8'))[0]!.toJS() as {
      services: Record<string, { image?: string; volumes?: string[]; depends_on?: Record<string, { condition: string }>; healthcheck?: unknown }>;
    };
    assert.match(doc.services.rabbitmq!.image!, /^rabbitmq:4\.\d+\.\d+-management$/);
    assert.ok(doc.services.rabbitmq!.healthcheck);
    assert.deepEqual(doc.services.jobrunner!.depends_on, { rabbitmq: { condition: 'service_healthy' } });
    assert.ok(doc.services.jobrunner!.volumes!.includes('./config/compose.yaml:/etc/jobrunner/jobs.yaml:ro'));
  });
});

/** The jobrunner configurations shown in a Markdown file: yaml blocks with a `jobs` key, or a ConfigMap's jobs.yaml. */
function documentedConfigs(file: string): string[] {
  const md = readFileSync(join(repoRoot, file), 'utf8');
  const out: string[] = [];
  for (const m of md.matchAll(/^```ya?ml\n([\s\S]*?)^```/gm)) {
    for (const doc of parseAllDocuments(m[1]!)) {
      const v = doc.toJS() as Record<string, unknown> | null;
      if (v === null || typeof v !== 'object') continue;
      if ('jobs' in v) out.push(doc.toString());
      const data = v.kind === 'ConfigMap' ? (v.data as Record<string, unknown> | undefined) : undefined;
      if (typeof data?.['jobs.yaml'] === 'string') out.push(data['jobs.yaml']);
    }
  }
  return out;
}

/** the variables the docs' configurations may require without a default (as a deployment would set them) */
const docsEnv = { AMQP_URL: 'amqp://user:secret@rabbitmq:5672/', JOBRUNNER_TOKEN: 'a-token' };

describe('documented configurations validate', () => {
  test('config/compose.yaml', () => {
    const r = checkConfigText('config/compose.yaml', readFileSync(join(repoRoot, 'config/compose.yaml'), 'utf8'), {});
    assert.deepEqual(r.problems.map(formatProblem), []);
    assert.deepEqual(r.config!.pipelines.map((p) => [p.name, p.driver, p.consume]), [['emails', 'amqp091', true]]);
  });

  // at least this many configurations per page, so a page that loses its examples fails too
  const pages: Array<[string, number]> = [
    ['docs/docker.md', 1],
    ['docs/kubernetes.md', 1],
    ['docs/migrating-from-roadrunner.md', 2],
  ];
  for (const [page, least] of pages) {
    test(page, () => {
      const configs = documentedConfigs(page);
      assert.ok(configs.length >= least, `${page}: ${configs.length} configurations found, expected at least ${least}`);
      configs.forEach((text, i) => {
        const r = checkConfigText(`${page} (configuration ${i + 1})`, text, docsEnv);
        assert.deepEqual(r.problems.map(formatProblem), [], text);
      });
    });
  }
});

describe('engine-free replay of the Dockerfile build', () => {
  const run = process.env.CI === 'true' || process.env.DOCKER_BUILD_CHECK === '1';
  test('scripts/docker-build-check.sh builds, serves /health, processes a job and exits 0', { skip: run ? false : 'slow (npm ci twice): runs under CI=true or DOCKER_BUILD_CHECK=1', timeout: 300_000 }, () => {
    const r = spawnSync('bash', [script], { cwd: repoRoot, encoding: 'utf8', timeout: 280_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /ok: built, served \/health, processed a job, exited 0 on SIGTERM/);
  });
});
