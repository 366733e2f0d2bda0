/**
 * Writes deploy/grafana/sessionfleet-fleet.json, the fleet dashboard shipped in the package.
 * Written as code so that every panel has the same shape and the metric names are easy to check:
 * test/deploy/observability.e2e.test.ts compares the committed file with this output and every
 * metric its queries name with what a running agent exports.
 *
 *   npx tsx scripts/gen-dashboard.ts          # write the file
 *   npx tsx scripts/gen-dashboard.ts --check  # exit 1 if the committed file says something else
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const DASHBOARD_FILE = fileURLToPath(new URL('../deploy/grafana/sessionfleet-fleet.json', import.meta.url));

/** Grafana's own variable syntax, not a template string: the datasource chosen on the dashboard. */
// biome-ignore lint/suspicious/noTemplateCurlyInString: a Grafana variable reference
const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

/** Every query is scoped to the job(s) chosen at the top of the dashboard. */
const SEL = 'job=~"$job"';

interface Panel {
  title: string;
  description: string;
  unit: string;
  targets: Array<{ expr: string; legend: string }>;
  kind?: 'timeseries' | 'stat';
  max?: number;
}

const rows: Array<{ title: string; panels: Panel[] }> = [
  {
    title: 'Sessions and capacity',
    panels: [
      {
        title: 'Sessions per instance',
        description: 'Sessions held by each instance (sessionfleet_active_sessions).',
        unit: 'short',
        targets: [{ expr: `sum by (instance_id) (sessionfleet_active_sessions{${SEL}})`, legend: '{{instance_id}}' }],
      },
      {
        title: 'Session utilisation per instance',
        description:
          'Active sessions / sessionsPerInstance. The HPA scales on the average; the alert fires above 90 %.',
        unit: 'percentunit',
        max: 1,
        targets: [
          { expr: `max by (instance_id) (sessionfleet_session_utilization{${SEL}})`, legend: '{{instance_id}}' },
          { expr: `avg(sessionfleet_session_utilization{${SEL}})`, legend: 'fleet average' },
        ],
      },
      {
        title: 'Live instances and placement demand',
        description: 'Instances with a live lease, and new sessions waiting for capacity anywhere in the fleet.',
        unit: 'short',
        targets: [
          { expr: `max(sessionfleet_fleet_instances{${SEL}})`, legend: 'live instances' },
          { expr: `max(sessionfleet_placement_demand{${SEL}})`, legend: 'waiting for capacity' },
        ],
      },
      {
        title: 'Sessions created and ended',
        description: 'Sessions created per front and ended per reason (expired, idle, deleted, drained, …).',
        unit: 'ops',
        targets: [
          {
            expr: `sum by (front) (rate(sessionfleet_sessions_created_total{${SEL}}[$__rate_interval]))`,
            legend: 'created {{front}}',
          },
          {
            expr: `sum by (reason) (rate(sessionfleet_sessions_ended_total{${SEL}}[$__rate_interval]))`,
            legend: 'ended {{reason}}',
          },
        ],
      },
    ],
  },
  {
    title: 'Placement, refusals and hops',
    panels: [
      {
        title: 'Placement and routing decisions',
        description:
          'Decisions of the fleet layer by outcome: placed here or on a peer, routed to the owner (hops), refused.',
        unit: 'ops',
        targets: [
          {
            expr: `sum by (outcome) (rate(sessionfleet_fleet_outcomes_total{${SEL}}[$__rate_interval]))`,
            legend: '{{outcome}}',
          },
        ],
      },
      {
        title: 'Refusals by reason',
        description: 'Requests the agents refused, by error code (see docs for the catalogue).',
        unit: 'ops',
        targets: [
          { expr: `sum by (code) (rate(sessionfleet_rejections_total{${SEL}}[$__rate_interval]))`, legend: '{{code}}' },
        ],
      },
      {
        title: 'Hops to the owner',
        description:
          'Requests for sessions held by another instance, forwarded to it (by registry, cache or signed hint).',
        unit: 'ops',
        targets: [
          {
            expr: `sum by (outcome) (rate(sessionfleet_fleet_outcomes_total{${SEL}, outcome=~"routed_remote|routed_by_hint|rehomed"}[$__rate_interval]))`,
            legend: '{{outcome}}',
          },
        ],
      },
    ],
  },
  {
    title: 'Requests',
    panels: [
      {
        title: 'Request rate by front and outcome',
        description: 'Requests through the agents (HTTP, SSE, WebSocket, Copilot), by outcome.',
        unit: 'reqps',
        targets: [
          {
            expr: `sum by (front, outcome) (rate(sessionfleet_request_duration_seconds_count{${SEL}}[$__rate_interval]))`,
            legend: '{{front}} {{outcome}}',
          },
        ],
      },
      {
        title: 'Latency by front (p50, p99)',
        description: 'Time from request to the end of the response, through the agent.',
        unit: 's',
        targets: [
          {
            expr: `histogram_quantile(0.5, sum by (le, front) (rate(sessionfleet_request_duration_seconds_bucket{${SEL}}[$__rate_interval])))`,
            legend: 'p50 {{front}}',
          },
          {
            expr: `histogram_quantile(0.99, sum by (le, front) (rate(sessionfleet_request_duration_seconds_bucket{${SEL}}[$__rate_interval])))`,
            legend: 'p99 {{front}}',
          },
        ],
      },
      {
        title: 'Error ratio by front',
        description: 'Share of requests that ended rejected or with an upstream error.',
        unit: 'percentunit',
        targets: [
          {
            expr: `sum by (front) (rate(sessionfleet_request_duration_seconds_count{${SEL}, outcome=~"rejected|upstream-error"}[$__rate_interval])) / sum by (front) (rate(sessionfleet_request_duration_seconds_count{${SEL}}[$__rate_interval]))`,
            legend: '{{front}}',
          },
        ],
      },
      {
        title: 'Requests in flight',
        description: 'Requests in flight through each agent (the concurrency the policy limits).',
        unit: 'short',
        targets: [{ expr: `sum by (instance_id) (sessionfleet_inflight_requests{${SEL}})`, legend: '{{instance_id}}' }],
      },
    ],
  },
  {
    title: 'Health',
    panels: [
      {
        title: 'Redis reachable',
        description:
          '1 while the fleet store answers and the instance is registered; locally held sessions keep working without it.',
        unit: 'bool',
        kind: 'stat',
        targets: [{ expr: `min(sessionfleet_fleet_redis_up{${SEL}})`, legend: 'redis' }],
      },
      {
        title: 'Upstreams up',
        description: 'Instances whose upstream (app or Copilot CLI) answered the last probe.',
        unit: 'short',
        kind: 'stat',
        targets: [{ expr: `sum(sessionfleet_upstream_up{${SEL}})`, legend: 'up' }],
      },
      {
        title: 'Draining instances',
        description: 'Instances draining before exit; a drain that lasts 15 minutes raises SessionfleetDrainStuck.',
        unit: 'short',
        kind: 'stat',
        targets: [{ expr: `sum(sessionfleet_draining{${SEL}})`, legend: 'draining' }],
      },
      {
        title: 'Split ownership',
        description:
          'Sessions held here that the registry gave to another instance (after a Redis stall or partition).',
        unit: 'short',
        kind: 'stat',
        targets: [
          { expr: `sum(increase(sessionfleet_fleet_ownership_conflicts_total{${SEL}}[1h]))`, legend: 'last hour' },
        ],
      },
    ],
  },
];

