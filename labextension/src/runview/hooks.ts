/** Small React hooks of the run view: the widget's visibility, polling, a ticking clock. */
import * as React from 'react';

/** Whether the view is on screen; the Lumino widget sets it, React components read it. */
export class Visibility {
  private value = false;
  private listeners = new Set<() => void>();

  get visible(): boolean {
    return this.value;
  }

  set(visible: boolean): void {
    if (visible !== this.value) {
      this.value = visible;
      this.listeners.forEach(l => l());
    }
  }

  subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
}

export function useVisible(vis: Visibility): boolean {
  return React.useSyncExternalStore(vis.subscribe, () => vis.visible);
}

/**
 * Call `fn` now and then every `ms` while `active`; a call never overlaps the previous one
 * and nothing runs after unmount.
 */
export function usePoll(fn: () => Promise<unknown> | void, ms: number, active: boolean): void {
  const ref = React.useRef(fn);
  ref.current = fn;
  React.useEffect(() => {
    if (!active) {
      return;
    }
    let stopped = false;
    let timer: number | undefined;
    const tick = async () => {
      try {
        await ref.current();
      } catch (err) {
        console.warn('batchai: poll failed', err);
      }
      if (!stopped) {
        timer = window.setTimeout(tick, ms);
      }
    };
    void tick();
    return () => {
      stopped = true;
      window.clearTimeout(timer);
    };
  }, [ms, active]);
}

/** The current time in seconds, re-rendering every second while `active`. */
export function useNow(active: boolean): number {
  const [now, setNow] = React.useState(() => Date.now() / 1000);
  React.useEffect(() => {
    if (!active) {
      return;
    }
    setNow(Date.now() / 1000);
    const t = window.setInterval(() => setNow(Date.now() / 1000), 1000);
    return () => window.clearInterval(t);
  }, [active]);
  return now;
}

/** An async value loaded by `load` whenever `deps` change; errors are kept for display. */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: React.DependencyList
): { value: T | undefined; error: string; reload: () => void } {
  const [value, setValue] = React.useState<T | undefined>(undefined);
  const [error, setError] = React.useState('');
  const [n, setN] = React.useState(0);
  React.useEffect(() => {
    let live = true;
    load().then(
      v => {
        if (live) {
          setValue(v);
          setError('');
        }
      },
      err => {
        if (live) {
          setError(errorText(err));
        }
      }
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, n]);
  return { value, error, reload: () => setN(x => x + 1) };
}

/** The message of an API error (`{code, message, hint}`) or any other thrown thing. */
export function errorText(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { message?: unknown; hint?: unknown };
    const msg = typeof e.message === 'string' ? e.message : String(err);
    return typeof e.hint === 'string' && e.hint ? `${msg} (${e.hint})` : msg;
  }
  return String(err);
}
