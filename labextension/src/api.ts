/** Typed client for the REST routes and events socket of docs/lab.md (`<base_url>/batchai/api/v1`). */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export const API_PREFIX = 'batchai/api/v1';

export type RunStatus =
  | 'NotStarted' | 'Queued' | 'Preparing' | 'Starting' | 'Running' | 'Finalizing'
  | 'CancelRequested' | 'Completed' | 'Failed' | 'Canceled' | string;

export interface RunRow {
  id: string;
  number: number;
  experiment: string;
  cluster: string;
  parent_id: string | null;
  status: RunStatus;
  tags: Record<string, string>;
  created: number;
  started: number | null;
  ended: number | null;
  duration: number | null;
  error: { message: string } | null;
  children: number;
  /** with `spark` in the query: the run's primary metric, at most 30 [step, value] points */
  spark?: Spark | null;
}

export interface Spark {
  metric: string;
  points: [number, number][];
  count: number;
}

export interface RunPage {
  runs: RunRow[];
  counts: Record<string, number>;
  total: number;
  next_cursor: string | null;
}

export interface RunDetails extends RunRow {
  details: Record<string, unknown>;
  files: string[];
  streams: string[];
  /** what a clone into a new %%batchai_job cell needs: the image and the script's text in the snapshot */
  job?: { image: string | null; image_pull: string | null; script_source: string | null; source_in_root: string | null };
  /** a parent's children compared: the primary metric, its goal, the best child, each child's last value */
  sweep?: { primary_metric: string | null; goal: string; best: string | null; values: Record<string, number | null> };
}

export interface RunQuery {
  experiment?: string;
  status?: string[];
  parent?: string;
  cluster?: string;
  tag?: string[];
  q?: string;
  sort?: '-created' | 'created';
  fields?: string[];
  limit?: number;
  cursor?: string | null;
  /** `auto` (each run's first scalar metric) or a metric name: rows get `spark` */
  spark?: string;
}

export interface ClusterInfo {
  name: string;
  backend: string;
  min_nodes: number;
  max_nodes: number;
  gpus_per_node: number;
  nodes: { idle: number; running: number; preparing: number; leaving: number; unusable: number };
  gpus: { free: number; total: number };
  queued: number;
  running: number;
  allocation_state?: 'steady' | 'resizing';
  errors?: string[];
}

export interface NodeInfo {
  id: string;
  state: string;
  host: string | null;
  gpus: number;
  run_id: string | null;
  reason: string | null;
}

/** GET /experiments: top-level runs per experiment. */
export interface ExperimentInfo { name: string; runs: number; last_created: number }

/** GET /tags: top-level runs per tag key; `values` null when a key has too many to list. */
export interface TagInfo { key: string; runs: number; values: { value: string; runs: number }[] | null }

export interface LogFile { name: string; size: number }

export interface LogChunk {
  text: string;
  offset: number;
  next_offset: number;
  size: number;
  complete: boolean;
}

export interface MetricPoint { step: number; value: number }

export interface MetricSeries {
  name: string;
  points: MetricPoint[];
  downsampled: boolean;
  count?: number;
  ranks?: Record<string, MetricPoint[]>;
}

export interface ScheduleFire {
  scheduled_time: string;
  kind: string;
  outcome: string;
  reason: string | null;
  run_id: string | null;
}

export interface ScheduleInfo {
  name: string;
  state: string;
  version?: number;
  experiment: string;
  cluster: string;
  cron?: string;
  every?: string | number;
  tz?: string;
  next: string[];
  last: ScheduleFire | null;
  run?: RunRow;
  [key: string]: unknown;
}

export interface Capabilities {
  version: string;
  workspace: { name: string; path: string } | null;
  backends: string[];
  features: { schedules: boolean; events_ws: boolean };
}

export interface RunStatusEvent {
  seq: number; type: 'run.status'; run_id: string; status: RunStatus; ts: number;
  message: string | null; experiment: string; parent_id: string | null; cluster: string;
}
export interface NodeStateEvent {
  seq: number; type: 'node.state'; cluster: string; node: string; state: string;
  previous: string | null; run_id: string | null; reason: string | null;
}
export interface ScheduleFiredEvent {
  seq: number; type: 'schedule.fired'; schedule: string; scheduled_time: string; kind: string;
  outcome: string; reason: string | null; run_id: string | null;
}
export type BatchAIEvent = RunStatusEvent | NodeStateEvent | ScheduleFiredEvent;

/** An error answer of the server: `{code, message, hint}` plus the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string | null = null,
    readonly field: string | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** One client per server connection; every method is one request. */
