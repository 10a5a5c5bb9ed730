// A worker never outlives the daemon, whatever ends the daemon (SIGKILL included, where no code of ours
// runs): a small /bin/sh process, in its own process group, holds a pipe from the daemon and is told the
// process group of every worker as it starts and ends (each worker runs in its own group, see worker.ts).
// When the pipe closes (the daemon exited, normally or not) it SIGKILLs the groups still listed, so a
// `sh -c` wrapper's children die too. What the workers held goes back to the broker, which redelivers
// it (the connection died with the daemon). Linux and other POSIX systems; one process per daemon.

import { spawn, type ChildProcess } from 'node:child_process';

/** What the pool tells the reaper (an interface, so pools made in tests need none). */
export interface WorkerReaper {
  add(pgid: number): void;
  remove(pgid: number): void;
}

// "+PGID" adds, "-PGID" removes; at end of input every listed group is SIGKILLed. The list is a
// space-delimited string, edited with POSIX parameter expansion (no process per line).
const SCRIPT = `
trap '' HUP INT TERM USR1 USR2 PIPE
pgs=" "
while IFS= read -r line; do
  case "$line" in
    +*) pgs="$pgs\${line#+} " ;;
    -*) g="\${line#-}"; case "$pgs" in *" $g "*) pgs="\${pgs%% $g *} \${pgs#* $g }" ;; esac ;;
  esac
done
for g in $pgs; do kill -KILL "-$g" 2>/dev/null; done
`;

export class Reaper implements WorkerReaper {
  private proc: ChildProcess | undefined;

  /** starts the watcher process; a system without /bin/sh just has none (logged by the caller) */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const proc = spawn('/bin/sh', ['-c', SCRIPT], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
      proc.once('spawn', () => {
        this.proc = proc;
        // the daemon may exit while the reaper lives: it must not hold the event loop open
        proc.unref();
        (proc.stdin as unknown as { unref?: () => void } | null)?.unref?.();
        resolve();
      });
      proc.once('error', reject);
      proc.stdin?.on('error', () => undefined);
    });
  }

  add(pgid: number): void {
    this.send(`+${pgid}\n`);
  }

  remove(pgid: number): void {
    this.send(`-${pgid}\n`);
  }

  /** closes the pipe: the reaper kills what is still listed (nothing after a clean stop) and exits */
  stop(): void {
    const stdin = this.proc?.stdin;
    this.proc = undefined;
    if (stdin && !stdin.destroyed) stdin.end();
  }

  private send(line: string): void {
    const stdin = this.proc?.stdin;
    if (stdin && !stdin.destroyed && !stdin.writableEnded && Number.isInteger(Number(line.slice(1, -1)))) stdin.write(line);
  }
}
