#!/usr/bin/env node
// The command line (SPEC §2): the only place with process.exit, signal handlers and console output.
// Exit status: 0 success, 1 runtime failure, 2 bad usage or bad configuration.

import { existsSync, readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { Config, HttpConfig } from '../config/types.js';
import { JobrunnerError, errorMessage, redactSecrets } from '../shared/errors.js';
import { describeDrivers } from '../drivers/registry.js';
import { runServe } from './serve.js';
import { runPush, runStatus, runControl, runWorkers, runReset, type PushCliOptions } from './control.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

/** the files looked for in the current folder, in turn, when neither -c nor $JOBRUNNER_CONFIG names one */
export const DEFAULT_CONFIG_FILES = ['jobs.yaml', '.rr.yaml'] as const;

/**
 * -c, then $JOBRUNNER_CONFIG, then ./jobs.yaml, then ./.rr.yaml (RoadRunner's default name); undefined
 * when none is there (serve then runs the embedded demo)
 */
export function resolveConfigPath(option: string | undefined): string | undefined {
  if (option) return option;
  const env = process.env['JOBRUNNER_CONFIG'];
  if (env) return env;
  return DEFAULT_CONFIG_FILES.find((f) => existsSync(f));
}

const NO_CONFIG = 'no configuration: pass -c FILE, set JOBRUNNER_CONFIG, or put jobs.yaml (or .rr.yaml) in the current folder';

async function loadFrom(option: string | undefined, allowEmbedded: boolean): Promise<Config> {
  const config = await import('../config/index.js');
  const path = resolveConfigPath(option);
  if (path === undefined) {
    if (allowEmbedded) return config.embeddedDefaultConfig();
    throw new JobrunnerError('E_USAGE', NO_CONFIG);
  }
  return config.loadConfig(path, process.env);
}

function program(): Command {
  const cmd = new Command('jobrunner')
    .description(`Runs RoadRunner-style jobs pipelines (drivers: ${describeDrivers()}) on long-lived workers in any language.`)
    .version(pkg.version, '-V, --version')
    .showHelpAfterError('(run jobrunner --help for usage)')
    .exitOverride();

  cmd
    .command('serve')
    .description('run the daemon until SIGTERM/SIGINT')
    .option('-c, --config <file>', 'configuration file (default: $JOBRUNNER_CONFIG, then ./jobs.yaml, then ./.rr.yaml, then the embedded in-process demo)')
    .option('--http-address <host:port>', 'the control API\'s address, over http.address (default: $JOBRUNNER_HTTP_ADDRESS)')
    .action(async (opts: { config?: string; httpAddress?: string }) => {
      let config = await loadFrom(opts.config, true);
      const address = opts.httpAddress ?? (process.env['JOBRUNNER_HTTP_ADDRESS'] || undefined);
      if (address !== undefined) {
        const { withHttpAddress } = await import('../config/index.js');
        config = withHttpAddress(config, address);
      }
      process.exitCode = await runServe(config);
      // stopped (within destroy_timeout + the shutdown budget): a socket whose close was cut short, or a
      // worker pipe, must not keep the process alive past it
      oneShot = true;
    });

  cmd
    .command('validate')
    .description('check a configuration file (schema and cross-references) and exit')
    .option('-c, --config <file>', 'configuration file (default: $JOBRUNNER_CONFIG, then ./jobs.yaml, then ./.rr.yaml)')
    .action(async (opts: { config?: string }) => {
      const { checkConfig, formatProblem } = await import('../config/index.js');
      const path = resolveConfigPath(opts.config);
      if (path === undefined) throw new JobrunnerError('E_USAGE', NO_CONFIG);
      const result = checkConfig(path, process.env);
      if (result.problems.length > 0) {
        for (const p of result.problems) process.stderr.write(`${formatProblem(p)}\n`);
        process.stderr.write(`${path}: ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}\n`);
        process.exitCode = 2;
        return;
      }
      for (const w of result.warnings) process.stderr.write(`${formatProblem(w).replace(/^(\S+) /, '$1 warning: ')}\n`);
      const n = result.config?.pipelines.length ?? 0;
      const warned = result.warnings.length === 0 ? '' : `, ${result.warnings.length} warning${result.warnings.length === 1 ? '' : 's'}`;
      process.stdout.write(`${path}: ok (${n} pipeline${n === 1 ? '' : 's'}${warned})\n`);
    });

  cmd
    .command('push')
    .description('publish one job through the pipeline (straight to its broker; an in-process pipeline, or with --address: through the running daemon)')
    .argument('<pipeline>', 'pipeline name')
    .argument('<job>', 'job name')
    .argument('[payload]', 'payload: JSON when it parses, else text (text that looks like JSON must parse); - reads stdin', 'null')
    .option('-c, --config <file>', 'configuration file')
    .option('--header <k=v>', 'a header (repeatable)', (v: string, prev: string[]) => [...prev, v], [] as string[])
    .option('--delay <seconds>', 'deliver after this many seconds', parseNumber)
    .option('--priority <n>', 'priority', parseNumber)
    .option('--id <id>', 'job id (default: a new UUID)')
    .option('--address <host:port>', "push through a running daemon's HTTP API")
    .option('--token <token>', 'bearer token for the HTTP API (default: $JOBRUNNER_TOKEN)')
    .option('--timeout <seconds>', 'give up connecting or waiting for the confirm after this long', parseNumber, 30)
    .option('--text', 'send the payload as a string, as given')
    .option('--json-payload', 'the payload must be JSON (an error when it does not parse)')
    .option('--json', 'print {id, pipeline} as JSON')
    .action(async (pipeline: string, job: string, payload: string, opts: PushCliOptions) => {
      // without -c and without a jobs.yaml, push targets the embedded default daemon (in-process pipeline "default")
      const config = opts.address ? undefined : await loadFrom(opts.config, true);
      oneShot = true;
      await runPush({ pipeline, job, payload, ...opts }, config);
    });

  cmd
    .command('status')
    .description('print the pipelines of a running daemon')
    .option('-c, --config <file>', 'take the address from this configuration')
    .option('--address <host:port>', 'the daemon HTTP address (default: http.address of -c, else 127.0.0.1:2114)')
    .option('--json', 'print JSON')
    .action(async (opts: { config?: string; address?: string; json?: boolean }) => {
      await runStatus({ address: await addressOf(opts), json: opts.json === true });
    });

  for (const verb of ['pause', 'resume'] as const) {
    cmd
      .command(verb)
      .description(verb === 'pause' ? 'ask a running daemon to stop consuming a pipeline' : 'ask a running daemon to consume a pipeline again')
      .argument('<pipeline>', 'pipeline name')
      .option('-c, --config <file>', 'take the address (and token) from this configuration')
      .option('--address <host:port>', 'the daemon HTTP address (default: http.address of -c, else 127.0.0.1:2114)')
      .option('--token <token>', 'bearer token (default: http.token of -c, else $JOBRUNNER_TOKEN)')
      .option('--json', 'print JSON')
      .action(async (pipeline: string, opts: { config?: string; address?: string; token?: string; json?: boolean }) => {
        const token = opts.token ?? (await tokenOf(opts));
        await runControl(verb, { pipeline, address: await addressOf(opts), json: opts.json === true, ...(token ? { token } : {}) });
      });
  }

  cmd
    .command('workers')
    .description("print every worker process of a running daemon (RoadRunner's rr workers)")
    .argument('[pipeline]', 'only this pipeline')
    .option('-c, --config <file>', 'take the address from this configuration')
    .option('--address <host:port>', 'the daemon HTTP address (default: http.address of -c, else 127.0.0.1:2114)')
    .option('--json', 'print JSON')
    .action(async (pipeline: string | undefined, opts: { config?: string; address?: string; json?: boolean }) => {
      await runWorkers({ address: await addressOf(opts), json: opts.json === true, ...(pipeline !== undefined ? { pipeline } : {}) });
    });

  cmd
    .command('reset')
    .description("restart a running daemon's workers one at a time, each after its jobs are done (RoadRunner's rr reset)")
    .argument('[pipeline]', 'only this pipeline (default: every pipeline)')
    .option('-c, --config <file>', 'take the address (and token) from this configuration')
    .option('--address <host:port>', 'the daemon HTTP address (default: http.address of -c, else 127.0.0.1:2114)')
    .option('--token <token>', 'bearer token (default: http.token of -c, else $JOBRUNNER_TOKEN)')
    .option('--json', 'print JSON')
    .action(async (pipeline: string | undefined, opts: { config?: string; address?: string; token?: string; json?: boolean }) => {
      const token = opts.token ?? (await tokenOf(opts));
      await runReset({ address: await addressOf(opts), json: opts.json === true, ...(pipeline !== undefined ? { pipeline } : {}), ...(token ? { token } : {}) });
    });

  cmd
    .command('schema')
    .description("print the configuration's JSON Schema (for editors: yaml-language-server)")
    .action(async () => {
      const { configSchema } = await import('../config/index.js');
      process.stdout.write(`${JSON.stringify(configSchema(), null, 2)}\n`);
    });

  cmd.addOption(new Option('--no-color', 'accepted for compatibility; output has no colour').hideHelp());
  return cmd;
}

function parseNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new JobrunnerError('E_USAGE', `${JSON.stringify(value)} is not a number`);
  return n;
}

