// A configuration problem with its place in the file, and the one error thrown for a bad file.
// Every user-facing line is `file:line:col path: message`, with secrets redacted.

import { JobrunnerError, redactSecrets, type ErrorCode } from '../shared/errors.js';

export type ConfigErrorCode = 'E_CONFIG_READ' | 'E_CONFIG_YAML' | 'E_CONFIG_ENV' | 'E_CONFIG_SCHEMA' | 'E_CONFIG_REF';

export interface Problem {
  /** the file as the user named it */
  file: string;
  /** 1-based; 0 when the problem has no place in the file (it cannot be read) */
  line: number;
  col: number;
  /** dotted path of the key, e.g. jobs.pipelines.orders.config.prefetch ('' for the whole file) */
  path: string;
  message: string;
  /** which stage found it; decides the code of the thrown error (W_CONFIG: a warning, not a problem) */
  code: ConfigErrorCode | 'W_CONFIG';
}

export function formatProblem(p: Problem): string {
  const where = p.line > 0 ? `${p.file}:${p.line}:${p.col}` : p.file;
  const what = p.path === '' ? p.message : `${p.path}: ${p.message}`;
  return redactSecrets(`${where} ${what}`);
}

/** Stage order: the earliest stage that found something names the error. */
const STAGES: ConfigErrorCode[] = ['E_CONFIG_READ', 'E_CONFIG_YAML', 'E_CONFIG_ENV', 'E_CONFIG_SCHEMA', 'E_CONFIG_REF'];

export function sortProblems(problems: Problem[]): Problem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.col - b.col || a.path.localeCompare(b.path));
}

export function problemsError(file: string, problems: Problem[]): JobrunnerError {
  const code: ErrorCode = STAGES.find((s) => problems.some((p) => p.code === s)) ?? 'E_CONFIG_SCHEMA';
  const n = problems.length;
  const lines = problems.map(formatProblem);
  const only = n === 1 ? problems[0] : undefined;
  // one problem: the message says it all; several: the count, and the detail lines list them
  const message =
    only !== undefined
      ? `${file}: 1 problem: ${only.line > 0 ? `line ${only.line}: ` : ''}${only.path === '' ? '' : `${only.path}: `}${only.message}`
      : `${file}: ${n} problems in the configuration`;
  return new JobrunnerError(code, redactSecrets(message), { details: lines });
}

/** Dotted path from path segments: numbers become [i]. */
export function dottedPath(segments: readonly (string | number)[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else out += out === '' ? s : `.${s}`;
  }
  return out;
}

/** Edit distance, for "did you mean" suggestions. */
export function levenshtein(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0] as number;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j] as number;
      prev[j] = Math.min(up + 1, (prev[j - 1] as number) + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length] as number;
}

/** The nearest candidate when it is near enough to be a typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      best = c;
      bestD = d;
    }
  }
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestD <= limit ? best : undefined;
}
