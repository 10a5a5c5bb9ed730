// TLS for the broker connections (amqps://), shared by the AMQP drivers: a failed handshake said in one
// line that names the cause (Node's and OpenSSL's codes are not self-explanatory, and a refused client
// certificate otherwise surfaces as a bare read error), the SNI name, and the insecure_skip_verify warning.

import { isIP } from 'node:net';
import type { Logger } from '../observability/logger.js';
import { errorMessage } from '../shared/errors.js';

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

/** "TLS: <cause> (<code>)" when err is a TLS failure, else undefined. */
export function tlsFailure(err: unknown, host: string): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  const reason = REASONS[code];
  if (reason !== undefined) return `TLS: ${reason(host)} (${code})`;
  if (code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_') || /CERT/.test(code)) return `TLS: ${errorMessage(err).split('\n')[0]} (${code})`;
  return undefined;
}

/** The SNI name for a host: none for an IP address (RFC 6066; Node warns). */
export function tlsServername(host: string): string | undefined {
  return host === '' || isIP(host) !== 0 ? undefined : host;
}

/** One warning at start when certificates are not verified on an amqps:// connection. */
export function warnInsecure(logger: Logger, section: string, tls: { insecureSkipVerify: boolean } | undefined, urls: readonly string[]): void {
  if (!tls?.insecureSkipVerify || !urls.some((u) => u.startsWith('amqps:'))) return;
  logger.warn(`${section}.tls.insecure_skip_verify is true: the broker's certificate is not verified, anyone on the path can read and change the traffic (for tests only)`);
}
