// Private RabbitMQ nodes for the tests that must stop, restart, alarm or reconfigure a broker: each node
// has its own name, AMQP port, distribution port, epmd (started here, on its own port), cookie, config,
// plugins file, data and log folders, so the shared brokers (3.10 on :5672, 4.0 on :5673) are never
// touched. RabbitMQ 3.10 runs from Debian's package; 4.0 runs the same way inside the chroot that
// scripts/test-servers.sh builds (its folders live under the chroot's /tmp). Optional: a TLS listener, and a
// cluster (nodes sharing one epmd and cookie, joined with join_cluster).
//
// Every process started here is a child of the test process and is killed when it exits, also when a
// test fails or the runner is interrupted; remove() stops the node and deletes its folders.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { basename, join } from 'node:path';
import { freePort } from './faults.js';

export type RabbitVersion = 3 | 4;

// the Debian 13 chroot with RabbitMQ 4.0 that scripts/test-servers.sh (or ../shared/brokers/up) builds
const CHROOT =
  process.env['JOBRUNNER_RABBITMQ4_CHROOT'] ??
  [join(process.env['JOBRUNNER_TEST_SERVERS_ROOT'] ?? '/var/cache/jobrunner-test-servers', 'trixie'), '/var/cache/jobrunner-brokers/trixie'].find((d) => existsSync(join(d, 'usr/lib/rabbitmq/bin/rabbitmq-server'))) ??
  '/var/cache/jobrunner-test-servers/trixie';
const RABBIT_BIN = '/usr/lib/rabbitmq/bin';
const PATH = '/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin';

/** Why private nodes of this version cannot run here, or false. */
export function privateNodeUnavailable(version: RabbitVersion): string | false {
  if (version === 3) {
    return existsSync(join(RABBIT_BIN, 'rabbitmq-server')) ? false : 'RabbitMQ 3.10 (Debian rabbitmq-server) is not installed: run scripts/test-servers.sh';
  }
  if (process.getuid?.() !== 0) return 'private RabbitMQ 4.0 nodes run in a chroot: needs root';
  if (!existsSync(join(CHROOT, RABBIT_BIN, 'rabbitmq-server'))) return `no RabbitMQ 4.0 chroot at ${CHROOT}: run scripts/test-servers.sh`;
  if (!existsSync(join(CHROOT, 'proc/self'))) return `${CHROOT}/proc is not mounted: run scripts/test-servers.sh`;
  return false;
}

/** Skips (or, under CI=true, fails) when private nodes of these versions cannot run. */
export function privateNodesSkip(...versions: RabbitVersion[]): string | false {
  for (const v of versions) {
    const why = privateNodeUnavailable(v);
    if (why && process.env['CI'] === 'true') throw new Error(`${why} (CI=true)`);
    if (why) return why;
  }
  return false;
}

export interface NodeTls {
  /** PEM files on this machine; copied into the node's folder */
  cacertfile: string;
  certfile: string;
  keyfile: string;
  /** verify_peer and fail_if_no_peer_cert = true: a client certificate signed by cacertfile is required */
  requireClientCert?: boolean;
}

export interface RabbitNodeOptions {
  version: RabbitVersion;
  /** a short word for the node name and folder (default "node") */
  label?: string;
  tls?: NodeTls;
  /** extra rabbitmq.conf lines */
  conf?: string[];
  /** join this cluster (its first node must be started already); see startCluster */
  cluster?: { epmdPort: number; cookie: string; join?: string };
}

const live = new Set<RabbitNode>();

/** what a node's startup log says when one of its ports was taken meanwhile */
const PORT_TAKEN = /dist_port_already_used|eaddrinuse/i;
let exitHook = false;
function killAllOnExit(): void {
  if (exitHook) return;
  exitHook = true;
  process.once('exit', () => {
    for (const n of live) n.killNow();
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      for (const n of live) n.killNow();
      process.exit(130);
    });
  }
}

