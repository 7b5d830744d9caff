/**
 * The lines of one followed log file, as the viewer shows them: a tail read first, bytes
 * appended as the file grows, earlier byte ranges prepended when the user scrolls up. At most
 * `maxLines` lines are kept; the rest stay on disk (download link).
 */
import { Line, Terminal } from './terminal';

export const DEFAULT_MAX_LINES = 50000;

const encoder = new TextEncoder();

export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

export class LogBuffer {
  readonly maxLines: number;
  /** finished lines, oldest first */
  lines: Line[] = [];
  /** byte offset of the first kept line (0: the file's start is loaded) */
  firstOffset = 0;
  /** byte offset the next read starts at */
  nextOffset = 0;
  /** lines dropped from the top to stay under maxLines (no longer loadable here) */
  dropped = 0;
  /** bumped on every change, so a view knows when to redraw */
  version = 0;
  private term = new Terminal();
  private open: Line | null = null;

  constructor(maxLines: number = DEFAULT_MAX_LINES) {
    this.maxLines = maxLines;
  }

  /** Start over with the text of bytes [offset, nextOffset). */
  reset(text: string, offset: number, nextOffset: number): void {
    this.lines = [];
    this.term = new Terminal();
    this.open = null;
    this.dropped = 0;
    this.firstOffset = offset;
    this.nextOffset = offset;
    this.append(text, nextOffset);
  }

  /** New bytes of the file, ending at `nextOffset` (they may end mid-line). */
  append(text: string, nextOffset: number): void {
    this.nextOffset = nextOffset;
    if (!text) {
      return;
    }
    const done = this.term.feed(text);
    for (const line of done) {
      this.lines.push(line);
    }
    this.open = this.term.current();
    const extra = this.lines.length - this.maxLines;
    if (extra > 0) {
      this.lines.splice(0, extra);
      this.dropped += extra;
    }
    this.version++;
  }

  /** Whether bytes before the first kept line can still be loaded into this buffer. */
  get canLoadEarlier(): boolean {
    return this.firstOffset > 0 && this.dropped === 0 && this.lines.length < this.maxLines;
  }

  /**
   * Bytes [start, firstOffset) read before the first kept line. Unless `start` is the file's
   * start, the first (probably partial) line is left out and stays to be loaded later.
   * Returns how many lines were added at the top.
   */
  prepend(text: string, start: number): number {
    let body = text;
    let from = start;
    if (start > 0) {
      const nl = text.indexOf('\n');
      if (nl < 0) {
        return 0; // one very long line: nothing whole to show yet
      }
      body = text.slice(nl + 1);
      from = this.firstOffset - utf8Length(body);
    }
    const term = new Terminal();
    const lines = term.feed(body);
    const tail = term.current();
    if (tail) {
      lines.push(tail);
    }
    const room = this.maxLines - this.lines.length;
    if (room <= 0) {
      return 0;
    }
    let added = lines;
    if (lines.length > room) {
      // keep the lines nearest to what is shown; the offset moves past the ones left out
      const skipped = lines.slice(0, lines.length - room);
      added = lines.slice(lines.length - room);
      from += utf8Length(skipped.map(l => l.text).join('\n') + '\n');
    }
    this.lines = added.concat(this.lines);
    this.firstOffset = Math.max(0, from);
    this.version++;
    return added.length;
  }

  /** Line count including the open one. */
  get length(): number {
    return this.lines.length + (this.open ? 1 : 0);
  }

  line(i: number): Line {
    return i < this.lines.length ? this.lines[i] : (this.open as Line);
  }
}

/** Matches of a search, as [line index, start, end) ranges in the lines' plain text. */
export interface Match {
  line: number;
  start: number;
  end: number;
}

export const MAX_MATCHES = 10000;

export function findMatches(buffer: LogBuffer, query: string): Match[] {
  const out: Match[] = [];
  if (!query) {
    return out;
  }
  const q = query.toLowerCase();
  for (let i = 0; i < buffer.length && out.length < MAX_MATCHES; i++) {
    const text = buffer.line(i).text.toLowerCase();
    let at = text.indexOf(q);
    while (at >= 0 && out.length < MAX_MATCHES) {
      out.push({ line: i, start: at, end: at + q.length });
      at = text.indexOf(q, at + q.length);
    }
  }
  return out;
}

/** Which lines to render for a viewport: [first, last) with some lines of margin. */
export function visibleWindow(
  scrollTop: number,
  viewportHeight: number,
  lineHeight: number,
  count: number,
  overscan = 20
): { first: number; last: number } {
  if (lineHeight <= 0 || count === 0) {
    return { first: 0, last: Math.min(count, 100) };
  }
  const first = Math.max(0, Math.floor(scrollTop / lineHeight) - overscan);
  const last = Math.min(count, Math.ceil((scrollTop + viewportHeight) / lineHeight) + overscan);
  return { first, last: Math.max(first, last) };
}
