// Renders the key reference of docs/configuration.md from the JSON Schema, so the doc cannot drift
// from the schema (scripts/gen-config-docs.ts writes it; a test compares it with the committed file).

type Schema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  format?: string;
  $ref?: string;
  definitions?: Record<string, Schema>;
};

export const BEGIN = '<!-- BEGIN GENERATED: key reference (scripts/gen-config-docs.ts) -->';
export const END = '<!-- END GENERATED -->';

export interface KeyRow {
  path: string;
  type: string;
  default: string;
  description: string;
}

/** Every property path of the schema, depth first, in schema order. */
export function schemaKeys(root: Schema): KeyRow[] {
  const defs = root.definitions ?? {};
  const deref = (s: Schema): Schema => {
    if (s.$ref === undefined) return s;
    const { $ref, ...rest } = s;
    return { ...(defs[$ref.replace('#/definitions/', '')] ?? {}), ...rest };
  };
  const rows: KeyRow[] = [];
  const walk = (schema: Schema, prefix: string): void => {
    for (const [key, raw] of Object.entries(schema.properties ?? {})) {
      const s = deref(raw);
      const path = prefix === '' ? key : `${prefix}.${key}`;
      rows.push({ path, type: typeName(s), default: s.default === undefined ? '' : `\`${JSON.stringify(s.default)}\``, description: s.description ?? '' });
      walk(s, path);
      if (s.additionalProperties && typeof s.additionalProperties === 'object' && s.additionalProperties.$ref) {
        walk(deref(s.additionalProperties), `${path}.<name>`);
      }
    }
  };
  walk(root, '');
  // pipeline driver options, one group per form
  const groups: [string, string][] = [
    ['amqp091Flat', 'jobs.pipelines.<name>.config (amqp091, flat form)'],
    ['amqp091Nested', 'jobs.pipelines.<name>.config (amqp091, nested form: version 2)'],
    ['amqp1Pipeline', 'jobs.pipelines.<name>.config (amqp1)'],
    ['memoryPipeline', 'jobs.pipelines.<name>.config (memory)'],
  ];
  for (const [def, prefix] of groups) walk(defs[def] ?? {}, prefix);
  return rows;
}

function typeName(s: Schema): string {
  if (s.format === 'duration') return 'duration';
  if (s.anyOf) return s.anyOf.map(typeName).join(' \\| ');
  // [0, 1, '0', '1'] reads as 0 | 1: a number and its string are one value to a person
  if (s.enum) return [...new Set(s.enum.map(String))].map((v) => `\`${v}\``).join(' \\| ');
  const t = Array.isArray(s.type) ? s.type.join(' \\| ') : (s.type ?? 'any');
  if (t === 'array') return `list of ${s.items ? typeName(s.items) : 'any'}`;
  if (t === 'object') return 'mapping';
  return t;
}

export function renderReference(schema: object): string {
  const rows = schemaKeys(schema as Schema);
  const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  const out = [BEGIN, '', '| key | type | default | meaning |', '|---|---|---|---|'];
  for (const r of rows) out.push(`| \`${r.path}\` | ${r.type} | ${r.default} | ${esc(r.description)} |`);
  out.push('', END);
  return out.join('\n');
}

/** The doc with its generated part replaced by a fresh rendering. */
export function withReference(doc: string, schema: object): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error('docs/configuration.md has no generated-section markers');
  return doc.slice(0, start) + renderReference(schema) + doc.slice(end + END.length);
}