function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { env, timeout: timeoutMs, encoding: 'utf8', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${basename(args.find((a) => a.includes('rabbitmq')) ?? file)} ${args.slice(-3).join(' ')}: ${err.message}\n${stdout}${stderr}`.trim()));
      else resolve(stdout);
    });
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** One private RabbitMQ node. start() it, then use url / ctl(); remove() at the end (idempotent). */
export class RabbitNode {
  readonly version: RabbitVersion;
  readonly name: string;
  /** the folder on this machine (inside the chroot for 4.0) */
  readonly dir: string;
  /** the same folder as the node sees it */
  private readonly nodeDir: string;
  port = 0;
  tlsPort = 0;
  private distPort = 0;
  epmdPort = 0;
  cookie: string;
  private epmd: ChildProcess | undefined;
  private ownsEpmd = false;
  private server: ChildProcess | undefined;
  private beamPid: number | undefined;
  private removed = false;

  private constructor(private readonly options: RabbitNodeOptions) {
    this.version = options.version;
    const label = (options.label ?? 'node').replace(/[^a-z0-9-]/gi, '');
    this.name = `jr-${label}-${randomUUID().slice(0, 6)}@localhost`;
    const base = options.version === 4 ? join(CHROOT, 'tmp') : '/tmp';
    this.dir = mkdtempSync(join(base, `jobrunner-rabbit${options.version}-${label}-`));
    chmodSync(this.dir, 0o755);
    this.nodeDir = options.version === 4 ? this.dir.slice(CHROOT.length) : this.dir;
    this.cookie = options.cluster?.cookie ?? randomBytes(16).toString('hex').toUpperCase();
  }

  /**
   * Starts a node and waits until it is fully booted. Its ports are free when chosen, but another test's
   * connection can take one (they come from the same ephemeral range) before the node binds it seconds
   * later: a node that fails on a port in use starts again on new ports (new name and folder), up to 3 times.
   */
  static async start(options: RabbitNodeOptions): Promise<RabbitNode> {
    const why = privateNodeUnavailable(options.version);
    if (why) throw new Error(why);
    killAllOnExit();
    for (let attempt = 1; ; attempt++) {
      const n = new RabbitNode(options);
      live.add(n);
      try {
        await n.prepare();
        await n.boot();
        if (options.cluster?.join) await n.joinCluster(options.cluster.join);
        return n;
      } catch (err) {
        const log = n.startupLog();
        await n.remove();
        if (attempt < 3 && PORT_TAKEN.test(log)) continue;
        throw new Error(`private RabbitMQ ${options.version} node ${n.name} did not start: ${(err as Error).message}\n${log}`);
      }
    }
  }

  /**
   * A node with a TLS listener (tlsUrl()) serving `certs.server`, signed by `certs.ca` (test/helpers/tls-certs.ts),
   * beside its plain one (url); requireClientCert: only clients with a certificate signed by `certs.ca`.
   */
  static startTls(version: RabbitVersion, certs: { ca: string; server: { cert: string; key: string } }, o: { label?: string; requireClientCert?: boolean } = {}): Promise<RabbitNode> {
    const tls: NodeTls = { cacertfile: certs.ca, certfile: certs.server.cert, keyfile: certs.server.key, requireClientCert: o.requireClientCert ?? false };
    return RabbitNode.start({ version, label: o.label ?? (o.requireClientCert ? 'mtls' : 'tls'), tls });
  }

  /** amqp://guest:guest@127.0.0.1:<port> */
  get url(): string {
    return `amqp://guest:guest@127.0.0.1:${this.port}`;
  }

  /** amqps://guest:guest@localhost:<tls port> (the server certificate names localhost and 127.0.0.1) */
  tlsUrl(host = 'localhost'): string {
    return `amqps://guest:guest@${host}:${this.tlsPort}`;
  }

  get running(): boolean {
    return alive(this.beamPid);
  }

  private async prepare(): Promise<void> {
    this.port = await freePort();
    this.distPort = await freePort();
    if (this.options.tls) this.tlsPort = await freePort();
    for (const d of ['mnesia', 'log', 'home']) mkdirSync(join(this.dir, d), { recursive: true });
    const cookie = join(this.dir, 'home/.erlang.cookie');
    writeFileSync(cookie, this.cookie);
    chmodSync(cookie, 0o400);
    writeFileSync(join(this.dir, 'env.conf'), '');
    // 3.10 needs its AMQP 1.0 plugin; 4.0 speaks AMQP 1.0 natively
    writeFileSync(join(this.dir, 'enabled_plugins'), this.version === 3 ? '[rabbitmq_amqp1_0].\n' : '[].\n');
    const conf = [`listeners.tcp.default = 127.0.0.1:${this.port}`, 'loopback_users = none', 'log.console = false', 'log.file.level = info'];
    const tls = this.options.tls;
    if (tls) {
      for (const [k, f] of [['cacertfile', tls.cacertfile], ['certfile', tls.certfile], ['keyfile', tls.keyfile]] as const) {
        const to = join(this.dir, `${k}.pem`);
        copyFileSync(f, to);
        chmodSync(to, 0o644);
        conf.push(`ssl_options.${k} = ${join(this.nodeDir, `${k}.pem`)}`);
      }
      conf.push(`listeners.ssl.default = 127.0.0.1:${this.tlsPort}`);
      conf.push(`ssl_options.verify = ${tls.requireClientCert ? 'verify_peer' : 'verify_none'}`);
      conf.push(`ssl_options.fail_if_no_peer_cert = ${tls.requireClientCert ? 'true' : 'false'}`);
    }
    conf.push(...(this.options.conf ?? []));
    writeFileSync(join(this.dir, 'rabbitmq.conf'), conf.join('\n') + '\n');
    await this.startEpmd();
  }

  /** its own epmd, so nothing registers with the shared brokers' epmd (a cluster shares its first node's) */
  private async startEpmd(): Promise<void> {
    if (this.options.cluster) {
      this.epmdPort = this.options.cluster.epmdPort;
      return;
    }
    this.epmdPort = await freePort();
    this.ownsEpmd = true;
    this.epmd = this.spawnIn(['epmd', '-port', String(this.epmdPort), '-address', '127.0.0.1'], {}, 'ignore');
    for (let i = 0; i < 200 && !(await portOpen(this.epmdPort)); i++) await sleep(25);
  }

  private env(): Record<string, string> {
    const d = this.nodeDir;
    return {
      PATH,
      LANG: 'C.UTF-8',
      HOME: join(d, 'home'),
      RABBITMQ_CONF_ENV_FILE: join(d, 'env.conf'),
      RABBITMQ_NODENAME: this.name,
      RABBITMQ_NODE_PORT: String(this.port),
      RABBITMQ_DIST_PORT: String(this.distPort),
      ERL_EPMD_PORT: String(this.epmdPort),
      ERL_EPMD_ADDRESS: '127.0.0.1',
      RABBITMQ_MNESIA_BASE: join(d, 'mnesia'),
      RABBITMQ_LOG_BASE: join(d, 'log'),
      RABBITMQ_ENABLED_PLUGINS_FILE: join(d, 'enabled_plugins'),
      RABBITMQ_CONFIG_FILE: join(d, 'rabbitmq.conf'),
      RABBITMQ_PID_FILE: join(d, 'pid'),
      RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    };
  }

  /** argv run on this machine (3.10) or inside the chroot (4.0), with a clean environment */
  private argv(args: string[], env: Record<string, string>): [string, string[]] {
    const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
    if (this.version === 4) return ['/usr/sbin/chroot', [CHROOT, '/usr/bin/env', '-i', ...envArgs, ...args]];
    return ['/usr/bin/env', ['-i', ...envArgs, ...args]];
  }

  private spawnIn(args: string[], env: Record<string, string>, out: 'ignore' | number): ChildProcess {
    const [file, argv] = this.argv(args, { PATH, ...env });
    const child = spawn(file, argv, { stdio: ['ignore', out, out] });
    child.on('error', () => undefined);
    return child;
  }

  private async boot(): Promise<void> {
    rmSync(join(this.dir, 'pid'), { force: true });
    const out = openSync(join(this.dir, 'startup.log'), 'a');
    this.server = this.spawnIn([join(RABBIT_BIN, 'rabbitmq-server')], this.env(), out);
    closeSync(out);
    const server = this.server;
    let exited = false;
    server.once('exit', () => (exited = true));
    const pidFile = join(this.dir, 'pid');
    for (let i = 0; ; i++) {
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (pid > 0) {
          this.beamPid = pid;
          break;
        }
      }
      if (exited) throw new Error('rabbitmq-server exited during start');
      if (i > 2400) throw new Error('no pid file after 60 s');
      await sleep(25);
    }
    await this.ctl(['await_startup', '--timeout', '120'], 130_000);
  }

  /** rabbitmqctl (or another CLI: `rabbitmq-diagnostics`, `rabbitmq-queues`) against this node */
  async ctl(args: string[], timeoutMs = 60_000, tool = 'rabbitmqctl'): Promise<string> {
    const env = { PATH, LANG: 'C.UTF-8', HOME: join(this.nodeDir, 'home'), RABBITMQ_CONF_ENV_FILE: join(this.nodeDir, 'env.conf'), ERL_EPMD_PORT: String(this.epmdPort) };
    const [file, argv] = this.argv([join(RABBIT_BIN, tool), '-n', this.name, ...args], env);
    return run(file, argv, {}, timeoutMs);
  }

  private async joinCluster(first: string): Promise<void> {
    await this.ctl(['stop_app']);
    await this.ctl(['join_cluster', first]);
    await this.ctl(['start_app'], 120_000);
    await this.ctl(['await_startup', '--timeout', '120'], 130_000);
  }

  /** Stops the node gracefully (rabbitmqctl stop) and waits until its process is gone. Data is kept. */
  async stop(): Promise<void> {
    if (!this.running) return;
    await this.ctl(['stop'], 90_000).catch(() => this.kill());
    await this.waitGone();
  }

  /** SIGKILL: the node dies as on a crash or power loss. */
  async kill(): Promise<void> {
    if (this.beamPid && alive(this.beamPid)) process.kill(this.beamPid, 'SIGKILL');
    await this.waitGone();
  }

  private async waitGone(): Promise<void> {
    for (let i = 0; i < 2400 && alive(this.beamPid); i++) await sleep(25);
    const server = this.server;
    if (server && server.exitCode === null && server.signalCode === null) {
      await bounded(new Promise((r) => server.once('exit', r)), 10_000);
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
    }
    this.beamPid = undefined;
    this.server = undefined;
  }

  /** Starts a stopped node again on the same ports, name and data. */
  async restart(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is running`);
    await this.boot();
  }

  async closeAllConnections(reason = 'fault test'): Promise<void> {
    await this.ctl(['close_all_connections', reason]);
  }

  /** raises (fraction 0: every publisher blocked at once) or clears the memory alarm */
  async memoryAlarm(on: boolean): Promise<void> {
    await this.ctl(['set_vm_memory_high_watermark', on ? '0' : '0.4']);
  }

  /** the tail of the node's startup output and log, for failure messages */
  startupLog(): string {
    const parts: string[] = [];
    for (const f of [join(this.dir, 'startup.log'), join(this.dir, 'log', `${this.name}.log`)]) {
      try {
        parts.push(readFileSync(f, 'utf8').slice(-3000));
      } catch {
        // not written
      }
    }
    return parts.join('\n');
  }

  /** synchronous last resort (process exit): SIGKILL the node, its script and its epmd, delete the folder */
  killNow(): void {
    for (const pid of [this.beamPid, this.server?.pid, this.ownsEpmd ? this.epmd?.pid : undefined]) {
      if (pid && alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Stops the node (SIGKILL if it will not stop), its epmd, and deletes its folders. Never throws. */
  async remove(): Promise<void> {
    if (this.removed) return;
    this.removed = true;
    try {
      if (this.running) await this.ctl(['stop'], 30_000).catch(() => undefined);
      if (this.running) await this.kill();
      await this.waitGone();
    } catch {
      // killNow below
    }
    if (this.ownsEpmd) await this.stopEpmd();
    this.killNow();
  }

  private async stopEpmd(): Promise<void> {
    const epmd = this.epmd;
    if (!epmd || epmd.exitCode !== null || epmd.signalCode !== null) return;
    // chroot execs epmd, so the child's pid is epmd's own
    epmd.kill('SIGTERM');
    await bounded(new Promise((r) => epmd.once('exit', r)), 5000);
  }
}

/** A cluster of `size` private nodes of one version, joined to the first; remove() removes them all. */
export class RabbitCluster {
  private constructor(readonly nodes: RabbitNode[]) {}

  static async start(version: RabbitVersion, size: number, conf: string[] = []): Promise<RabbitCluster> {
    const first = await RabbitNode.start({ version, label: 'c1', conf });
    const nodes = [first];
    try {
      for (let i = 2; i <= size; i++) {
        nodes.push(await RabbitNode.start({ version, label: `c${i}`, conf, cluster: { epmdPort: first.epmdPort, cookie: first.cookie, join: first.name } }));
      }
    } catch (err) {
      await new RabbitCluster(nodes).remove();
      throw err;
    }
    return new RabbitCluster(nodes);
  }

  get urls(): string[] {
    return this.nodes.map((n) => n.url);
  }

  /** the node whose name is `name` (e.g. a queue's leader from rabbitmq-queues) */
  node(name: string): RabbitNode | undefined {
    return this.nodes.find((n) => n.name === name);
  }

  async remove(): Promise<void> {
    // the first node owns the shared epmd: remove it last
    for (const n of [...this.nodes].reverse()) await n.remove();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** waits for p, at most ms (the timer does not hold the process open) */
async function bounded(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p, new Promise((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
