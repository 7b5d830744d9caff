/**
 * ANSI SGR styles: the subset jobs write (16 colours, 256 and true colour, bold, dim, italic,
 * underline, inverse). A style is an interned, frozen object so that equal runs of text can be
 * compared with `===` and merged into one span.
 */

export interface Style {
  readonly fg?: string;
  readonly bg?: string;
  readonly bold?: boolean;
  readonly dim?: boolean;
  readonly italic?: boolean;
  readonly underline?: boolean;
  readonly inverse?: boolean;
}

const NAMES = ['black', 'red', 'green', 'yellow', 'blue', 'magenta', 'cyan', 'white'];

export const PLAIN: Style = Object.freeze({});

const interned = new Map<string, Style>([['{}', PLAIN]]);

/** One shared object per distinct style (keeps memory flat for 50k styled lines). */
function intern(style: Record<string, unknown>): Style {
  const key = JSON.stringify(style, Object.keys(style).sort());
  let found = interned.get(key);
  if (!found) {
    found = Object.freeze({ ...style }) as Style;
    interned.set(key, found);
  }
  return found;
}

function xterm256(n: number): string {
  if (n < 8) {
    return NAMES[n];
  }
  if (n < 16) {
    return 'bright-' + NAMES[n - 8];
  }
  if (n < 232) {
    const v = [0, 95, 135, 175, 215, 255];
    const k = n - 16;
    return `rgb(${v[Math.floor(k / 36)]},${v[Math.floor(k / 6) % 6]},${v[k % 6]})`;
  }
  const g = 8 + (n - 232) * 10;
  return `rgb(${g},${g},${g})`;
}

/** The style after one `ESC[...m` with these parameters (an empty list is a reset). */
export function applySgr(style: Style, params: number[]): Style {
  const s: Record<string, unknown> = { ...style };
  const p = params.length ? params : [0];
  for (let i = 0; i < p.length; i++) {
    const n = p[i];
    if (n === 0) {
      for (const k of Object.keys(s)) {
        delete s[k];
      }
    } else if (n === 1) {
      s.bold = true;
    } else if (n === 2) {
      s.dim = true;
    } else if (n === 3) {
      s.italic = true;
    } else if (n === 4) {
      s.underline = true;
    } else if (n === 7) {
      s.inverse = true;
    } else if (n === 22) {
      delete s.bold;
      delete s.dim;
    } else if (n === 23) {
      delete s.italic;
    } else if (n === 24) {
      delete s.underline;
    } else if (n === 27) {
      delete s.inverse;
    } else if (n >= 30 && n <= 37) {
      s.fg = NAMES[n - 30];
    } else if (n >= 90 && n <= 97) {
      s.fg = 'bright-' + NAMES[n - 90];
    } else if (n >= 40 && n <= 47) {
      s.bg = NAMES[n - 40];
    } else if (n >= 100 && n <= 107) {
      s.bg = 'bright-' + NAMES[n - 100];
    } else if (n === 39) {
      delete s.fg;
    } else if (n === 49) {
      delete s.bg;
    } else if ((n === 38 || n === 48) && p[i + 1] === 5) {
      s[n === 38 ? 'fg' : 'bg'] = xterm256(p[i + 2] || 0);
      i += 2;
    } else if ((n === 38 || n === 48) && p[i + 1] === 2) {
      s[n === 38 ? 'fg' : 'bg'] = `rgb(${p[i + 2] || 0},${p[i + 3] || 0},${p[i + 4] || 0})`;
      i += 4;
    }
  }
  return intern(s);
}

/** How a style renders: CSS classes for theme colours, inline colours for rgb(). */
export interface StyleRender {
  className: string;
  color: string;
  background: string;
}

const rendered = new WeakMap<Style, StyleRender>();

export function renderStyle(style: Style): StyleRender {
  const cached = rendered.get(style);
  if (cached) {
    return cached;
  }
  const classes: string[] = [];
  let fg = style.fg;
  let bg = style.bg;
  if (style.inverse) {
    [fg, bg] = [bg || 'inverse-bg', fg || 'inverse-fg'];
  }
  const isRgb = (c?: string) => !!c && c.startsWith('rgb');
  if (fg && !isRgb(fg)) {
    classes.push(`ansi-${fg}-fg`);
  }
  if (bg && !isRgb(bg)) {
    classes.push(`ansi-${bg}-bg`);
  }
  if (style.bold) {
    classes.push('ansi-bold');
  }
  if (style.dim) {
    classes.push('ansi-dim');
  }
  if (style.italic) {
    classes.push('ansi-italic');
  }
  if (style.underline) {
    classes.push('ansi-underline');
  }
  const out = {
    className: classes.join(' '),
    color: isRgb(fg) ? (fg as string) : '',
    background: isRgb(bg) ? (bg as string) : ''
  };
  rendered.set(style, out);
  return out;
}
