/** The schedules section: next fire, enable / disable, trigger now. */
import * as React from 'react';

import { BatchAIClient, ScheduleInfo } from '../api';

export function Schedules(props: { client: BatchAIClient; schedules: ScheduleInfo[]; refresh: () => void }): JSX.Element {
  const { client, refresh } = props;
  return (
    <div className="bai-schedules">
      {props.schedules.map(s => (
        <div className="bai-schedule-row" key={s.name}>
          <b>{s.name}</b> <span className="bai-muted">{s.cron ?? String(s.every ?? '')}</span>
          <span className="bai-muted"> next {s.next?.[0] ?? '—'}</span>
          <button onClick={() => void client.scheduleAction(s.name, s.state === 'enabled' ? 'disable' : 'enable').then(refresh)}>
            {s.state === 'enabled' ? 'Disable' : 'Enable'}
          </button>
          <button onClick={() => void client.scheduleAction(s.name, 'trigger').then(refresh)}>Trigger</button>
        </div>
      ))}
    </div>
  );
}
