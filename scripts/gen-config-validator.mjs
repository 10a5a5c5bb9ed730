#!/usr/bin/env node
// Assembles schemas/config.schema.json (the one schema the daemon, `jobrunner schema` and editors use)
// from src/config/schema.base.json and each driver's fragment, src/drivers/<name>/schema.json, in the
// order of src/drivers/registry.ts; then precompiles it into the standalone validator
// src/config/config-validator.generated.ts with ajv's standalone code generation, so the daemon never
// loads ajv's compiler nor compiles the schema at start (that alone was ~20 MB of RSS).
//
//   node scripts/gen-config-validator.mjs                  writes both files (run it after changing the
//                                                          base or a fragment; npm run gen:validator)
//   node scripts/gen-config-validator.mjs --stdout         prints the validator's code instead
//   node scripts/gen-config-validator.mjs --schema-stdout  prints the assembled schema instead
//                                     (test/config/validator-generated.test.ts compares both with the committed files)
//
// A driver's fragment: { driver, aliases, section?: { name, schema }, pipelineConfig, definitions }. Its
// section goes under the top-level properties (after `server`), `driver` and `aliases` into the
// pipeline's `driver` enum, pipelineConfig into an if/then on `driver` in definitions.pipeline.allOf,
// its definitions beside the base's (names must not clash). Name, aliases and section must match
// the driver's descriptor in the registry.
//
// The ajv options are the ones the daemon compiled with before; change them here only.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv, _ } from 'ajv';
import standaloneCode from 'ajv/dist/standalone/index.js';
import { tsImport } from 'tsx/esm/api';

const root = new URL('../', import.meta.url);
export const SCHEMA_FILE = fileURLToPath(new URL('schemas/config.schema.json', root));
const BASE_FILE = fileURLToPath(new URL('src/config/schema.base.json', root));
export const OUTPUT_FILE = fileURLToPath(new URL('src/config/config-validator.generated.ts', root));

// the generated module's own imports: the custom formats (the same objects ajv gets below) and a
// require for ajv's small runtime helpers (ajv/dist/runtime/*), which the generated code asks for
const FORMATS_NAME = 'configFormats';
const REQUIRE_NAME = 'ajvRuntimeRequire';

/** JSON with two-space indents, lists of scalars on one line (deterministic). */
function formatJson(value, indent = '') {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.every((v) => v === null || typeof v !== 'object')) return `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
    return `[\n${value.map((v) => inner + formatJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value);
    if (keys.length === 0) return '{}';
    return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${formatJson(value[k], inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

/** The assembled schema (an object), from the base and the registered drivers' fragments. */
export async function assembleConfigSchema() {
  const base = JSON.parse(readFileSync(BASE_FILE, 'utf8'));
  const { DRIVERS } = await tsImport('../src/drivers/registry.ts', import.meta.url);
  const pipeline = base.definitions.pipeline;
  const sections = {};
  const names = [];
  const described = [];
  for (const d of DRIVERS) {
    const file = fileURLToPath(new URL(`src/drivers/${d.name}/schema.json`, root));
    const f = JSON.parse(readFileSync(file, 'utf8'));
    const mismatch = (what, a, b) => {
      if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`gen-config-validator: ${file}: ${what} ${JSON.stringify(a)} differs from the descriptor's ${JSON.stringify(b)}`);
    };
    mismatch('driver', f.driver, d.name);
    mismatch('aliases', f.aliases ?? [], [...d.aliases]);
    mismatch('section', f.section?.name, d.section?.name);
    if (f.section) sections[f.section.name] = f.section.schema;
    for (const [name, def] of Object.entries(f.definitions ?? {})) {
      if (name in base.definitions) throw new Error(`gen-config-validator: ${file}: definition ${name} is defined twice`);
      base.definitions[name] = def;
    }
    const own = [f.driver, ...(f.aliases ?? [])];
    names.push(...own);
    described.push(f.aliases?.length ? `${f.driver} (alias ${f.aliases.join(', ')})` : f.driver);
    pipeline.allOf.push({ if: { properties: { driver: { enum: own } }, required: ['driver'] }, then: { properties: { config: f.pipelineConfig } } });
  }
  pipeline.properties.driver.enum = names;
  pipeline.properties.driver.description = `The driver: ${described.join(', ')}.`;
  // the drivers' sections after `server`, in registry order
  const properties = {};
  for (const [key, value] of Object.entries(base.properties)) {
    properties[key] = value;
    if (key === 'server') Object.assign(properties, sections);
  }
  base.properties = properties;
  base.$comment = 'Generated by scripts/gen-config-validator.mjs from src/config/schema.base.json and src/drivers/*/schema.json: edit those, then run npm run gen:validator.';
  return base;
}

/** The assembled schema as the text of schemas/config.schema.json. */
export async function configSchemaText() {
  return `${formatJson(await assembleConfigSchema())}\n`;
}

/** The generated module's text (deterministic: the same schema and ajv give the same text). */
export async function generateConfigValidator() {
  const schema = await assembleConfigSchema();
  // src/config/formats.ts, through tsx, so this runs with plain `node` and from the tests alike
  const { configFormats } = await tsImport('../src/config/formats.ts', import.meta.url);
  // coerceTypes: like RoadRunner's weakly typed decoding, `prefetch: "16"` is 16 and `token: 12345` the
  // string "12345" (a token from ${VAR} may be all digits); what cannot be converted is still an error.
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    coerceTypes: true,
    verbose: true,
    allowUnionTypes: true,
    strictTypes: false,
    strictRequired: false,
    // formats: the generated code reads each format from this expression (the import of FORMATS_NAME below)
    code: { source: true, esm: true, lines: true, formats: _`configFormats` },
  });
  for (const [name, def] of Object.entries(configFormats)) ajv.addFormat(name, def);
  const validate = ajv.compile(schema);
  let code = standaloneCode(ajv, validate);
  // ajv emits `require("ajv/dist/runtime/...")` even for ESM output; route those through createRequire
  code = code.replaceAll('require("ajv/dist/runtime/', `${REQUIRE_NAME}("ajv/dist/runtime/`);
  const stray = code.match(/\brequire\(("[^"]*")?/);
  if (stray) throw new Error(`gen-config-validator: unexpected ${stray[0]} in the generated code`);
  code = code.replace(/^"use strict";\n?/, '');
  return [
    '// @ts-nocheck',
    '// Generated by scripts/gen-config-validator.mjs from schemas/config.schema.json; do not edit.',
    '// After changing src/config/schema.base.json or a src/drivers/*/schema.json run `node scripts/gen-config-validator.mjs` (npm run gen:validator);',
    '// test/config/validator-generated.test.ts fails while this file is out of date.',
    "import { createRequire } from 'node:module';",
    `import { ${FORMATS_NAME} } from './formats.js';`,
    '',
    `const ${REQUIRE_NAME} = createRequire(import.meta.url);`,
    code.trimEnd(),
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  if (process.argv.includes('--schema-stdout')) {
    process.stdout.write(await configSchemaText());
  } else if (process.argv.includes('--stdout')) {
    process.stdout.write(await generateConfigValidator());
  } else {
    const schema = await configSchemaText();
    writeFileSync(SCHEMA_FILE, schema);
    console.log(`wrote ${SCHEMA_FILE} (${schema.length} chars)`);
    const code = await generateConfigValidator();
    writeFileSync(OUTPUT_FILE, code);
    console.log(`wrote ${OUTPUT_FILE} (${code.length} chars)`);
  }
}
