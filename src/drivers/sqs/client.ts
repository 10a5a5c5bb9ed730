// The AWS SDK client for the sqs driver, and how its errors read. Credentials come from the `sqs` section
// (key, secret, session_token) or, without them, the SDK's standard chain (environment, shared profile,
// web identity for Kubernetes, container and instance roles). Nothing here logs: secrets stay in the client.

import http from 'node:http';
import https from 'node:https';
import { SQSClient } from '@aws-sdk/client-sqs';
import { JobrunnerError, errorMessage, redactUrl } from '../../shared/errors.js';
import type { SqsSettings } from './options.js';

/** Signing needs a region even for an emulator: the one AWS's own tools use when none is set. */
const FALLBACK_REGION = 'us-east-1';

export function createSqsClient(settings: SqsSettings): SQSClient {
  const region = settings.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? (settings.endpoint !== undefined ? FALLBACK_REGION : undefined);
  // long polls hold a socket each: enough sockets for every pipeline's polls, settlements and publishes
  const agentOptions = { keepAlive: true, maxSockets: 256 };
  return new SQSClient({
    ...(region === undefined ? {} : { region }),
    ...(settings.endpoint === undefined ? {} : { endpoint: settings.endpoint }),
    ...(settings.key !== undefined && settings.secret !== undefined
      ? {
          credentials: {
            accessKeyId: settings.key,
            secretAccessKey: settings.secret,
            ...(settings.sessionToken === undefined ? {} : { sessionToken: settings.sessionToken }),
          },
        }
      : {}),
    requestHandler: {
      connectionTimeout: 10_000,
      // a long poll waits up to 20 s for messages
      requestTimeout: 60_000,
      httpAgent: new http.Agent(agentOptions),
      httpsAgent: new https.Agent(agentOptions),
    },
    maxAttempts: 3,
  });
}

/** The error's AWS code (QueueDoesNotExist, ReceiptHandleIsInvalid...) or '' for a network failure. */
export function awsCode(err: unknown): string {
  const e = err as { name?: unknown; Code?: unknown; $metadata?: { httpStatusCode?: number } } | null;
  if (e === null || typeof e !== 'object') return '';
  if (e.$metadata?.httpStatusCode === undefined) return '';
  if (typeof e.Code === 'string') return e.Code;
  return typeof e.name === 'string' ? e.name : '';
}

/** true when the server answered at all (an AWS error), false for a network or credentials failure. */
export function answered(err: unknown): boolean {
  return awsCode(err) !== '';
}

export function isMissingQueue(err: unknown): boolean {
  const c = awsCode(err);
  return c === 'QueueDoesNotExist' || c === 'AWS.SimpleQueueService.NonExistentQueue' || c === 'NonExistentQueue';
}

/** The receipt handle no longer holds the message (visibility ran out, deleted, or it moved on). */
export function isStaleHandle(err: unknown): boolean {
  const c = awsCode(err);
  return c === 'ReceiptHandleIsInvalid' || c === 'MessageNotInflight' || c === 'InvalidReceiptHandle' || c === 'AWS.SimpleQueueService.MessageNotInflight';
}

/** One line for logs and errors: the AWS code and message, or the network reason. Never a credential. */
export function describeError(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  const c = awsCode(err);
  const msg = errorMessage(err);
  if (c !== '') return msg.includes(c) ? msg : `${c}: ${msg}`;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'CredentialsProviderError') return `no AWS credentials: set sqs.key and sqs.secret, or provide them the standard AWS way (${msg})`;
  return msg;
}

/** Where the client points, for logs and status (the endpoint, else the region's AWS endpoint). */
export function describeTarget(settings: SqsSettings): string {
  if (settings.endpoint !== undefined) return redactUrl(settings.endpoint);
  return `sqs.${settings.region ?? process.env['AWS_REGION'] ?? process.env['AWS_DEFAULT_REGION'] ?? '<region from the AWS chain>'}.amazonaws.com`;
}

export function asError(code: 'E_PUBLISH' | 'E_BROKER_DECLARE' | 'E_STALE_DELIVERY' | 'E_BROKER_CONNECT', what: string, err: unknown): JobrunnerError {
  if (err instanceof JobrunnerError) return err;
  return new JobrunnerError(code, `${what}: ${describeError(err)}`, { cause: err });
}
