/** Shared display helpers: durations, relative times and status colours for the panel and the run view. */

export const ACTIVE_STATUSES = ['NotStarted', 'Queued', 'Preparing', 'Starting', 'Running', 'Finalizing', 'CancelRequested'];
export const TERMINAL_STATUSES = ['Completed', 'Failed', 'Canceled'];

export function isActiveStatus(status: string): boolean {
  return ACTIVE_STATUSES.includes(status);
}

/** 5s, 3m 04s, 2h 05m, 3d 4h: two units at most. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !isFinite(seconds) || seconds < 0) return '—';
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** The elapsed time of a run, ticking while it is active (`now` in epoch seconds). */
export function runElapsed(run: { started: number | null; ended: number | null; duration: number | null; status: string }, now: number): number | null {
  if (run.started === null) return null;
  if (run.ended !== null) return run.ended - run.started;
  if (isActiveStatus(run.status)) return now - run.started;
  return run.duration;
}

/** "just now", "5 min ago", "in 2 h", falling back to a date past a week. */
export function formatRelative(epochSeconds: number | null | undefined, now = Date.now() / 1000): string {
  if (epochSeconds === null || epochSeconds === undefined) return '—';
  const d = epochSeconds - now;
  const a = Math.abs(d);
  const say = (n: number, unit: string) => (d < 0 ? `${n} ${unit} ago` : `in ${n} ${unit}`);
  if (a < 10) return 'just now';
  if (a < 60) return say(Math.round(a), 's');
  if (a < 3600) return say(Math.round(a / 60), 'min');
  if (a < 86400) return say(Math.round(a / 3600), 'h');
  if (a < 7 * 86400) return say(Math.round(a / 86400), 'd');
  return new Date(epochSeconds * 1000).toLocaleDateString();
}

export function formatTimestamp(epochSeconds: number | null | undefined): string {
  if (epochSeconds === null || epochSeconds === undefined) return '—';
  return new Date(epochSeconds * 1000).toLocaleString();
}

/** The CSS class of a status chip: bai-status-running, bai-status-failed, ... */
export function statusClass(status: string): string {
  return `bai-status bai-status-${status.toLowerCase()}`;
}

/** A JupyterLab CSS variable for each status, so dark themes follow. */
export function statusColor(status: string): string {
  switch (status) {
    case 'Completed':
      return 'var(--jp-success-color1)';
    case 'Failed':
      return 'var(--jp-error-color1)';
    case 'Canceled':
    case 'CancelRequested':
      return 'var(--jp-layout-color4)';
    case 'Running':
    case 'Finalizing':
      return 'var(--jp-brand-color1)';
    default:
      return 'var(--jp-warn-color1)';
  }
}
