// The custom JSON Schema formats of schemas/config.schema.json. The precompiled validator
// (config-validator.generated.ts) imports them at run time, and scripts/gen-config-validator.mjs hands
// the same definitions to ajv when it generates that code, so both sides agree.

import { parseDuration } from '../shared/duration.js';

/** A format definition as ajv takes it (`{type, validate}`), written out so ajv is not imported here. */
export interface ConfigFormat {
  type: 'string';
  validate: (value: string) => boolean;
}

export const configFormats: Readonly<Record<'duration', ConfigFormat>> = {
  duration: { type: 'string', validate: (s: string) => parseDuration(s) !== undefined },
};
