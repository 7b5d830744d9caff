/**
 * The live log viewer: a virtualised terminal over a LogFollower. Only the lines in view are
 * in the DOM; the tail is followed unless the user scrolled up (then "jump to newest").
 */
import * as React from 'react';

import { renderStyle } from './ansi';
import { linePieces } from './highlight';
import { findMatches, Match, visibleWindow } from './logbuffer';
import { LogFollower } from './logfollow';
import { Line } from './terminal';

/** Must match `.bai-log-line` height in style/runview.css. */
export const LINE_HEIGHT = 18;

interface Props {
  follower: LogFollower;
  downloadUrl: string;
  fileName: string;
}

function useFollowerVersion(follower: LogFollower): number {
  const [, setTick] = React.useState(0);
  React.useEffect(() => follower.onChange(() => setTick(t => t + 1)), [follower]);
  return follower.buffer.version;
}

function LineView(props: {
  line: Line;
  top: number;
  ranges: [number, number, number][];
  current: number;
}): JSX.Element {
  const { line, top, ranges, current } = props;
  const pieces = linePieces(line, ranges);
  return (
    <div className="bai-log-line" style={{ top }}>
      {pieces.length === 0
        ? '\u200b'
        : pieces.map((p, i) => {
            const r = renderStyle(p.style);
            let cls = r.className;
            if (p.match >= 0) {
              cls += p.match === current ? ' bai-log-match bai-log-match-current' : ' bai-log-match';
            }
            if (!cls && !r.color && !r.background) {
              return p.text;
            }
            const style: React.CSSProperties = {};
            if (r.color) {
              style.color = r.color;
            }
            if (r.background) {
              style.backgroundColor = r.background;
            }
            return (
              <span key={i} className={cls.trim()} style={style}>
                {p.text}
              </span>
            );
          })}
    </div>
  );
}

