// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by package, top first.
// Usage: node bench/profile-summary.mjs FILE.cpuprofile [rows]

import { readFileSync } from 'node:fs';

const [file, rowsArg = '30'] = process.argv.slice(2);
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = prof.timeDeltas;
for (let i = 0; i < prof.samples.length; i++) self.set(prof.samples[i], (self.get(prof.samples[i]) ?? 0) + (dt[i] ?? 0));
const total = [...self.values()].reduce((a, b) => a + b, 0);
const fn = new Map();
const pkg = new Map();
for (const [id, us] of self) {
  const n = byId.get(id);
  const cf = n.callFrame;
  const where = cf.url.replace(/^file:\/\//, '').replace(/.*node_modules\//, 'nm:').replace(/.*\/dist\//, 'dist/');
  const key = `${cf.functionName || '(anon)'} ${where}:${cf.lineNumber + 1}`;
  fn.set(key, (fn.get(key) ?? 0) + us);
  const p = where.startsWith('nm:') ? where.split('/')[0] : where.startsWith('dist/') ? where.split('/').slice(0, 2).join('/') : where === '' ? cf.functionName : 'node:' + where.split('/')[0];
  pkg.set(p, (pkg.get(p) ?? 0) + us);
}
const show = (m, rows) => [...m].sort((a, b) => b[1] - a[1]).slice(0, rows).forEach(([k, us]) => console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${k}`));
console.log(`total ${(total / 1e6).toFixed(2)} s sampled`);
console.log('-- by package/dir');
show(pkg, 20);
console.log('-- by function');
show(fn, Number(rowsArg));
