/** The REST calls of the run view (docs/lab.md), over the server's own connection settings. */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { LogChunk, LogQuery } from './logfollow';

export class RunRest {
  constructor(private readonly settings: ServerConnection.ISettings, readonly runId: string) {}

  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, 'batchai/api/v1', ...parts);
  }

  runUrl(...parts: string[]): string {
    return this.url('runs', encodeURIComponent(this.runId), ...parts);
  }

  async call<T>(url: string, init: RequestInit = {}): Promise<T> {
    const resp = await ServerConnection.makeRequest(url, init, this.settings);
    if (resp.status === 204) {
      return undefined as T;
    }
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok) {
      throw Object.assign(new Error(body.message || resp.statusText), body);
    }
    return body as T;
  }

  run(): Promise<Record<string, any>> {
    return this.call(this.runUrl());
  }

  logs(): Promise<{ files: { name: string; size: number }[] }> {
    return this.call(this.runUrl('logs'));
  }

  readLog(file: string, q: LogQuery): Promise<LogChunk> {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(q)) {
      if (v !== undefined) {
        params.set(k, String(v));
      }
    }
    return this.call(this.runUrl('logs', ...file.split('/').map(encodeURIComponent)) + '?' + params);
  }

  fileUrl(path: string): string {
    return this.runUrl('files', ...path.split('/').map(encodeURIComponent));
  }

  action(name: 'cancel' | 'rerun'): Promise<Record<string, any>> {
    return this.call(this.runUrl() + ':' + name, { method: 'POST' });
  }

  remove(): Promise<void> {
    return this.call(this.runUrl(), { method: 'DELETE' });
  }

  children(): Promise<{ runs: Record<string, any>[]; counts: Record<string, number> }> {
    return this.call(this.runUrl('children'));
  }
}
