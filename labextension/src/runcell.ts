/**
 * "Run cell as a Batch AI job": the active code cell of the current notebook becomes a
 * `%%batchai_job` cell (the magic's line is put first unless the cell has it; the rest of the
 * source is left as the user wrote it) and runs in its kernel, which gets the magic first with a
 * silent `%load_ext batchai_jupyter`. The notebook is reached by its shape, as clone.ts does, so
 * the extension needs no dependency on the notebook package.
 */
import { JupyterFrontEnd } from '@jupyterlab/application';

export const MAGIC = '%%batchai_job';
export const LOAD_EXT = '%load_ext batchai_jupyter';

/** The cell's source with the magic's line first (kept when it starts with it already). */
export function asJobCell(source: string): string {
  return source.replace(/^\s+/, '').startsWith(MAGIC) ? source : `${MAGIC}\n${source}`;
}

interface NotebookLike {
  content: { activeCell: { model: { type: string; sharedModel: { getSource(): string; setSource(s: string): void } } } | null };
  sessionContext: {
    ready: Promise<void>;
    session: { kernel: { requestExecute(c: { code: string; silent: boolean; store_history: boolean }): { done: Promise<unknown> } } | null } | null;
  };
}

function isNotebook(w: unknown): w is NotebookLike {
  const nb = w as NotebookLike | null;
  return !!nb && !!nb.content && 'activeCell' in nb.content && !!nb.sessionContext;
}

/** Whether the command applies: the current widget is a notebook whose active cell is code. */
export function canRunCell(app: JupyterFrontEnd): boolean {
  const nb = app.shell.currentWidget;
  return isNotebook(nb) && nb.content.activeCell?.model.type === 'code';
}

export async function runCellAsJob(app: JupyterFrontEnd): Promise<void> {
  const nb = app.shell.currentWidget;
  if (!isNotebook(nb)) throw new Error('open a notebook and select a code cell first');
  const cell = nb.content.activeCell;
  if (!cell || cell.model.type !== 'code') throw new Error('select a code cell to run as a job');
  const source = cell.model.sharedModel.getSource();
  const job = asJobCell(source);
  if (job !== source) cell.model.sharedModel.setSource(job);
  await nb.sessionContext.ready;
  const kernel = nb.sessionContext.session?.kernel;
  if (!kernel) throw new Error('the notebook has no kernel: start one, then run the cell again');
  await kernel.requestExecute({ code: LOAD_EXT, silent: true, store_history: false }).done;
  await app.commands.execute('notebook:run-cell');
}
