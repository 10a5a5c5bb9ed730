// Renders the key reference of docs/configuration.md from the JSON Schema, so the doc cannot drift
// from the schema (scripts/gen-config-docs.ts writes it; a test compares it with the committed file).
// The drivers' pipeline options are found where the assembled schema puts each driver's fragment (an
// if/then on `driver` in definitions.pipeline.allOf, in the registry's order), so a new driver's keys
// appear without a change here.

type Schema = {
  type?: string | string[];
  title?: string;
  description?: string;
  default?: unknown;
  enum?: unknown[];
  properties?: Record<string, Schema>;
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  if?: Schema;
  then?: Schema;
  else?: Schema;
  required?: string[];
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
  for (const g of driverConfigGroups(root)) walk(deref(g.schema), `jobs.pipelines.<name>.config (${g.label})`);
  return rows;
}

export interface ConfigGroup {
  /** `nats`, `amqp091, flat form` */
  label: string;
  schema: Schema;
}

/**
 * Each driver's pipeline `config:` schema as the assembled schema has it: one group per driver, or one
 * per form where a driver has several (an if/then/else or anyOf/oneOf of forms, each named by its
 * definition's `title`, else by its condition).
 */
export function driverConfigGroups(root: Schema): ConfigGroup[] {
  const defs = root.definitions ?? {};
  const groups: ConfigGroup[] = [];
  for (const branch of defs['pipeline']?.allOf ?? []) {
    const names = branch.if?.properties?.['driver']?.enum;
    const config = branch.then?.properties?.['config'];
    if (names === undefined || config === undefined) continue;
    const driver = String(names[0]);
    const forms = configForms(config, defs);
    if (forms.length === 1) groups.push({ label: driver, schema: (forms[0] as { schema: Schema }).schema });
    else for (const f of forms) groups.push({ label: `${driver}, ${f.name}`, schema: f.schema });
  }
  return groups;
}

function configForms(config: Schema, defs: Record<string, Schema>): { name: string; schema: Schema }[] {
  const named = (s: Schema, otherwise: string): { name: string; schema: Schema } => {
    const def = s.$ref === undefined ? s : (defs[s.$ref.replace('#/definitions/', '')] ?? s);
    return { name: def.title ?? otherwise, schema: s };
  };
  if (config.if !== undefined && config.then !== undefined) {
    const when = Object.entries(config.if.properties ?? {})
      .map(([k, v]) => `${k}: ${[...new Set((v.enum ?? []).map(String))].join(' or ')}`)
      .join(', ');
    // the default form (else) first
    return [...(config.else === undefined ? [] : [named(config.else, 'otherwise')]), named(config.then, `when ${when}`)];
  }
  const alternatives = config.anyOf ?? config.oneOf;
  if (alternatives !== undefined) return alternatives.map((a, i) => named(a, `form ${i + 1}`));
  return [named(config, '')];
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
