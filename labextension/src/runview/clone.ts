/**
 * "Clone into a new %%batchai_job cell": the cell text that submits the same job again, and
 * putting it below the active cell of the notebook last used (or into a new notebook).
 *
 * Notebooks are recognised by their shape (a panel whose content has an active cell index and a
 * shared model), so the extension needs no dependency on the notebook package.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';
import { Widget } from '@lumino/widgets';

import type { RunDetails } from '../api';

/** The %%batchai_job defaults: an option equal to its default is left out of the clone. */
const DEFAULT_SCRIPT = 'main.py';
const DEFAULT_SOURCE = '.';
const DEFAULT_IMAGE_PULL = 'missing';

/** A word as the magic's argument splitter (POSIX shell rules) reads it back unchanged. */
export function shellQuote(word: string): string {
  if (word !== '' && /^[\w@%+=:,./-]+$/.test(word)) {
    return word;
  }
  return "'" + word.replace(/'/g, `'"'"'`) + "'";
}

/** The --source of the clone: null for the default (the notebook's own folder). */
export function sourceOption(source: string | undefined, inRoot: string | null, notebookDir: string | null): string | null {
  if (!source) {
    return null;
  }
  if (inRoot !== null && notebookDir !== null) {
    const dir = notebookDir || DEFAULT_SOURCE;
    if (inRoot === dir) {
      return null;
    }
    if (dir === DEFAULT_SOURCE) {
      return inRoot;
    }
    if (inRoot.startsWith(dir + '/')) {
      return inRoot.slice(dir.length + 1);
    }
  }
  return source === DEFAULT_SOURCE ? null : source;
}

/** `ID=DATASTORE:PATH[:mode]` of one --input/--output reference, when the spec has that shape. */
function dataOption(id: string, ref: unknown, output: boolean): string | null {
  if (typeof ref === 'string') {
    return `${id}=${ref}`;
  }
  if (!ref || typeof ref !== 'object') {
    return null;
  }
  const r = ref as Record<string, unknown>;
  const store = r.datastore ?? r.datastore_name;
  const path = r.path ?? r.path_on_datastore ?? '';
  if (typeof store !== 'string') {
    return null;
  }
  const mode = !output && typeof r.mode === 'string' && r.mode !== 'download' ? `:${r.mode}` : '';
  return `${id}=${store}:${path}${mode}`;
}

/**
 * The text of a %%batchai_job cell that submits this run's job again: its cluster and
 * experiment, the options its spec differs from the defaults in (in the magic's order), and as
 * the body the script the snapshot holds (the original cell's body for a run the magic
 * submitted). A command run becomes `--command CMD` with an empty body. `notebookDir` (the
 * notebook's folder relative to the server's root, where its kernel starts) makes --source
 * relative to it, or leaves it out when the run snapshotted that folder itself.
 */
export function cloneCellText(run: RunDetails, notebookDir: string | null = null): string {
  const def = ((run.details || {}) as Record<string, any>).runDefinition || {};
  const job = run.job || { image: null, image_pull: null, script_source: null, source_in_root: null };
  const opts: string[] = ['--cluster', shellQuote(run.cluster || 'local'), '--experiment', shellQuote(run.experiment)];
  const add = (flag: string, value: unknown) => opts.push(flag, shellQuote(String(value)));
  if (def.node_count && def.node_count !== 1) add('--nodes', def.node_count);
  if (def.process_count_per_node && def.process_count_per_node !== 1) add('--processes-per-node', def.process_count_per_node);
  if (def.distribution) add('--distribution', def.distribution);
  const source = sourceOption(def.source_directory, job.source_in_root, notebookDir);
  if (source) add('--source', source);
  let body = '';
  let args: string[] = [];
  if (def.command) {
    add('--command', def.command);
  } else if (job.script_source) {
    if (def.script && def.script !== DEFAULT_SCRIPT) add('--script', def.script);
    body = job.script_source;
    args = (def.arguments || []).map((a: unknown) => shellQuote(String(a)));
  } else if (def.script) {
    // the script came from the folder, not from a cell: run that file again
    add('--command', ['python', def.script, ...(def.arguments || [])].map(a => shellQuote(String(a))).join(' '));
  }
  for (const [id, ref] of Object.entries((def.inputs || {}) as Record<string, unknown>)) {
    const o = dataOption(id, ref, false);
    if (o) add('--input', o);
  }
  for (const [id, ref] of Object.entries((def.outputs || {}) as Record<string, unknown>)) {
    const o = dataOption(id, ref, true);
    if (o) add('--output', o);
  }
  for (const [k, v] of Object.entries((def.environment_variables || {}) as Record<string, unknown>)) {
    add('--env', `${k}=${v}`);
  }
  if (def.gpus_per_process) add('--gpus-per-process', def.gpus_per_process);
  if (job.image) add('--image', job.image);
  if (job.image && job.image_pull && job.image_pull !== DEFAULT_IMAGE_PULL) add('--image-pull', job.image_pull);
  const line = ['%%batchai_job', ...opts, ...(args.length ? ['--', ...args] : [])].join(' ');
  return body ? `${line}\n${body}` : line;
}

/** The part of a NotebookPanel the clone uses. */
interface NotebookLike extends Widget {
  content: {
    activeCellIndex: number;
    model: {
      sharedModel: {
        cells: { getSource(): string; setSource(s: string): void }[];
        insertCell(index: number, cell: { cell_type: 'code'; source: string }): unknown;
      };
    } | null;
  };
  context?: { ready: Promise<void>; path: string };
}

function isNotebook(w: unknown): w is NotebookLike {
  const c = (w as any)?.content;
  return !!c && typeof c.activeCellIndex === 'number' && typeof c.model?.sharedModel?.insertCell === 'function';
}

/** The notebook the user worked in last (the run view takes the focus when its button is clicked). */
export class LastNotebook {
  private last: NotebookLike | null = null;

  constructor(private readonly app: JupyterFrontEnd) {
    const shell = app.shell as unknown as { currentChanged?: { connect(fn: (s: unknown, a: { newValue: unknown }) => void): void } };
    shell.currentChanged?.connect((_s, args) => {
      if (isNotebook(args.newValue)) {
        this.last = args.newValue;
      }
    });
    if (isNotebook(app.shell.currentWidget)) {
      this.last = app.shell.currentWidget;
    }
  }

  /**
   * Insert the cell `text(folder)` gives for the notebook's folder (relative to the server's
   * root) below its active cell, or into a new notebook; shows it.
   */
  async insert(textFor: (notebookDir: string) => string): Promise<void> {
    let nb = this.last && !this.last.isDisposed && this.last.isAttached ? this.last : null;
    if (!nb) {
      const made: unknown = await this.app.commands.execute('notebook:create-new', { kernelName: 'python3' });
      if (!isNotebook(made)) {
        throw new Error('could not open a new notebook for the cell');
      }
      nb = made;
      await nb.context?.ready;
      this.last = nb;
    }
    const model = nb.content.model;
    if (!model) {
      throw new Error('the notebook has no model yet; try again');
    }
    const path = nb.context?.path ?? '';
    const text = textFor(path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '');
    const cells = model.sharedModel.cells;
    if (cells.length === 1 && cells[0].getSource() === '') {
      cells[0].setSource(text); // a new notebook's one empty cell
      nb.content.activeCellIndex = 0;
    } else {
      const at = Math.min(Math.max(nb.content.activeCellIndex, -1) + 1, cells.length);
      model.sharedModel.insertCell(at, { cell_type: 'code', source: text });
      nb.content.activeCellIndex = at;
    }
    this.app.shell.activateById(nb.id);
  }
}
