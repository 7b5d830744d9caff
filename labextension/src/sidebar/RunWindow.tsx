/**
 * The run list's window: items of one fixed height, of which only those in (and near) the
 * scrolled viewport are in the DOM, so thousands of loaded rows cost what ~40 cost. Short lists
 * (under WINDOW_FROM items) are drawn whole, in the page's own scroll. Consecutive items of one
 * experiment are wrapped in a `.bai-run-group` element, as the unwindowed list has them.
 */
import * as React from 'react';

export const ITEM_HEIGHT = 24;
export const WINDOW_FROM = 200;
const OVERSCAN = 10;

export interface WindowItem {
  key: string;
  group: string | null;
  render: () => JSX.Element;
}

export interface RunWindowProps {
  items: WindowItem[];
  /** asked when the window's end comes within a few items of the last one */
  onNearEnd: () => void;
  children?: React.ReactNode;
}

export function RunWindow(props: RunWindowProps): JSX.Element {
  const { items } = props;
  const box = React.useRef<HTMLDivElement>(null);
  const [top, setTop] = React.useState(0);
  const [height, setHeight] = React.useState(600);
  const windowed = items.length >= WINDOW_FROM;

  React.useEffect(() => {
    const el = box.current;
    if (!el || !windowed) return;
    const seen = new ResizeObserver(() => setHeight(el.clientHeight || 600));
    seen.observe(el);
    setHeight(el.clientHeight || 600);
    return () => seen.disconnect();
  }, [windowed]);

  const onScroll = (e: React.UIEvent<HTMLDivElement>) => {
    const el = e.currentTarget;
    setTop(el.scrollTop);
    if (el.scrollTop + el.clientHeight >= el.scrollHeight - 5 * ITEM_HEIGHT) props.onNearEnd();
  };

  const first = windowed ? Math.max(0, Math.floor(top / ITEM_HEIGHT) - OVERSCAN) : 0;
  const last = windowed ? Math.min(items.length, Math.ceil((top + height) / ITEM_HEIGHT) + OVERSCAN) : items.length;
  const runs: { group: string | null; items: WindowItem[] }[] = [];
  for (const item of items.slice(first, last)) {
    const at = runs[runs.length - 1];
    if (at && at.group === item.group) at.items.push(item);
    else runs.push({ group: item.group, items: [item] });
  }
  const body = runs.map((chunk, i) => chunk.group === null
    ? <React.Fragment key={`c${first}-${i}`}>{chunk.items.map(it => <React.Fragment key={it.key}>{it.render()}</React.Fragment>)}</React.Fragment>
    : <div className="bai-run-group" data-experiment={chunk.group} key={`g:${chunk.group}`}>
      {chunk.items.map(it => <React.Fragment key={it.key}>{it.render()}</React.Fragment>)}
    </div>);
  return (
    <div ref={box} className={`bai-run-list${windowed ? ' bai-run-list-windowed' : ''}`} data-items={items.length}
      onScroll={windowed ? onScroll : undefined}>
      {windowed ? (
        <div className="bai-run-window" style={{ height: items.length * ITEM_HEIGHT, position: 'relative' }}>
          <div style={{ position: 'absolute', top: first * ITEM_HEIGHT, left: 0, right: 0 }}>{body}</div>
        </div>
      ) : body}
      {props.children}
    </div>
  );
}
