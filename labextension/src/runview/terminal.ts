/**
 * A tiny terminal for log text: `\n` ends a line, `\r` returns to its start (a progress bar
 * redraws in place), `\b` steps back, `ESC[...m` sets the style, `ESC[K` clears to the end of
 * the line, `ESC[nG` moves to a column; other escapes are dropped. Text may arrive in chunks
 * cut anywhere, even inside an escape sequence.
 */
import { applySgr, PLAIN, Style } from './ansi';

/** A run of equally styled text. */
export interface Segment {
  readonly text: string;
  readonly style: Style;
}

/** One finished (or the current, still open) line. */
export interface Line {
  readonly segments: readonly Segment[];
  /** the plain text, for search */
  readonly text: string;
}

/** Longer lines are cut there (a log line of megabytes would freeze the page). */
export const MAX_LINE_CHARS = 20000;

class LineBuilder {
  chars: string[] = [];
  styles: Style[] = [];
  col = 0;

  write(s: string, style: Style): void {
    for (const c of s) {
      if (this.col >= MAX_LINE_CHARS) {
        return;
      }
      if (this.col === this.chars.length) {
        this.chars.push(c);
        this.styles.push(style);
      } else {
        this.chars[this.col] = c;
        this.styles[this.col] = style;
      }
      this.col++;
    }
  }

  clearToEnd(): void {
    this.chars.length = this.col;
    this.styles.length = this.col;
  }

  get empty(): boolean {
    return this.chars.length === 0;
  }

  freeze(): Line {
    const segments: Segment[] = [];
    const n = this.chars.length;
    let start = 0;
    while (start < n) {
      const style = this.styles[start];
      let end = start + 1;
      while (end < n && this.styles[end] === style) {
        end++;
      }
      segments.push({ text: this.chars.slice(start, end).join(''), style });
      start = end;
    }
    return { segments, text: this.chars.join('') };
  }
}

const SPECIAL = /[\r\n\x1b\x08]/g;
const CSI = /^\[([0-9;?]*)([A-Za-z@])/;

export class Terminal {
  private style: Style = PLAIN;
  private cur = new LineBuilder();
  private pending = '';

  /** Feed text; returns the lines it finished (the open one is `current()`). */
  feed(input: string): Line[] {
    const text = this.pending + input;
    this.pending = '';
    const done: Line[] = [];
    let i = 0;
    while (i < text.length) {
      SPECIAL.lastIndex = i;
      const m = SPECIAL.exec(text);
      const end = m ? m.index : text.length;
      if (end > i) {
        this.cur.write(text.slice(i, end), this.style);
      }
      if (!m) {
        break;
      }
      const ch = m[0];
      i = end + 1;
      if (ch === '\n') {
        done.push(this.cur.freeze());
        this.cur = new LineBuilder();
      } else if (ch === '\r') {
        this.cur.col = 0;
      } else if (ch === '\x08') {
        this.cur.col = Math.max(0, this.cur.col - 1);
      } else {
        const rest = text.slice(i, i + 64);
        if (rest.length === 0 || (rest[0] === '[' && /^\[[0-9;?]*$/.test(rest) && rest.length < 64)) {
          this.pending = text.slice(end); // cut inside the sequence: finish it with the next chunk
          break;
        }
        const esc = CSI.exec(rest);
        if (!esc) {
          if (text[i] === ']') {
            // OSC (a window title, a hyperlink): up to BEL or ESC \
            const bel = text.indexOf('\x07', i);
            const st = text.indexOf('\x1b\\', i);
            const stop = bel < 0 ? st : st < 0 ? bel : Math.min(bel, st);
            if (stop < 0) {
              this.pending = text.slice(end).slice(0, 4096);
              break;
            }
            i = stop + (stop === st ? 2 : 1);
          } else if (text[i] === '(' || text[i] === ')') {
            i += 2; // a character-set choice
          } else {
            i += 1;
          }
          continue;
        }
        i += esc[0].length;
        const params = esc[1]
          .split(';')
          .filter(x => x !== '' && x !== '?')
          .map(Number);
        if (esc[2] === 'm') {
          this.style = applySgr(this.style, params);
        } else if (esc[2] === 'K') {
          this.cur.clearToEnd();
        } else if (esc[2] === 'G') {
          this.cur.col = Math.max(0, (params[0] || 1) - 1);
        }
      }
    }
    return done;
  }

  /** The open line as it looks now (null when nothing was written on it). */
  current(): Line | null {
    return this.cur.empty ? null : this.cur.freeze();
  }
}

/** Plain text of a log chunk as a terminal would show it (what search and copy see). */
export function screenText(text: string): string {
  const term = new Terminal();
  const lines = term.feed(text).map(l => l.text);
  const cur = term.current();
  if (cur) {
    lines.push(cur.text);
  }
  return lines.join('\n');
}