export function LogView(props: Props): JSX.Element {
  const { follower, downloadUrl, fileName } = props;
  const version = useFollowerVersion(follower);
  const buffer = follower.buffer;
  const box = React.useRef<HTMLDivElement>(null);
  const [scroll, setScroll] = React.useState({ top: 0, height: 400 });
  const [follow, setFollow] = React.useState(true);
  const followRef = React.useRef(true);
  const upAt = React.useRef(0);
  const [query, setQuery] = React.useState('');
  const [current, setCurrent] = React.useState(0);
  const loadingEarlier = React.useRef(false);

  const setFollowing = (on: boolean) => {
    followRef.current = on;
    setFollow(on);
  };

  const matches: Match[] = React.useMemo(
    () => findMatches(buffer, query),
    // the buffer changes in place: its version says when
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [buffer, version, query]
  );

  const count = buffer.length;
  const total = count * LINE_HEIGHT;

  // follow the tail after every change
  React.useLayoutEffect(() => {
    const el = box.current;
    if (el && followRef.current) {
      el.scrollTop = el.scrollHeight;
      setScroll({ top: el.scrollTop, height: el.clientHeight });
    }
  }, [version, count]);

  React.useEffect(() => {
    const el = box.current;
    if (!el) {
      return;
    }
    const resize = new ResizeObserver(() => {
      if (followRef.current) {
        el.scrollTop = el.scrollHeight;
      }
      setScroll({ top: el.scrollTop, height: el.clientHeight });
    });
    resize.observe(el);
    return () => resize.disconnect();
  }, []);

  const loadEarlier = async () => {
    const el = box.current;
    if (!el || loadingEarlier.current || !buffer.canLoadEarlier) {
      return;
    }
    loadingEarlier.current = true;
    try {
      const added = await follower.loadEarlier();
      if (added > 0 && box.current) {
        box.current.scrollTop += added * LINE_HEIGHT; // the lines in view stay in place
        setScroll({ top: box.current.scrollTop, height: box.current.clientHeight });
        setCurrent(c => c); // matches are recomputed from the new version
      }
    } finally {
      loadingEarlier.current = false;
    }
  };

  const up = () => {
    upAt.current = performance.now();
    if (followRef.current) {
      setFollowing(false);
    }
  };

  const onScroll = () => {
    const el = box.current;
    if (!el) {
      return;
    }
    setScroll({ top: el.scrollTop, height: el.clientHeight });
    const bottom = el.scrollHeight - el.scrollTop - el.clientHeight < 4;
    if (bottom && !followRef.current && performance.now() - upAt.current < 300) {
      return; // a smooth scroll upwards has not moved yet
    }
    if (bottom !== followRef.current) {
      setFollowing(bottom);
    }
    if (el.scrollTop < LINE_HEIGHT * 5) {
      void loadEarlier();
    }
  };

  const jumpTo = (index: number) => {
    if (matches.length === 0) {
      return;
    }
    const i = ((index % matches.length) + matches.length) % matches.length;
    setCurrent(i);
    const el = box.current;
    if (el) {
      setFollowing(false);
      upAt.current = performance.now();
      el.scrollTop = Math.max(0, matches[i].line * LINE_HEIGHT - el.clientHeight / 2);
      setScroll({ top: el.scrollTop, height: el.clientHeight });
    }
  };

  const jumpToNewest = () => {
    setFollowing(true);
    const el = box.current;
    if (el) {
      el.scrollTop = el.scrollHeight;
    }
  };

  const { first, last } = visibleWindow(scroll.top, scroll.height, LINE_HEIGHT, count);
  // the matches on each rendered line
  const byLine = new Map<number, [number, number, number][]>();
  if (matches.length) {
    let lo = 0;
    let hi = matches.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (matches[mid].line < first) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    for (let k = lo; k < matches.length && matches[k].line < last; k++) {
      const m = matches[k];
      const list = byLine.get(m.line) || [];
      list.push([m.start, m.end, k]);
      byLine.set(m.line, list);
    }
  }
  const rows: JSX.Element[] = [];
  for (let i = first; i < last; i++) {
    rows.push(
      <LineView
        key={i}
        line={buffer.line(i)}
        top={i * LINE_HEIGHT}
        ranges={byLine.get(i) || []}
        current={current}
      />
    );
  }

  const earlierNote = buffer.dropped
    ? `${buffer.dropped.toLocaleString()} earlier lines are not kept here — download the file to see them`
    : buffer.firstOffset > 0
      ? 'scroll up for earlier lines'
      : '';

  return (
    <div className="bai-log">
      <div className="bai-log-toolbar">
        <input
          className="bai-log-search"
          type="search"
          placeholder="Search the log"
          value={query}
          onChange={e => {
            setQuery(e.target.value);
            setCurrent(0);
          }}
          onKeyDown={e => {
            if (e.key === 'Enter') {
              jumpTo(current + (e.shiftKey ? -1 : 1));
            }
          }}
        />
        <span className="bai-log-match-count">
          {query ? (matches.length ? `${current + 1} / ${matches.length}` : 'no match') : ''}
        </span>
        <button className="bai-log-prev" disabled={!matches.length} onClick={() => jumpTo(current - 1)}>
          ↑
        </button>
        <button className="bai-log-next" disabled={!matches.length} onClick={() => jumpTo(current + 1)}>
          ↓
        </button>
        <span className="bai-log-earlier">{earlierNote}</span>
        <a className="bai-log-download" href={downloadUrl} download={fileName}>
          Download
        </a>
      </div>
      {follower.error ? <div className="bai-log-error">{follower.error}</div> : null}
      <div
        className="bai-log-view"
        ref={box}
        tabIndex={0}
        onScroll={onScroll}
        onWheel={e => {
          if (e.deltaY < 0) {
            up();
          }
        }}
        onKeyDown={e => {
          if (['ArrowUp', 'PageUp', 'Home'].includes(e.key)) {
            up();
          }
        }}
        onMouseDown={e => {
          const el = box.current;
          if (el && e.nativeEvent.offsetX > el.clientWidth) {
            up(); // the scroll bar
          }
        }}
      >
        <div className="bai-log-lines" style={{ height: Math.max(total, LINE_HEIGHT) }}>
          {!follower.started ? <div className="bai-log-empty">loading…</div> : null}
          {follower.started && count === 0 ? <div className="bai-log-empty">(empty so far)</div> : null}
          {rows}
        </div>
      </div>
      {follow ? null : (
        <button className="bai-log-jump" onClick={jumpToNewest}>
          ↓ jump to newest
        </button>
      )}
    </div>
  );
}
