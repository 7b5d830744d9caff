/** The run view: overview, live logs, children, files and spec of one run, with its actions. */
import * as React from 'react';
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { JupyterFrontEnd } from '@jupyterlab/application';

import type { BatchAIClient, EventsClient, RunDetails } from '../api';
import { Children } from './Children';
import { cloneCellText, LastNotebook } from './clone';
import { formatDuration, formatTime, isActive, liveDuration } from './fmt';
import { errorText, useNow, usePoll, useVisible, Visibility } from './hooks';
import { LogFollower } from './logfollow';
import { LogView } from './LogView';
import { Metrics } from './Metrics';

interface Props {
  client: BatchAIClient;
  events: EventsClient;
  runId: string;
  app: JupyterFrontEnd;
  notebooks: LastNotebook;
  visibility: Visibility;
}

type Tab = 'overview' | 'logs' | 'metrics' | 'children' | 'files' | 'spec';

function Overview(props: { run: Record<string, any>; now: number }): JSX.Element {
  const { run, now } = props;
  const d = run.details || {};
  const err = d.error || run.error;
  const rows: [string, string][] = [
    ['Experiment', run.experiment],
    ['Cluster', run.cluster || '—'],
    ['Created', formatTime(run.created)],
    ['Started', formatTime(run.started)],
    ['Ended', formatTime(run.ended)],
    ['Duration', formatDuration(liveDuration(run.started, run.ended, run.duration, now))],
    ['Nodes', (d.nodes || []).join(', ') || '—'],
    ['Tags', Object.entries(run.tags || {}).map(([k, v]) => `${k}=${v}`).join(', ') || '—']
  ];
  const warning = (d.properties || {}).warning;
  if (warning) {
    rows.push(['Warning', String(warning)]); // e.g. the workspace disk is full: copies wait
  }
  if (err && err.exit_codes) {
    rows.push(['Exit codes', Object.entries(err.exit_codes).map(([k, v]) => `${k}: ${v}`).join(', ')]);
  }
  return (
    <div className="bai-runview-overview">
      <table>
        <tbody>
          {rows.map(([k, v]) => (
            <tr key={k}>
              <th>{k}</th>
              <td>{v}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {err && run.status === 'Failed' ? (
        <div className="bai-runview-error">
          <div>{err.message}{err.failed_process ? ` (${err.failed_process})` : ''}</div>
          {err.last_lines ? <pre>{err.last_lines.join('\n')}</pre> : null}
        </div>
      ) : null}
    </div>
  );
}

function Logs(props: { client: BatchAIClient; runId: string; active: boolean; visible: boolean }): JSX.Element {
  const { client, runId, active, visible } = props;
  const [files, setFiles] = React.useState<{ name: string; size: number }[]>([]);
  const [file, setFile] = React.useState('');
  usePoll(async () => {
    const found = await client.logFiles(runId);
    setFiles(found);
    setFile(f => f || (found.find(x => /stdout/.test(x.name)) || found[0] || { name: '' }).name);
  }, 5000, visible && (active || files.length === 0));
  const follower = React.useMemo(
    () => (file ? new LogFollower(q => client.log(runId, file, q)) : null),
    [client, runId, file]
  );
  React.useEffect(() => () => follower?.dispose(), [follower]);
  usePoll(() => follower?.poll(), 500, !!follower && visible && (active || !follower.started || follower.behind));
  return (
    <div className="bai-runview-logs">
      <select className="bai-log-file" value={file} onChange={e => setFile(e.target.value)}>
        {files.map(f => (
          <option key={f.name} value={f.name}>{f.name}</option>
        ))}
      </select>
      {follower ? <LogView follower={follower} fileName={file} downloadUrl={client.fileUrl(runId, file)} /> : <div>no log files yet</div>}
    </div>
  );
}

export function RunView(props: Props): JSX.Element {
  const { client, events, runId, app, notebooks, visibility } = props;
  const visible = useVisible(visibility);
  const [run, setRun] = React.useState<RunDetails | null>(null);
  const [error, setError] = React.useState('');
  const [notice, setNotice] = React.useState('');
  const [tab, setTab] = React.useState<Tab>('overview');
  const active = !run || isActive(run.status);
  const now = useNow(active && visible);
  const reload = async () => {
    try {
      setRun(await client.run(runId));
      setError('');
    } catch (e) {
      setError(errorText(e));
    }
  };
  usePoll(reload, 2000, visible && active);
  React.useEffect(() => {
    if (!visible) {
      return;
    }
    // a status change of this run (or of a child: the parent's counts and metric) reads it again
    return events.listen(e => {
      if (e.type === 'run.status' && (e.run_id === runId || e.parent_id === runId)) {
        void reload();
      }
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [events, runId, visible]);

  const act = async (f: () => Promise<unknown>) => {
    try {
      await f();
      await reload();
    } catch (e) {
      setError(errorText(e));
    }
  };
  const openRun = (id: string) => void app.commands.execute('batchai-jupyter:open-run', { id });
  const cancel = () => act(() => client.cancel(runId));
  const rerun = () =>
    act(async () => {
      const row = await client.rerun(runId);
      openRun(row.id);
    });
  const clone = () =>
    act(async () => {
      if (run) {
        await notebooks.insert(dir => cloneCellText(run, dir));
        setNotice('cell added below the active cell of the notebook');
      }
    });
  const remove = async () => {
    const ok = await showDialog({
      title: 'Delete run',
      body: `Delete run ${runId} and its files?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (ok.button.accept) {
      await act(() => client.deleteRun(runId));
    }
  };
  if (!run) {
    return <div className="bai-runview">{error || 'loading…'}</div>;
  }
  const d = (run.details || {}) as Record<string, any>;
  const tabs: Tab[] = ['overview', 'logs', 'metrics', 'children', 'files', 'spec'];
  return (
    <div className="bai-runview">
      <div className="bai-runview-header">
        <b>{run.experiment}</b> · run {run.number} · <code>{run.id}</code> ·{' '}
        <span className={`bai-runview-status bai-status-${run.status}`}>{run.status}</span>
        <span className="bai-runview-actions">
          {active ? <button className="bai-runview-cancel" onClick={cancel}>Cancel</button> : null}
          <button className="bai-runview-rerun" onClick={rerun}>Rerun</button>
          <button className="bai-runview-clone" onClick={clone} title="Insert a %%batchai_job cell that submits this job again">
            Clone to cell
          </button>
          {!active ? <button className="bai-runview-delete" onClick={remove}>Delete</button> : null}
          <button className="bai-runview-copy" onClick={() => Clipboard.copyToSystem(run.id)}>Copy id</button>
        </span>
      </div>
      {error ? <div className="bai-runview-error">{error}</div> : null}
      {notice ? <div className="bai-runview-notice">{notice}</div> : null}
      <div className="bai-runview-tabs">
        {tabs.map(t => (
          <button key={t} className={t === tab ? 'bai-tab bai-tab-current' : 'bai-tab'} onClick={() => setTab(t)}>
            {t[0].toUpperCase() + t.slice(1)}
            {t === 'children' && run.children ? ` (${run.children})` : ''}
          </button>
        ))}
      </div>
      <div className="bai-runview-body">
        {tab === 'overview' ? <Overview run={run} now={now} /> : null}
        {tab === 'logs' ? <Logs client={client} runId={runId} active={active} visible={visible} /> : null}
        {tab === 'metrics' ? <Metrics client={client} runId={runId} active={active} visible={visible} /> : null}
        {tab === 'children' ? <Children client={client} parent={run} visible={visible} openRun={openRun} /> : null}
        {tab === 'files' ? (
          <ul className="bai-runview-files">
            {(run.files || []).map((f: string) => (
              <li key={f}><a href={client.fileUrl(runId, f)} download={f}>{f}</a></li>
            ))}
          </ul>
        ) : null}
        {tab === 'spec' ? (
          <div className="bai-runview-spec">
            {run.job?.script_source ? <pre className="bai-runview-source">{run.job.script_source}</pre> : null}
            <pre>{JSON.stringify(d.spec || d.runDefinition || {}, null, 2)}</pre>
          </div>
        ) : null}
      </div>
    </div>
  );
}
