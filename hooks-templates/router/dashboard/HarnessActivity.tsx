// dashboard/src/components/HarnessActivity.tsx: the Harness Activity panel in the
// router's React dashboard. `npm install claude-metrics` in the dashboard; the
// router serves /harness/api/* (hooks-templates/router/harness_proxy.py), so
// the browser needs no collector token. Built and run in Chromium by
// test/panel.test.ts (Vite + React 19).
import { useEffect, useLayoutEffect, useRef } from 'react';
import 'claude-metrics/panel';
import type { HarnessActivityElement } from 'claude-metrics/panel';
import type { ClientError } from 'claude-metrics/client';

export interface HarnessActivityProps {
  /** Where the router serves the collector's /api (default /harness). */
  endpoint?: string;
  /** Only when the browser talks to the collector itself; behind the proxy leave it out. */
  token?: string;
  /** Seconds between refreshes; 0 = never. */
  refresh?: number;
  days?: number;
  limit?: number;
  source?: string;
  project?: string;
  label?: string;
  heading?: string;
  id?: string;
  className?: string;
  /** Theme with --cha-* custom properties, e.g. { '--cha-accent': '#7c3aed' }. */
  style?: Record<string, string>;
  onError?: (error: ClientError) => void;
}

declare module 'react' {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace JSX {
    interface IntrinsicElements {
      'claude-harness-activity': Record<string, unknown>;
    }
  }
}

export function HarnessActivity({ endpoint = '/harness', token, refresh = 30, days = 14, limit = 10, source, project, label, heading, id, className, style, onError }: HarnessActivityProps) {
  const ref = useRef<HarnessActivityElement | null>(null);
  // A property, not an attribute: the token stays out of the DOM. A layout effect runs
  // before the element's first load (queued when React inserts it), so that load has the token.
  useLayoutEffect(() => {
    if (ref.current) ref.current.token = token;
  }, [token]);
  useEffect(() => {
    const el = ref.current;
    if (!el || !onError) return;
    const handler = (e: Event) => onError((e as CustomEvent<ClientError>).detail);
    el.addEventListener('harness-activity-error', handler);
    return () => el.removeEventListener('harness-activity-error', handler);
  }, [onError]);
  return (
    <claude-harness-activity
      ref={ref}
      id={id}
      class={className}
      style={style}
      endpoint={endpoint}
      refresh={String(refresh)}
      days={String(days)}
      limit={String(limit)}
      source={source}
      project={project}
      label={label}
      heading={heading}
    />
  );
}
