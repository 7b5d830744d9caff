/**
 * Following one log file over the REST API: the last lines first (read from the file's end,
 * so a huge log costs what its tail costs), then what was written since, by byte offset, and
 * earlier byte ranges on demand.
 */
import type { LogChunk } from '../api';
import { LogBuffer } from './logbuffer';

/** The answer of GET /runs/{id}/logs/{file}: bytes [offset, next_offset) of a file of `size`. */
export type { LogChunk };

export interface LogQuery {
  offset?: number;
  tail_lines?: number;
  limit?: number;
}

export type ReadLog = (query: LogQuery) => Promise<LogChunk>;

/** Lines read first; as in the notebook's log pane. */
export const TAIL_LINES = 1000;
/** Bytes asked for when the user scrolls above the first loaded line. */
export const EARLIER_BYTES = 128 * 1024;
/** Bytes asked for per poll; further behind than JUMP_BYTES, the tail is read anew. */
export const POLL_BYTES = 1024 * 1024;
export const JUMP_BYTES = 16 * 1024 * 1024;

export class LogFollower {
  readonly buffer: LogBuffer;
  /** the file's size at the last read */
  size = 0;
  /** the server says the file will not grow any more */
  complete = false;
  started = false;
  error = '';
  private busy: Promise<void> | null = null;
  private disposed = false;
  private listeners = new Set<() => void>();

  constructor(private readonly read: ReadLog, maxLines?: number) {
    this.buffer = new LogBuffer(maxLines);
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  dispose(): void {
    this.disposed = true;
    this.listeners.clear();
  }

  private changed(): void {
    if (!this.disposed) {
      this.listeners.forEach(l => l());
    }
  }

  /** One step at a time: a poll, a tail read and an earlier read never interleave. */
  private exclusive(step: () => Promise<void>): Promise<void> {
    if (this.busy) {
      return this.busy;
    }
    this.busy = step()
      .then(
        () => {
          this.error = '';
        },
        err => {
          this.error = err && err.message ? String(err.message) : String(err);
        }
      )
      .finally(() => {
        this.busy = null;
        this.changed();
      });
    return this.busy;
  }

  private async readTail(): Promise<void> {
    const chunk = await this.read({ tail_lines: TAIL_LINES });
    if (this.disposed) {
      return;
    }
    this.buffer.reset(chunk.text, chunk.offset, chunk.next_offset);
    this.size = chunk.size;
    this.complete = chunk.complete;
    this.started = true;
  }

  /** Read the tail the first time, then whatever was written since the last read. */
  poll(): Promise<void> {
    return this.exclusive(async () => {
      if (!this.started) {
        return this.readTail();
      }
      const chunk = await this.read({ offset: this.buffer.nextOffset, limit: POLL_BYTES });
      if (this.disposed) {
        return;
      }
      if (chunk.size < this.buffer.nextOffset) {
        return this.readTail(); // the file was replaced (a requeued attempt starts anew)
      }
      this.size = chunk.size;
      this.complete = chunk.complete;
      if (chunk.size - chunk.next_offset > JUMP_BYTES) {
        return this.readTail(); // far behind: show the newest lines rather than catch up
      }
      if (chunk.next_offset > this.buffer.nextOffset || chunk.text) {
        this.buffer.append(chunk.text, chunk.next_offset);
      }
    });
  }

  /** Whether the server may still have bytes this buffer has not read. */
  get behind(): boolean {
    return !this.complete || this.buffer.nextOffset < this.size;
  }

  /** Load the bytes before the first loaded line; resolves to the number of lines added. */
  async loadEarlier(): Promise<number> {
    let added = 0;
    await this.exclusive(async () => {
      const buf = this.buffer;
      if (!buf.canLoadEarlier) {
        return;
      }
      const end = buf.firstOffset;
      const start = Math.max(0, end - EARLIER_BYTES);
      const chunk = await this.read({ offset: start, limit: end - start });
      if (this.disposed || buf.firstOffset !== end) {
        return;
      }
      if (chunk.next_offset !== end) {
        return; // the server answered another range: leave the buffer as it is
      }
      added = buf.prepend(chunk.text, chunk.offset);
    });
    return added;
  }
}
