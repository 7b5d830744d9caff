/** The plugin: the Batch AI sidebar panel, run views, status-bar counts and end-of-run notifications. */
import { ILabShell, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { LabIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { BatchAIClient, EventsClient } from './api';
import { BatchAIPanel } from './panel';
import { canRunCell, runCellAsJob } from './runcell';
import { createRunView, LastNotebook } from './runview';

import '../style/index.css';

const PLUGIN_ID = 'batchai-jupyter-labextension:plugin';

const icon = new LabIcon({
  name: 'batchai-jupyter:icon',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><g class="jp-icon3" fill="#616161">' +
    '<rect x="3" y="4" width="18" height="4" rx="1"/><rect x="3" y="10" width="18" height="4" rx="1"/>' +
    '<rect x="3" y="16" width="18" height="4" rx="1"/></g></svg>'
});

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  autoStart: true,
  optional: [ILabShell, ICommandPalette, IStatusBar, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    shell: ILabShell | null,
    palette: ICommandPalette | null,
    statusBar: IStatusBar | null,
    settings: ISettingRegistry | null
  ) => {
    const client = new BatchAIClient(app.serviceManager.serverSettings);
    const events = new EventsClient(client);
    let notifyOn: string[] = ['Failed', 'Completed'];
    const views = new Map<string, Widget>();
    const notebooks = new LastNotebook(app);

    const openRun = (id: string) => {
      let view = views.get(id);
      if (!view || view.isDisposed) {
        view = createRunView({ runId: id, client, events, app, notebooks });
        views.set(id, view);
        app.shell.add(view, 'main');
      }
      app.shell.activateById(view.id);
    };

    const panel = new BatchAIPanel({ client, events, openRun });
    panel.title.icon = icon;
    panel.title.caption = 'Batch AI';
    app.shell.add(panel, 'left', { rank: 600 });

    app.commands.addCommand('batchai-jupyter:open-panel', {
      label: 'Batch AI: Open panel',
      execute: () => app.shell.activateById(panel.id)
    });
    app.commands.addCommand('batchai-jupyter:open-run', {
      label: 'Batch AI: Open run',
      execute: args => openRun(String(args.id))
    });
    app.commands.addCommand('batchai:run-cell', {
      label: 'Run cell as a Batch AI job',
      caption: 'Submit this cell as a %%batchai_job run (the run shows in the Batch AI panel)',
      icon,
      isEnabled: () => canRunCell(app),
      execute: async () => {
        try {
          await runCellAsJob(app);
        } catch (err) {
          Notification.error(`Run cell as a Batch AI job: ${(err as Error).message}`, { autoClose: 8000 });
        }
      }
    });
    palette?.addItem({ command: 'batchai-jupyter:open-panel', category: 'Batch AI' });
    palette?.addItem({ command: 'batchai:run-cell', category: 'Batch AI' });

    if (statusBar) {
      const item = new Widget();
      item.addClass('bai-statusbar');
      item.node.title = 'Batch AI runs';
      item.node.onclick = () => app.shell.activateById(panel.id);
      const update = async () => {
        try {
          const page = await client.runs({ limit: 1, fields: ['id'] });
          const c = page.counts;
          const parts = [['Running', 'running'], ['Queued', 'queued'], ['Failed', 'failed']]
            .filter(([k]) => (c[k] ?? 0) > 0)
            .map(([k, label]) => `${c[k]} ${label}`);
          item.node.textContent = parts.length ? parts.join(' · ') : 'Batch AI';
        } catch {
          item.node.textContent = 'Batch AI';
        }
      };
      void update();
      statusBar.registerStatusItem('batchai-jupyter:status', { item, align: 'left', rank: 50 });
      let pending: number | null = null;
      events.listen(e => {
        if (e.type !== 'run.status') return;
        if (pending === null) pending = window.setTimeout(() => { pending = null; void update(); }, 300);
      });
    }

    // notifications: only for runs that end after the page loaded
    const started = Date.now() / 1000;
    events.listen(e => {
      if (e.type !== 'run.status' || e.ts < started - 1 || !notifyOn.includes(e.status)) return;
      const actions = [
        { label: 'Open logs', callback: () => openRun(e.run_id) },
        { label: 'Rerun', callback: () => void client.rerun(e.run_id).then(r => openRun(r.id)) }
      ];
      const text = `Run ${e.run_id} ${e.status.toLowerCase()}${e.message ? `: ${e.message}` : ''}`;
      if (e.status === 'Failed') Notification.error(text, { autoClose: false, actions });
      else if (e.status === 'Completed') Notification.success(text, { autoClose: 8000, actions });
      else Notification.info(text, { autoClose: 8000, actions });
    });

    if (settings) {
      void settings.load(PLUGIN_ID).then(s => {
        const read = () => { notifyOn = (s.get('notifyOn').composite as string[]) ?? notifyOn; };
        read();
        s.changed.connect(read);
      }).catch(() => undefined);
    }
  }
};

export default plugin;
