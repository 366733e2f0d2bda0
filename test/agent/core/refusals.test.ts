import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../agent/core/logger.js';
import { createMetrics } from '../../../agent/core/metrics.js';
import { Refusals } from '../../../agent/core/refusals.js';

describe('Refusals', () => {
  it('counts every refusal, logs one line per reason per quiet period, and says how many it left out', async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createLogger({
      level: 'info',
      instanceId: 't',
      destination: { write: (l: string) => lines.push(JSON.parse(l)) },
    });
    const metrics = createMetrics({ instanceId: 't', defaultMetrics: false });
    let now = 0;
    const refusals = new Refusals('copilot', metrics, logger, 10_000, () => now);
    for (let i = 0; i < 5; i++) refusals.refuse('handshake-timeout', { remote: '10.0.0.1' }, 'closed');
    refusals.refuse('frame-too-large', { limit: 1 }, 'too large');
    now = 10_000;
    refusals.refuse('handshake-timeout', { remote: '10.0.0.2' }, 'closed');
    const counted = await metrics.connectionsRefused.get();
    expect(counted.values.map((v) => [v.labels.reason, v.value])).toEqual([
      ['handshake-timeout', 6],
      ['frame-too-large', 1],
    ]);
    expect(lines.map((l) => [l.refusal, l.alsoRefusedWithoutLog, l.remote])).toEqual([
      ['handshake-timeout', undefined, '10.0.0.1'],
      ['frame-too-large', undefined, undefined],
      ['handshake-timeout', 4, '10.0.0.2'],
    ]);
  });
});