export class BatchAIClient {
  readonly settings: ServerConnection.ISettings;
  private etags = new Map<string, { etag: string; body: unknown }>();

  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, API_PREFIX, ...parts);
  }

  /** GET/POST/DELETE one route; with `cache` a GET sends If-None-Match and a 304 answers the kept body. */
  async request<T>(path: string, init: RequestInit = {}, cache = false): Promise<T> {
    const url = this.url(path);
    const headers = new Headers(init.headers);
    const kept = cache ? this.etags.get(url) : undefined;
    if (kept) headers.set('If-None-Match', kept.etag);
    if (init.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
    const resp = await ServerConnection.makeRequest(url, { ...init, headers }, this.settings);
    if (resp.status === 304 && kept) return kept.body as T;
    if (resp.status === 204) return undefined as T;
    const text = await resp.text();
    let body: any = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!resp.ok) {
      throw new ApiError(
        resp.status,
        body?.code ?? 'internal',
        body?.message ?? (text || resp.statusText),
        body?.hint ?? null,
        body?.field ?? null
      );
    }
    const etag = resp.headers.get('ETag');
    if (cache && etag) this.etags.set(url, { etag, body });
    return body as T;
  }

  private post<T>(path: string, body: unknown = {}): Promise<T> {
    return this.request<T>(path, { method: 'POST', body: JSON.stringify(body) });
  }

  capabilities(): Promise<Capabilities> {
    return this.request('capabilities');
  }

  async clusters(): Promise<ClusterInfo[]> {
    return (await this.request<{ clusters: ClusterInfo[] }>('clusters')).clusters;
  }

  async nodes(cluster: string): Promise<NodeInfo[]> {
    return (await this.request<{ nodes: NodeInfo[] }>(`clusters/${enc(cluster)}/nodes`)).nodes;
  }

  /** A fixed size (a number: min = max = it) or autoscale bounds (either may be left out). */
  resize(cluster: string, size: number | { min_nodes?: number; max_nodes?: number }): Promise<ClusterInfo> {
    const body = typeof size === 'number' ? { target_node_count: size } : size;
    return this.post(`clusters/${enc(cluster)}:resize`, body);
  }

  async experiments(): Promise<ExperimentInfo[]> {
    return (await this.request<{ experiments: ExperimentInfo[] }>('experiments')).experiments;
  }

  async tags(): Promise<TagInfo[]> {
    return (await this.request<{ tags: TagInfo[] }>('tags')).tags;
  }

  runs(query: RunQuery = {}): Promise<RunPage> {
    return this.request(`runs${runQueryString(query)}`, {}, true);
  }

  run(id: string): Promise<RunDetails> {
    return this.request(`runs/${enc(id)}`);
  }

  children(id: string, query: RunQuery = {}): Promise<{ runs: RunRow[]; counts: Record<string, number> }> {
    return this.request(`runs/${enc(id)}/children${runQueryString(query)}`, {}, true);
  }

  async runEvents(id: string): Promise<{ ts: number; status: string; message: string | null }[]> {
    return (await this.request<{ events: any[] }>(`runs/${enc(id)}/events`)).events;
  }

  submit(body: {
    experiment: string; cluster?: string; spec: Record<string, unknown>;
    tags?: Record<string, string>; idempotency_key?: string;
  }): Promise<RunRow> {
    return this.post('runs', body);
  }

  cancel(id: string): Promise<RunRow> {
    return this.post(`runs/${enc(id)}:cancel`);
  }

  rerun(id: string): Promise<RunRow> {
    return this.post(`runs/${enc(id)}:rerun`);
  }

  deleteRun(id: string): Promise<void> {
    return this.request(`runs/${enc(id)}`, { method: 'DELETE' });
  }

  async logFiles(id: string): Promise<LogFile[]> {
    return (await this.request<{ files: LogFile[] }>(`runs/${enc(id)}/logs`)).files;
  }

  log(id: string, file: string, opts: { offset?: number; tail_lines?: number; limit?: number } = {}): Promise<LogChunk> {
    return this.request(`runs/${enc(id)}/logs/${encPath(file)}${qs(opts)}`);
  }

  /** The follow socket's URL for one log file (token added as the events socket does). */
  logFollowUrl(id: string, file: string, opts: { offset?: number; tail_lines?: number } = {}): string {
    return wsUrl(this.settings, `runs/${enc(id)}/logs/${encPath(file)}/follow`, opts);
  }

  async metrics(id: string): Promise<Record<string, { kind: string; points: number }>> {
    return (await this.request<{ metrics: Record<string, { kind: string; points: number }> }>(`runs/${enc(id)}/metrics`)).metrics;
  }

  metric(id: string, name: string, maxPoints?: number): Promise<MetricSeries> {
    return this.request(`runs/${enc(id)}/metrics/${enc(name)}${qs({ max_points: maxPoints })}`);
  }

  fileUrl(id: string, path: string): string {
    return this.url(`runs/${enc(id)}/files/${encPath(path)}`);
  }

  async schedules(): Promise<ScheduleInfo[]> {
    return (await this.request<{ schedules: ScheduleInfo[] }>('schedules')).schedules;
  }

  scheduleAction(name: string, action: 'enable' | 'disable' | 'trigger'): Promise<ScheduleInfo> {
    return this.post(`schedules/${enc(name)}:${action}`);
  }

  pollEvents(after: number): Promise<{ events: BatchAIEvent[]; seq: number }> {
    return this.request(`events${qs({ after })}`);
  }

  eventsUrl(after: number): string {
    return wsUrl(this.settings, 'events', { after });
  }
}