/** the http section of -c, $JOBRUNNER_CONFIG, ./jobs.yaml or ./.rr.yaml, when one is there (nothing else is read) */
async function httpOf(opts: { config?: string }): Promise<HttpConfig | undefined> {
  const path = resolveConfigPath(opts.config);
  if (path === undefined) return undefined;
  const { loadHttpSection } = await import('../config/index.js');
  return loadHttpSection(path, process.env);
}

async function addressOf(opts: { config?: string; address?: string }): Promise<string> {
  if (opts.address) return opts.address;
  return (await httpOf(opts))?.address ?? '127.0.0.1:2114';
}

async function tokenOf(opts: { config?: string }): Promise<string | undefined> {
  if (opts.config) {
    const token = (await httpOf(opts))?.token;
    if (token) return token;
  }
  return process.env['JOBRUNNER_TOKEN'] || undefined;
}

function exitCodeOf(err: unknown): number {
  if (err instanceof JobrunnerError) return err.code.startsWith('E_CONFIG') || err.code === 'E_USAGE' ? 2 : 1;
  return 1;
}

/**
 * Set by a command that is done when its action returns (push, and serve once stopped): the process exits
 * then, even if a broker that blocks publishers never answered the connection's close (its socket would
 * keep the process alive past --timeout, or past the shutdown budget).
 */
let oneShot = false;

async function main(argv: string[]): Promise<void> {
  try {
    await program().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed the usage error (or help / version)
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    const code = err instanceof JobrunnerError ? err.code : 'E_INTERNAL';
    process.stderr.write(`jobrunner: ${errorMessage(err)} [${code}]\n`);
    if (err instanceof JobrunnerError) for (const line of err.details) process.stderr.write(`  ${redactSecrets(line)}\n`);
    else if (process.env['JOBRUNNER_DEBUG'] && err instanceof Error && err.stack) process.stderr.write(`${redactSecrets(err.stack)}\n`);
    process.exitCode = exitCodeOf(err);
  }
  if (oneShot) process.exit();
}

void main(process.argv);
