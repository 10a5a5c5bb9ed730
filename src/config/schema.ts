// The JSON Schema (schemas/config.schema.json, the one source of truth) as a validator precompiled with
// ajv's standalone code generation (config-validator.generated.ts, made by scripts/gen-config-validator.mjs;
// ajv's compiler is not loaded at run time), and ajv's errors turned into problems a person can act on:
// place in the file, dotted path, plain words.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ErrorObject, ValidateFunction } from 'ajv';
import { describeDrivers } from '../drivers/registry.js';
import generatedValidate from './config-validator.generated.js';
import { dottedPath, nearest, type Problem } from './problems.js';
import { locate, type ParsedYaml } from './yaml.js';

/** The package root (holds schemas/ and examples/), from src/config/ or dist/config/ alike. */
export function packageRoot(): string {
  return fileURLToPath(new URL('../../', import.meta.url));
}

let schemaCache: Record<string, unknown> | undefined;

/** The parsed JSON Schema (a fresh deep copy each call: callers may print or change it). */
export function configSchema(): Record<string, unknown> {
  schemaCache ??= JSON.parse(readFileSync(new URL('schemas/config.schema.json', `file://${packageRoot()}`), 'utf8')) as Record<string, unknown>;
  return structuredClone(schemaCache);
}

// Compiled from the schema with allErrors, useDefaults, verbose and coerceTypes (like RoadRunner's weakly
// typed decoding, `prefetch: "16"` is 16 and `token: 12345` the string "12345"; what cannot be converted
// is still an error) and the `duration` format of formats.ts: see scripts/gen-config-validator.mjs.
/** the schema's top-level keys */
export function schemaRootKeys(): string[] {
  configSchema();
  return Object.keys((schemaCache?.properties ?? {}) as object);
}

const validate = generatedValidate as unknown as ValidateFunction;


/**
 * Validates `data` in place (defaults filled in: pass a clone) and returns the problems, each placed
 * in the file. Problems at paths in `skip` (an unset variable made them) are left out.
 */
export function validateSchema(file: string, data: unknown, parsed: ParsedYaml): Problem[] {
  if (validate(data)) return [];
  const errors = (validate.errors ?? []).filter((e) => e.keyword !== 'if');
  // anyOf (command, urls): one message for the spot instead of one per branch
  const anyOfPaths = errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath);
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    if (e.keyword !== 'anyOf' && anyOfPaths.some((p) => e.instancePath === p || e.instancePath.startsWith(`${p}/`))) continue;
    const segs = segments(e.instancePath);
    let placeSegs = segs;
    let at: 'key' | 'value' = 'value';
    let message: string;
    let pathSegs = segs;
    switch (e.keyword) {
      case 'additionalProperties': {
        const key = String((e.params as { additionalProperty: string }).additionalProperty);
        pathSegs = [...segs, key];
        placeSegs = pathSegs;
        at = 'key';
        message = unknownKeyMessage(key, allowedKeys(e));
        break;
      }
      case 'required': {
        const key = String((e.params as { missingProperty: string }).missingProperty);
        pathSegs = [...segs, key];
        message = `missing required key \`${key}\``;
        break;
      }
      default:
        message = describe(e, segs);
    }
    const path = dottedPath(pathSegs);
    if (parsed.envProblemPaths.has(path) || parsed.envProblemPaths.has(dottedPath(segs))) continue;
    const key = `${path}\0${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const pos = locate(parsed, placeSegs, at);
    problems.push({ file, line: pos.line, col: pos.col, path, message, code: 'E_CONFIG_SCHEMA' });
  }
  return problems;
}

function segments(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s, i, all) => (/^\d+$/.test(s) && isArrayIndexSpot(all.slice(0, i)) ? Number(s) : s));
}

// the only arrays in the schema hold strings: consume, command, addr; their indexes are numbers
function isArrayIndexSpot(before: string[]): boolean {
  const last = before[before.length - 1];
  return last === 'consume' || last === 'command' || last === 'addr';
}

function allowedKeys(e: ErrorObject): string[] {
  const props = (e.parentSchema as { properties?: Record<string, unknown> } | undefined)?.properties;
  return props ? Object.keys(props) : [];
}

export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const suggestion = nearest(key, allowed);
  if (suggestion !== undefined) return `unknown key \`${key}\`; did you mean \`${suggestion}\`?`;
  return allowed.length > 0 ? `unknown key \`${key}\`; allowed keys: ${allowed.join(', ')}` : `unknown key \`${key}\``;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean (true or false)',
  object: 'a mapping',
  array: 'a list',
  null: 'null',
};

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  return TYPE_WORDS[typeof value] ?? typeof value;
}

function show(value: unknown): string {
  return typeof value === 'string' ? `\`${value}\`` : `\`${JSON.stringify(value)}\``;
}

function describe(e: ErrorObject, segs: readonly (string | number)[]): string {
  const p = e.params as Record<string, unknown>;
  const last = segs[segs.length - 1];
  switch (e.keyword) {
    case 'type': {
      const want = String(p.type)
        .split(',')
        .map((t) => TYPE_WORDS[t] ?? t)
        .join(' or ');
      let msg = `must be ${want}, not ${typeOf(e.data)}`;
      // RoadRunner's nested amqp form used without `version: 2`
      if ((last === 'exchange' || last === 'queue') && segs[segs.length - 2] === 'config' && typeOf(e.data) === 'a mapping') {
        msg += ' (the nested `exchange: {name, type, ...}` / `queue: {name, ...}` form needs `version: 2` in the pipeline config)';
      }
      return msg;
    }
    case 'enum': {
      const allowed = (p.allowedValues as unknown[]).map(String);
      if (last === 'driver' && segs[segs.length - 3] === 'pipelines') {
        return `unsupported driver ${show(e.data)}; supported drivers: ${describeDrivers()}`;
      }
      const near = typeof e.data === 'string' ? nearest(e.data, allowed) : undefined;
      return `must be one of ${allowed.join(', ')}, not ${show(e.data)}${near !== undefined ? `; did you mean \`${near}\`?` : ''}`;
    }
    case 'const':
      return `must be ${show(p.allowedValue)}`;
    case 'format':
      if (p.format === 'duration') return `${show(e.data)} is not a duration (write e.g. 500ms, 30s, 5m, 1h30m, or a number of seconds)`;
      return `must be a valid ${String(p.format)}`;
    case 'minimum':
      return `must be ${String(p.comparison)} ${String(p.limit)}, not ${show(e.data)}`;
    case 'maximum':
      return `must be ${String(p.comparison)} ${String(p.limit)}, not ${show(e.data)}`;
    case 'pattern':
      if (last === 'listen') return `${show(e.data)} is not tcp://host:port or unix:///path`;
      return `${show(e.data)} does not have the expected form`;
    case 'minLength':
    case 'minItems':
      return 'must not be empty';
    case 'minProperties':
      return last === 'pipelines' ? 'no pipeline is defined: add one under jobs.pipelines' : 'must not be empty';
    case 'anyOf': {
      const desc = (e.schema as unknown[] | undefined) && (e.parentSchema as { description?: string } | undefined)?.description;
      if (desc) return `must be ${desc.charAt(0).toLowerCase()}${desc.slice(1).replace(/\.$/, '')}; not ${typeOf(e.data)}`;
      return 'has the wrong shape';
    }
    default:
      return e.message ?? 'is not valid';
  }
}
