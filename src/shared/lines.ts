// Splits a byte stream into lines: a worker's stderr (free text in every protocol) and the stdout of
// line-based protocols (NDJSON). Pure, no I/O.

/** Longest line accepted by default (a 16 MiB body is ~22 MiB as base64 in a JSON line). */
export const MAX_LINE_BYTES = 64 * 1024 * 1024;

const LF = 0x0a;

/**
 * Splits a byte stream into lines (without the `\n`; a trailing `\r` is dropped too). Chunks may end
 * anywhere, even inside a multi-byte character: lines are decoded only once complete. A line longer
 * than maxLineBytes is reported to onOverflow once and its bytes are skipped up to the next `\n`.
 */
export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private skipping = false;
  private readonly onLine: (line: string) => void;
  private readonly onOverflow: (bytes: number) => void;
  private readonly maxLineBytes: number;

  constructor(onLine: (line: string) => void, onOverflow: (bytes: number) => void, maxLineBytes = MAX_LINE_BYTES) {
    this.onLine = onLine;
    this.onOverflow = onOverflow;
    this.maxLineBytes = maxLineBytes;
  }

  push(chunk: Buffer): void {
    let start = 0;
    let nl = chunk.indexOf(LF);
    while (nl !== -1) {
      if (this.skipping) {
        this.skipping = false;
      } else if (this.pendingBytes + (nl - start) > this.maxLineBytes) {
        this.overflow(nl - start);
      } else if (this.pendingBytes === 0) {
        this.emit(chunk.toString('utf8', start, end(chunk, start, nl)));
      } else {
        this.pending.push(chunk.subarray(start, nl));
        const whole = Buffer.concat(this.pending, this.pendingBytes + (nl - start));
        this.pending = [];
        this.pendingBytes = 0;
        this.emit(whole.toString('utf8', 0, end(whole, 0, whole.length)));
      }
      start = nl + 1;
      nl = chunk.indexOf(LF, start);
    }
    if (start < chunk.length && !this.skipping) {
      const rest = chunk.length - start;
      if (this.pendingBytes + rest > this.maxLineBytes) {
        this.overflow(rest);
        this.skipping = true;
      } else {
        // no copy: stream chunks from a pipe are fresh buffers, never reused by Node
        this.pending.push(start === 0 ? chunk : chunk.subarray(start));
        this.pendingBytes += rest;
      }
    }
  }

  /** The stream ended: a last line without `\n` is still a line. */
  end(): void {
    if (this.pendingBytes > 0 && !this.skipping) {
      const whole = Buffer.concat(this.pending, this.pendingBytes);
      this.emit(whole.toString('utf8', 0, end(whole, 0, whole.length)));
    }
    this.pending = [];
    this.pendingBytes = 0;
    this.skipping = false;
  }

  private overflow(extra: number): void {
    const bytes = this.pendingBytes + extra;
    this.pending = [];
    this.pendingBytes = 0;
    this.onOverflow(bytes);
  }

  private emit(line: string): void {
    if (line.length > 0) this.onLine(line);
  }
}

/** index after the last byte of the line, dropping one trailing CR */
function end(buf: Buffer, start: number, nl: number): number {
  return nl > start && buf[nl - 1] === 0x0d ? nl - 1 : nl;
}
