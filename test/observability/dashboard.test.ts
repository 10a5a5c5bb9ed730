// config/grafana-dashboard.json queries only metrics that src/observability/metrics.ts declares, with their
// labels, and covers every metric of SPEC §7.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Metrics } from '../../src/observability/metrics.js';
import { ROOT } from './support.js';

interface Target {
  expr: string;
}
interface Panel {
  id: number;
  title: string;
  targets?: Target[];
  gridPos: { x: number; y: number; w: number; h: number };
}

const dashboard = JSON.parse(readFileSync(join(ROOT, 'config/grafana-dashboard.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: Array<{ query?: unknown }> };
};

/** name -> type and label names, from the registry the daemon uses */
const declared = new Map<string, { type: string; labels: Set<string> }>();
const { registry } = new Metrics({ defaults: false });
for (const m of await registry.getMetricsAsJSON()) {
  const labelNames = (registry.getSingleMetric(m.name) as unknown as { labelNames?: string[] } | undefined)?.labelNames ?? [];
  declared.set(m.name, { type: String(m.type), labels: new Set(labelNames) });
}

const exprs = [
  ...dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr)),
  ...dashboard.templating.list.map((v) => v.query).filter((q): q is string => typeof q === 'string' && q.includes('jobrunner_')),
];

function base(name: string): string {
  return name.replace(/_(bucket|count|sum)$/, '');
}

test('every metric the dashboard queries is declared in metrics.ts, with the labels it uses', () => {
  assert.deepEqual([...(declared.get('jobrunner_jobs_total')?.labels ?? [])], ['pipeline', 'outcome']);
  assert.ok(exprs.length >= 10);
  for (const expr of exprs) {
    const names = [...expr.matchAll(/\bjobrunner_[a-z_]+/g)].map((m) => m[0]);
    assert.ok(names.length > 0, expr);
    for (const name of names) {
      const m = declared.get(base(name)) ?? declared.get(name);
      assert.ok(m, `${name} (in ${expr}) is not declared in src/observability/metrics.ts`);
      if (name !== base(name)) assert.equal(m.type, 'histogram', `${name}: only histograms have _bucket/_count/_sum`);
      // labels in selectors and in by (...) clauses, apart from Prometheus' own
      const selectorLabels = [...expr.matchAll(/\{([^}]*)\}/g)].flatMap((s) => [...(s[1] ?? '').matchAll(/([a-z_]+)\s*=~?/g)].map((x) => x[1] as string));
      const byLabels = [...expr.matchAll(/by \(([^)]*)\)/g)].flatMap((b) => (b[1] ?? '').split(',').map((x) => x.trim()));
      for (const label of [...selectorLabels, ...byLabels]) {
        if (label === 'instance' || label === 'job' || label === 'le') continue;
        assert.ok(m.labels.has(label), `${name} has no label ${label} (in ${expr})`);
      }
    }
  }
});

test('the dashboard covers every SPEC §7 metric, panels have unique ids and do not overlap', () => {
  const all = exprs.join('\n');
  for (const name of ['jobs_total', 'job_duration_seconds', 'jobs_in_flight', 'workers', 'worker_restarts_total', 'broker_connected', 'broker_reconnects_total', 'published_total', 'queue_ready_messages']) {
    assert.match(all, new RegExp(`\\bjobrunner_${name}(_bucket)?\\b`), name);
  }
  assert.match(all, /histogram_quantile\(0\.95, .*jobrunner_job_duration_seconds_bucket/);
  assert.match(all, /by \(pipeline, outcome\) \(rate\(jobrunner_jobs_total/);
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  const cells = new Set<string>();
  for (const p of dashboard.panels) {
    for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
      for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
        const key = `${x},${y}`;
        assert.ok(!cells.has(key), `panel ${p.title} overlaps another at ${key}`);
        cells.add(key);
      }
    }
    assert.ok(p.gridPos.x + p.gridPos.w <= 24, p.title);
  }
});
