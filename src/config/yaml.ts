// Reads the YAML with positions kept, replaces ${VAR} / ${VAR:-default} in every string value, and finds
// the line:col of any path so that every later problem can point into the file.

import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, parseDocument, Scalar, visit, type Document, type Node } from 'yaml';
import { dottedPath, type Problem } from './problems.js';

export interface ParsedYaml {
  doc: Document.Parsed;
  lines: LineCounter;
  /** plain JS of the interpolated document */
  data: unknown;
  /** paths (dotted) whose value used an unset variable: later problems there are noise */
  envProblemPaths: Set<string>;
}

export function parseYaml(file: string, text: string, env: NodeJS.ProcessEnv): { parsed?: ParsedYaml; problems: Problem[] } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, merge: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const problems = doc.errors.map((e): Problem => {
      const pos = lines.linePos(e.pos[0]);
      // yaml's messages end in " at line N, column M" (we print the place ourselves) and may quote the source
      // and may quote the source token (a password, perhaps): keep only the words
      const message = e.message
        .split('\n')[0]!
        .replace(/ at line \d+, column \d+:?$/, '')
        .replace(/: ".*"$/, '')
        .replace(/:$/, '');
      return { file, line: pos.line, col: pos.col, path: '', message: `YAML syntax error: ${message}`, code: 'E_CONFIG_YAML' };
    });
    return { problems };
  }
  const problems: Problem[] = [];
  const envProblemPaths = new Set<string>();
  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const segs = pathOf(path, node);
      const result = interpolate(node.value, env);
      if (result.unterminated !== undefined) {
        const at = positionOfMatch(node, result.unterminated, lines);
        envProblemPaths.add(dottedPath(segs));
        problems.push({
          file,
          line: at.line,
          col: at.col,
          path: dottedPath(segs),
          message: '`${` starts no valid reference: write ${VAR} or ${VAR:-default} (a name of letters, digits and _, closed by `}`), or $${ for a literal ${',
          code: 'E_CONFIG_ENV',
        });
      }
      for (const missing of result.missing) {
        const at = positionOfMatch(node, missing.index, lines);
        envProblemPaths.add(dottedPath(segs));
        problems.push({
          file,
          line: at.line,
          col: at.col,
          path: dottedPath(segs),
          message: `environment variable \`${missing.name}\` is not set (write \${${missing.name}:-default} to give a default)`,
          code: 'E_CONFIG_ENV',
        });
      }
      if (result.text === node.value) return;
      // an unquoted `prefetch: ${PREFETCH:-16}` means the number 16, as it would written out
      node.value = node.type === Scalar.PLAIN ? plainScalar(result.text) : result.text;
    },
  });
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 1000 }) as unknown;
  } catch (err) {
    // the yaml library refuses aliases that expand beyond reason (a "billion laughs" file): a YAML problem
    // at the first alias, not an internal error
    let at = 0;
    visit(doc, {
      Alias(_key, node) {
        at = node.range?.[0] ?? 0;
        return visit.BREAK;
      },
    });
    const pos = lines.linePos(at);
    const reason = err instanceof Error ? err.message : String(err);
    return { problems: [{ file, line: pos.line, col: pos.col, path: '', message: `YAML aliases expand too far (${reason}): write the values out`, code: 'E_CONFIG_YAML' }] };
  }
  return { parsed: { doc, lines, data: data ?? {}, envProblemPaths }, problems };
}

export interface Interpolated {
  text: string;
  missing: { name: string; index: number }[];
  /** index of a `${` that no `}` closes (what serve would otherwise pass on as it is) */
  unterminated?: number;
}

/** ${VAR}, ${VAR:-default} (unset or empty), ${VAR-default} (unset); $${ is a literal ${. */
export function interpolate(text: string, env: NodeJS.ProcessEnv): Interpolated {
  const missing: { name: string; index: number }[] = [];
  const out = text.replace(/\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}/g, (whole, escaped: string | undefined, name: string, op: string | undefined, def: string | undefined, index: number) => {
    if (escaped !== undefined) return whole.slice(1);
    const value = env[name];
    if (op === ':-') return value === undefined || value === '' ? (def ?? '') : value;
    if (op === '-') return value === undefined ? (def ?? '') : value;
    if (value === undefined) {
      missing.push({ name, index });
      return '';
    }
    return value;
  });
  // after the replacements, a `${` left (not `$${`) is one that no pattern closed: `${VAR` or `${1x}`
  const left = /(^|[^$])\$\{/.exec(text.replace(/\$(\$)?\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}/g, (w) => ' '.repeat(w.length)));
  return left === null ? { text: out, missing } : { text: out, missing, unterminated: left.index + left[1]!.length };
}

function plainScalar(text: string): string | number | boolean {
  if (/^[-+]?\d+$/.test(text)) return Number(text);
  if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  return text;
}

function pathOf(path: readonly unknown[], node: Node): (string | number)[] {
  const segs: (string | number)[] = [];
  const chain = [...path, node];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) segs.push(parent.items.indexOf(child as never));
    else if (isPair(child) && isMap(parent)) segs.push(String(isScalar(child.key) ? child.key.value : child.key));
  }
  return segs;
}

function positionOfMatch(node: Scalar, index: number, lines: LineCounter): { line: number; col: number } {
  const start = node.range?.[0] ?? 0;
  const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE ? 1 : 0;
  const singleLine = typeof node.source === 'string' ? !node.source.includes('\n') : true;
  return lines.linePos(singleLine ? start + quoted + index : start);
}

/**
 * Where a path is in the file: the key of its pair when `at: 'key'`, else its value; the nearest existing
 * ancestor when the path does not exist (a default filled in, a missing key).
 */
export function locate(parsed: ParsedYaml, segs: readonly (string | number)[], at: 'key' | 'value' = 'value'): { line: number; col: number } {
  const { doc, lines } = parsed;
  let node: unknown = doc.contents;
  let offset = (doc.contents as Node | null)?.range?.[0] ?? 0;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i] as string | number;
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === String(seg));
      if (pair === undefined) break;
      const keyNode = pair.key as Node | null;
      const valueNode = pair.value as Node | null;
      if (i === segs.length - 1 && at === 'key' && keyNode?.range) offset = keyNode.range[0];
      else if (valueNode?.range) offset = valueNode.range[0];
      else if (keyNode?.range) offset = keyNode.range[0];
      node = valueNode;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as Node | undefined;
      if (item === undefined) break;
      if (item.range) offset = item.range[0];
      node = item;
    } else break;
  }
  return lines.linePos(offset);
}
