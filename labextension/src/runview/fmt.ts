/** Display helpers of the run view (times, sizes, live durations); the panel's in ../format. */
import { TERMINAL_STATUSES } from '../format';

export { ACTIVE_STATUSES, TERMINAL_STATUSES, formatDuration } from '../format';

/** A run is active until it reaches a terminal status (unknown statuses count as active). */
export function isActive(status: string | undefined): boolean {
  return !!status && !TERMINAL_STATUSES.includes(status);
}

/** Epoch seconds or an ISO string -> epoch seconds (null when absent). */
export function toSeconds(t: number | string | null | undefined): number | null {
  if (t === null || t === undefined || t === '') {
    return null;
  }
  if (typeof t === 'number') {
    return t;
  }
  const ms = Date.parse(t);
  return isNaN(ms) ? null : ms / 1000;
}

export function formatTime(t: number | string | null | undefined): string {
  const s = toSeconds(t);
  return s === null ? '—' : new Date(s * 1000).toLocaleString();
}

/** The duration shown: the run's own once ended, else counted from its start up to now. */
export function liveDuration(
  started: number | string | null | undefined,
  ended: number | string | null | undefined,
  duration: number | null | undefined,
  now: number
): number | null {
  const s = toSeconds(started);
  const e = toSeconds(ended);
  if (s !== null && e === null) {
    return Math.max(0, now - s);
  }
  if (duration !== null && duration !== undefined) {
    return duration;
  }
  return s !== null && e !== null ? e - s : null;
}

export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) {
    return '';
  }
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${u === 0 ? v : v.toFixed(1)} ${units[u]}`;
}
