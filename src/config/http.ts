// The control API's address: loopback unless told otherwise, and never on another interface without a
// token unless the file opts in (http.allow_unauthenticated), because pause, resume and push are on it.

import { JobrunnerError } from '../shared/errors.js';
import { deepFreeze } from './normalize.js';
import type { Config, HttpConfig } from './types.js';

/** true for 127.0.0.0/8, ::1 and localhost (and for '' / off: no server) */
export function isLoopbackAddress(address: string): boolean {
  if (address === '' || address === 'off') return true;
  const m = /^(?:\[([^\]]+)\]|([^:]*)):\d+$/.exec(address.trim());
  const host = (m?.[1] ?? m?.[2] ?? '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** why this http section may not be served, or undefined when it may */
export function exposureProblem(http: Pick<HttpConfig, 'address' | 'token' | 'allowUnauthenticated'>): string | undefined {
  if (isLoopbackAddress(http.address) || (http.token ?? '') !== '' || http.allowUnauthenticated) return undefined;
  return (
    `${http.address} is reachable from other hosts and no http.token is set: anyone who reaches it could pause, resume or push. ` +
    'Set http.token, bind 127.0.0.1, or set http.allow_unauthenticated: true to allow it'
  );
}

/** `serve --http-address` / JOBRUNNER_HTTP_ADDRESS: the config with another control address, checked the same way */
export function withHttpAddress(config: Config, address: string): Config {
  const http: HttpConfig = { ...config.http, address };
  const problem = exposureProblem(http);
  if (problem !== undefined) throw new JobrunnerError('E_USAGE', `--http-address ${problem}`);
  return deepFreeze({ ...config, http });
}
