// Regenerates the key reference in docs/configuration.md from schemas/config.schema.json.
//   node --import tsx scripts/gen-config-docs.ts
import { readFileSync, writeFileSync } from 'node:fs';
import { configSchema } from '../src/config/schema.js';
import { withReference } from '../src/config/reference.js';

const path = 'docs/configuration.md';
writeFileSync(path, withReference(readFileSync(path, 'utf8'), configSchema()));
