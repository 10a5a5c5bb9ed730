// The sqs driver (Amazon SQS and SQS-compatible servers, @aws-sdk/client-sqs). See docs/drivers/sqs.md.
export { createSqsConnection, SqsConnection, type SqsConnectionOptions } from './connection.js';
export { normalizeSqsOptions, normalizeSqsSection, type SqsPipelineOptions, type SqsSettings } from './options.js';
