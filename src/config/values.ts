// Readers for schema-valid config values, shared by src/config/ and each driver's option normaliser.
// Defaults live once, in the schema: ajv has filled them in, so a key with a schema default is read
// with the *Of readers, which have no fallback of their own (a missing value is a schema without that
// default: E_INTERNAL). The readers with a fallback are for keys the schema leaves unset on purpose
// (optional strings, values computed at start such as the CPU count).

import { parseDuration } from '../shared/duration.js';
import { JobrunnerError } from '../shared/errors.js';
import type { TlsConfig } from './types.js';

export type Obj = Record<string, unknown>;

export function obj(value: unknown): Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {};
}
/** a duration (`500ms`, `30s`, a number of seconds) in ms */
export function ms(value: unknown, fallback: number): number {
  if (typeof value !== 'string' && typeof value !== 'number') return fallback;
  return parseDuration(value) ?? fallback;
}
export function str(value: unknown, fallback = ''): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : fallback;
}
export function num(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}
export function bool(value: unknown, fallback: boolean): boolean {
  return typeof value === 'boolean' ? value : fallback;
}
/** a key with a schema default, as it is */
export function filled(o: Obj, key: string): unknown {
  const v = o[key];
  if (v === undefined) throw new JobrunnerError('E_INTERNAL', `config key ${key} has no value: its schema gives it no default`);
  return v;
}
/** a key with a schema default, as a number */
export function numOf(o: Obj, key: string): number {
  const v = filled(o, key);
  if (typeof v !== 'number') throw new JobrunnerError('E_INTERNAL', `config key ${key} is not a number after validation`);
  return v;
}
/** a key with a schema default, as a string (numbers as their text) */
export function strOf(o: Obj, key: string): string {
  const v = filled(o, key);
  if (typeof v !== 'string' && typeof v !== 'number') throw new JobrunnerError('E_INTERNAL', `config key ${key} is not a string after validation`);
  return String(v);
}
/** a key with a schema default, as a boolean */
export function boolOf(o: Obj, key: string): boolean {
  const v = filled(o, key);
  if (typeof v !== 'boolean') throw new JobrunnerError('E_INTERNAL', `config key ${key} is not a boolean after validation`);
  return v;
}
/** a key with a schema default, a duration, in ms */
export function msOf(o: Obj, key: string): number {
  const raw = filled(o, key);
  const v = typeof raw === 'string' || typeof raw === 'number' ? parseDuration(raw) : undefined;
  if (v === undefined) throw new JobrunnerError('E_INTERNAL', `config key ${key} is not a duration after validation`);
  return v;
}
/** `canonical` (which has a schema default) unless the user wrote only the alias (which has none). */
export function aliased(raw: Obj, full: Obj, canonical: string, alias: string): boolean {
  if (raw[canonical] === undefined && raw[alias] !== undefined) return boolOf(full, alias);
  return boolOf(full, canonical);
}
/** `addr`: one URL or a list (a cluster) */
export function urls(addr: unknown): string[] {
  return Array.isArray(addr) ? addr.map(String) : [String(addr)];
}

/** A `tls` mapping; undefined when it sets nothing (RoadRunner's samples carry `key: ""`: empty means unset). */
export function tls(value: unknown): TlsConfig | undefined {
  if (value === undefined) return undefined;
  const t = obj(value);
  const out: TlsConfig = { insecureSkipVerify: bool(t.insecure_skip_verify, false) };
  if (str(t.cert) !== '') out.cert = str(t.cert);
  if (str(t.key) !== '') out.key = str(t.key);
  if (str(t.root_ca) !== '') out.rootCa = str(t.root_ca);
  if (str(t.client_auth_type) !== '') out.clientAuthType = str(t.client_auth_type);
  const meaningful = out.cert !== undefined || out.key !== undefined || out.rootCa !== undefined || out.insecureSkipVerify;
  return meaningful || out.clientAuthType !== undefined ? out : undefined;
}