export function buildDashboard(): Record<string, unknown> {
  const panels: unknown[] = [];
  let id = 1;
  let y = 0;
  for (const row of rows) {
    panels.push({ type: 'row', id: id++, title: row.title, collapsed: false, gridPos: { h: 1, w: 24, x: 0, y } });
    y += 1;
    const width = 24 / row.panels.length;
    row.panels.forEach((panel, index) => {
      panels.push({
        type: panel.kind ?? 'timeseries',
        id: id++,
        title: panel.title,
        description: panel.description,
        datasource: DATASOURCE,
        gridPos: { h: 8, w: width, x: index * width, y },
        fieldConfig: {
          defaults: { unit: panel.unit, ...(panel.max === undefined ? {} : { min: 0, max: panel.max }) },
          overrides: [],
        },
        options:
          panel.kind === 'stat'
            ? { reduceOptions: { calcs: ['lastNotNull'] } }
            : { legend: { displayMode: 'list', placement: 'bottom' } },
        targets: panel.targets.map((target, t) => ({
          refId: String.fromCharCode(65 + t),
          datasource: DATASOURCE,
          expr: target.expr,
          legendFormat: target.legend,
        })),
      });
    });
    y += 8;
  }
  return {
    title: 'sessionfleet — fleet',
    uid: 'sessionfleet-fleet',
    description:
      'Sessions, placement, refusals, requests and health of a sessionfleet fleet (from the agents’ /metrics).',
    tags: ['sessionfleet'],
    editable: true,
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-6h', to: 'now' },
    refresh: '30s',
    templating: {
      list: [
        { type: 'datasource', name: 'datasource', label: 'Prometheus', query: 'prometheus' },
        {
          type: 'query',
          name: 'job',
          label: 'Fleet (job)',
          datasource: DATASOURCE,
          query: { query: 'label_values(sessionfleet_active_sessions, job)', refId: 'jobs' },
          definition: 'label_values(sessionfleet_active_sessions, job)',
          refresh: 2,
          multi: true,
          includeAll: true,
          allValue: '.*',
        },
      ],
    },
    annotations: { list: [] },
    panels,
  };
}

export function dashboardText(): string {
  return `${JSON.stringify(buildDashboard(), null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = dashboardText();
  if (process.argv.includes('--check')) {
    // Compared as data: the formatter may lay the committed file out differently.
    let current: unknown;
    try {
      current = JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8'));
    } catch {}
    if (JSON.stringify(current) !== JSON.stringify(buildDashboard())) {
      console.error(`${DASHBOARD_FILE} is stale: run npx tsx scripts/gen-dashboard.ts`);
      process.exit(1);
    }
  } else {
    writeFileSync(DASHBOARD_FILE, text);
  }
}
