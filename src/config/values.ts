// Readers for schema-valid config values (defaults already filled in by ajv), shared by src/config/ and
// each driver's option normaliser: a value of the wrong kind falls back, nothing here throws.

import { parseDuration } from '../shared/duration.js';
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
/** `canonical` when the user wrote it, else the alias when they wrote that, else the default. */
export function aliased(raw: Obj, full: Obj, canonical: string, alias: string, fallback: boolean): boolean {
  if (raw[canonical] === undefined && raw[alias] !== undefined) return bool(full[alias], fallback);
  return bool(full[canonical], fallback);
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
