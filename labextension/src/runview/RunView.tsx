/** The run view: overview, live logs, children, files and spec of one run, with its actions. */
import * as React from 'react';
import { Clipboard, Dialog, showDialog } from '@jupyterlab/apputils';
import { JupyterFrontEnd } from '@jupyterlab/application';

import { formatDuration, formatTime, isActive, liveDuration } from './fmt';
import { errorText, useNow, usePoll, useVisible, Visibility } from './hooks';
import { LogFollower } from './logfollow';
import { LogView } from './LogView';
import { RunRest } from './rest';

interface Props {
  rest: RunRest;
  app: JupyterFrontEnd;
  visibility: Visibility;
}

type Tab = 'overview' | 'logs' | 'children' | 'files' | 'spec';

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

function Logs(props: { rest: RunRest; active: boolean; visible: boolean }): JSX.Element {
  const { rest, active, visible } = props;
  const [files, setFiles] = React.useState<{ name: string; size: number }[]>([]);
  const [file, setFile] = React.useState('');
  usePoll(async () => {
    const r = await rest.logs();
    setFiles(r.files);
    setFile(f => f || (r.files.find(x => /stdout/.test(x.name)) || r.files[0] || { name: '' }).name);
  }, 5000, visible && (active || files.length === 0));
  const follower = React.useMemo(
    () => (file ? new LogFollower(q => rest.readLog(file, q)) : null),
    [rest, file]
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
      {follower ? <LogView follower={follower} fileName={file} downloadUrl={rest.fileUrl(file)} /> : <div>no log files yet</div>}
    </div>
  );
}

export function RunView(props: Props): JSX.Element {
  const { rest, app, visibility } = props;
  const visible = useVisible(visibility);
  const [run, setRun] = React.useState<Record<string, any> | null>(null);
  const [error, setError] = React.useState('');
  const [tab, setTab] = React.useState<Tab>('overview');
  const [children, setChildren] = React.useState<Record<string, any>[]>([]);
  const active = !run || isActive(run.status);
  const now = useNow(active && visible);
  usePoll(async () => {
    try {
      setRun(await rest.run());
      setError('');
    } catch (e) {
      setError(errorText(e));
    }
  }, 2000, visible && active);
  usePoll(async () => setChildren((await rest.children()).runs), 5000, visible && tab === 'children' && active);

  const act = async (f: () => Promise<unknown>) => {
    try {
      await f();
      setRun(await rest.run());
    } catch (e) {
      setError(errorText(e));
    }
  };
  const cancel = () => act(() => rest.action('cancel'));
  const rerun = () =>
    act(async () => {
      const row = await rest.action('rerun');
      await app.commands.execute('batchai-jupyter:open-run', { id: row.id });
    });
  const remove = async () => {
    const ok = await showDialog({
      title: 'Delete run',
      body: `Delete run ${rest.runId} and its files?`,
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (ok.button.accept) {
      await act(() => rest.remove());
    }
  };
  if (!run) {
    return <div className="bai-runview">{error || 'loading…'}</div>;
  }
  const d = run.details || {};
  const tabs: Tab[] = ['overview', 'logs', 'children', 'files', 'spec'];
  return (
    <div className="bai-runview">
      <div className="bai-runview-header">
        <b>{run.experiment}</b> · run {run.number} · <code>{run.id}</code> ·{' '}
        <span className={`bai-runview-status bai-status-${run.status}`}>{run.status}</span>
        <span className="bai-runview-actions">
          {active ? <button className="bai-runview-cancel" onClick={cancel}>Cancel</button> : null}
          <button className="bai-runview-rerun" onClick={rerun}>Rerun</button>
          {!active ? <button className="bai-runview-delete" onClick={remove}>Delete</button> : null}
          <button className="bai-runview-copy" onClick={() => Clipboard.copyToSystem(run.id)}>Copy id</button>
        </span>
      </div>
      {error ? <div className="bai-runview-error">{error}</div> : null}
      <div className="bai-runview-tabs">
        {tabs.map(t => (
          <button key={t} className={t === tab ? 'bai-tab bai-tab-current' : 'bai-tab'} onClick={() => setTab(t)}>
            {t[0].toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      <div className="bai-runview-body">
        {tab === 'overview' ? <Overview run={run} now={now} /> : null}
        {tab === 'logs' ? <Logs rest={rest} active={active} visible={visible} /> : null}
        {tab === 'children' ? (
          <table className="bai-runview-children">
            <tbody>
              {children.map(c => (
                <tr key={c.id} onClick={() => app.commands.execute('batchai-jupyter:open-run', { id: c.id })}>
                  <td>{c.number}</td><td>{c.id}</td><td>{c.status}</td><td>{formatDuration(c.duration)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        ) : null}
        {tab === 'files' ? (
          <ul className="bai-runview-files">
            {(run.files || []).map((f: string) => (
              <li key={f}><a href={rest.fileUrl(f)} download={f}>{f}</a></li>
            ))}
          </ul>
        ) : null}
        {tab === 'spec' ? <pre className="bai-runview-spec">{JSON.stringify(d.spec || d.runDefinition || {}, null, 2)}</pre> : null}
      </div>
    </div>
  );
}
