// TLS for the broker connections (amqps://, NATS over TLS), shared by the AMQP and nats drivers: a failed
// handshake said in one line that names the cause (Node's and OpenSSL's codes are not self-explanatory,
// and a refused client certificate otherwise surfaces as a bare read error), the SNI name, the
// insecure_skip_verify warning, and the `tls` files read into Node's TLS options.

import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import type { TlsConfig } from '../config/types.js';
import type { Logger } from '../observability/logger.js';
import { JobrunnerError, errorMessage } from '../shared/errors.js';

const NOT_TRUSTED = "the broker's certificate is not signed by a CA in tls.root_ca";

const REASONS: Record<string, (host: string) => string> = {
  SELF_SIGNED_CERT_IN_CHAIN: () => NOT_TRUSTED,
  DEPTH_ZERO_SELF_SIGNED_CERT: () => "the broker's certificate is self-signed and not in tls.root_ca",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: () => NOT_TRUSTED,
  UNABLE_TO_GET_ISSUER_CERT: () => NOT_TRUSTED,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: () => NOT_TRUSTED,
  CERT_SIGNATURE_FAILURE: () => NOT_TRUSTED,
  CERT_HAS_EXPIRED: () => "the broker's certificate has expired",
  CERT_NOT_YET_VALID: () => "the broker's certificate is not valid yet",
  ERR_TLS_CERT_ALTNAME_INVALID: (host) => `the broker's certificate is not for ${host}`,
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: () => 'the broker requires a client certificate (set tls.cert and tls.key)',
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: () => 'the broker refused the handshake (does it require a client certificate? set tls.cert and tls.key)',
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: () => "the broker does not trust the client certificate's CA",
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: () => 'the broker rejected the client certificate',
  ERR_SSL_TLSV1_ALERT_ACCESS_DENIED: () => 'the broker rejected the client certificate',
  ERR_SSL_SSLV3_ALERT_CERTIFICATE_EXPIRED: () => 'the broker says the client certificate has expired',
  ERR_SSL_WRONG_VERSION_NUMBER: () => 'the port does not speak TLS (amqps:// to a plain AMQP port?)',
  ERR_SSL_PACKET_LENGTH_TOO_LONG: () => 'the port does not speak TLS (amqps:// to a plain AMQP port?)',
};

/** the alerts a server answers a missing client certificate with: under TLS 1.3 certificate_required, under 1.2 (nats-server) bad_certificate or handshake_failure */
const NO_CLIENT_CERT = new Set(['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE']);

/**
 * "TLS: <cause> (<code>)" when err (or an error in its `cause` chain: clients wrap the socket's) is a
 * TLS failure, else undefined. `clientCert: false` says no client certificate was configured: a refusal
 * is then named as the missing certificate.
 */
export function tlsFailure(err: unknown, host: string, o: { clientCert?: boolean } = {}): string | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code !== 'string') continue;
    if (o.clientCert === false && NO_CLIENT_CERT.has(code)) return `TLS: the broker requires a client certificate (set tls.cert and tls.key) (${code})`;
    const reason = REASONS[code];
    if (reason !== undefined) return `TLS: ${reason(host)} (${code})`;
    if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /CERT/.test(code)) return `TLS: ${errorMessage(e).split('\n')[0]} (${code})`;
  }
  return undefined;
}

/** The SNI name for a host: none for an IP address (RFC 6066; Node warns). */
export function tlsServername(host: string): string | undefined {
  return host === '' || isIP(host) !== 0 ? undefined : host;
}

/**
 * One warning at start when certificates are not verified on a TLS connection: one of `urls` is
 * amqps://, or `usesTls` says so (a NATS client takes TLS whenever the server asks for it).
 */
export function warnInsecure(logger: Logger, section: string, tls: { insecureSkipVerify: boolean } | undefined, urls: readonly string[], usesTls = (url: string) => url.startsWith('amqps:')): void {
  if (!tls?.insecureSkipVerify || !urls.some(usesTls)) return;
  logger.warn(`${section}.tls.insecure_skip_verify is true: the broker's certificate is not verified, anyone on the path can read and change the traffic (for tests only)`);
}

/** A `tls` section as Node's TLS options take it: the files' contents, and whether to verify the broker. */
export interface TlsClientOptions {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized: boolean;
}

/** Node's TLS options from a `tls` section: the files read (a missing one is E_BROKER_CONNECT naming the key), rejectUnauthorized. */
export async function tlsClientOptions(tls: TlsConfig | undefined, section: string): Promise<TlsClientOptions> {
  const out: TlsClientOptions = { rejectUnauthorized: !(tls?.insecureSkipVerify ?? false) };
  const read = async (key: string, path: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new JobrunnerError('E_BROKER_CONNECT', `cannot read ${section}.tls.${key} (${path}): ${(err as { code?: string }).code ?? errorMessage(err)}`, { cause: err });
    }
  };
  if (tls?.rootCa !== undefined) out.ca = [await read('root_ca', tls.rootCa)];
  if (tls?.cert !== undefined) out.cert = await read('cert', tls.cert);
  if (tls?.key !== undefined) out.key = await read('key', tls.key);
  return out;
}