function enc(part: string): string {
  return encodeURIComponent(part);
}

function encPath(path: string): string {
  return path.split('/').map(enc).join('/');
}

function qs(params: Record<string, string | number | undefined | null>): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') parts.push(`${enc(k)}=${enc(String(v))}`);
  }
  return parts.length ? `?${parts.join('&')}` : '';
}

export function runQueryString(q: RunQuery): string {
  const parts: string[] = [];
  const add = (k: string, v: string | number | undefined | null) => {
    if (v !== undefined && v !== null && v !== '') parts.push(`${k}=${enc(String(v))}`);
  };
  add('experiment', q.experiment);
  if (q.status?.length) add('status', q.status.join(','));
  add('parent', q.parent);
  add('cluster', q.cluster);
  for (const t of q.tag ?? []) add('tag', t);
  add('q', q.q);
  add('sort', q.sort);
  if (q.fields?.length) add('fields', q.fields.join(','));
  add('limit', q.limit);
  add('cursor', q.cursor);
  add('spark', q.spark);
  return parts.length ? `?${parts.join('&')}` : '';
}

function wsUrl(settings: ServerConnection.ISettings, path: string, params: Record<string, string | number | undefined>): string {
  const all: Record<string, string | number | undefined> = { ...params };
  if (settings.token) all.token = settings.token;
  return URLExt.join(settings.wsUrl, API_PREFIX, path) + qs(all);
}

export type EventListener = (event: BatchAIEvent) => void;

/**
 * The events stream: a WebSocket resumed from the last seq after a drop, falling back to polling
 * `GET /events?after=` every 5 s when the socket cannot open; it runs only while someone listens.
 */
export class EventsClient {
  private listeners = new Set<EventListener>();
  private socket: WebSocket | null = null;
  private timer: number | null = null;
  private seq: number;
  private failures = 0;
  private stopped = true;

  constructor(private readonly client: BatchAIClient, after = 0, private readonly pollMs = 5000) {
    this.seq = after;
  }

  get lastSeq(): number {
    return this.seq;
  }

  /** Adds a listener and starts the stream; the returned function removes it (stopping when none is left). */
  listen(listener: EventListener): () => void {
    this.listeners.add(listener);
    if (this.stopped) this.start();
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.stop();
    };
  }

  private start(): void {
    this.stopped = false;
    this.connect();
  }

  private stop(): void {
    this.stopped = true;
    if (this.timer !== null) window.clearTimeout(this.timer);
    this.timer = null;
    const s = this.socket;
    this.socket = null;
    if (s) {
      s.onclose = null;
      s.close();
    }
  }

  private emit(event: BatchAIEvent): void {
    if (event.type === 'run.status') {
      if (event.seq <= this.seq) return;
      this.seq = event.seq;
    }
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch (err) {
        console.error('batchai events listener', err);
      }
    }
  }

  private connect(): void {
    if (this.stopped) return;
    let opened = false;
    const s = new WebSocket(this.client.eventsUrl(this.seq));
    this.socket = s;
    s.onopen = () => {
      opened = true;
      this.failures = 0;
    };
    s.onmessage = msg => {
      try {
        this.emit(JSON.parse(msg.data) as BatchAIEvent);
      } catch (err) {
        console.error('batchai events: bad message', err);
      }
    };
    s.onclose = () => {
      if (this.socket !== s || this.stopped) return;
      this.socket = null;
      if (!opened) this.failures += 1;
      // three failed opens in a row: poll instead, and try the socket again now and then
      if (this.failures >= 3) this.poll();
      else this.schedule(() => this.connect(), Math.min(500 * 2 ** this.failures, 5000));
    };
  }

  private schedule(fn: () => void, ms: number): void {
    if (this.stopped) return;
    this.timer = window.setTimeout(() => {
      this.timer = null;
      fn();
    }, ms);
  }

  private async poll(): Promise<void> {
    if (this.stopped) return;
    try {
      const page = await this.client.pollEvents(this.seq);
      for (const e of page.events) this.emit(e);
      if (page.seq > this.seq) this.seq = page.seq;
    } catch (err) {
      console.warn('batchai events poll', err);
    }
    this.failures += 1;
    // every 12th poll (about a minute) tries the socket again
    if (this.failures % 12 === 0) this.schedule(() => this.connect(), this.pollMs);
    else this.schedule(() => void this.poll(), this.pollMs);
  }
}
