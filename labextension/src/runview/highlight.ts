/** Cutting a line's styled segments where search matches start and end. */
import { Style } from './ansi';
import { Line } from './terminal';

export interface Piece {
  text: string;
  style: Style;
  /** -1: not a match; else the match's index among all matches */
  match: number;
}

/** The line as pieces; `ranges` are [start, end, matchIndex] in its plain text, sorted. */
export function linePieces(line: Line, ranges: [number, number, number][]): Piece[] {
  const out: Piece[] = [];
  let pos = 0;
  let r = 0;
  for (const seg of line.segments) {
    const segEnd = pos + seg.text.length;
    let at = pos;
    while (at < segEnd) {
      while (r < ranges.length && ranges[r][1] <= at) {
        r++;
      }
      const range = r < ranges.length ? ranges[r] : null;
      if (range && range[0] <= at) {
        const stop = Math.min(segEnd, range[1]);
        out.push({ text: seg.text.slice(at - pos, stop - pos), style: seg.style, match: range[2] });
        at = stop;
      } else {
        const stop = range ? Math.min(segEnd, range[0]) : segEnd;
        out.push({ text: seg.text.slice(at - pos, stop - pos), style: seg.style, match: -1 });
        at = stop;
      }
    }
    pos = segEnd;
  }
  return out;
}
