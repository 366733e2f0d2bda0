/**
 * The limit flags of ADR 0017: defaults from `AGENT_LIMIT_DEFAULTS`, values from the flag or its
 * variable, and every bad value named with its flag, value and rule.
 */
import { describe, expect, it } from 'vitest';
import { type ConfigError, parseAgentConfig } from '../../agent/config.js';
import { AGENT_LIMIT_DEFAULTS } from '../../policy/agent-interface.js';

const base = ['--policy', 'p', '--upstream', 'tcp://127.0.0.1:1'];

function problemsOf(args: string[], env: NodeJS.ProcessEnv = {}): readonly string[] {
  try {
    parseAgentConfig([...base, ...args], env);
  } catch (error) {
    return (error as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
}

describe('limit flags', () => {
  it('default to AGENT_LIMIT_DEFAULTS', () => {
    expect(parseAgentConfig(base, {}).limits).toEqual(AGENT_LIMIT_DEFAULTS);
  });

  it('take the flag, else the variable', () => {
    const config = parseAgentConfig(
      [...base, '--copilot-handshake-timeout-ms', '2500', '--http-max-body-bytes', '1048576'],
      { SESSIONFLEET_COPILOT_MAX_UNAUTHENTICATED: '16', SESSIONFLEET_HTTP_MAX_BODY_BYTES: '5' },
    );
    expect(config.limits?.copilot).toMatchObject({ handshakeTimeoutMs: 2500, maxUnauthenticated: 16 });
    expect(config.limits?.http.maxBodyBytes).toBe(1_048_576);
  });

  it('name the flag, the value and the rule for a bad value, and check the pairs', () => {
    expect(problemsOf(['--copilot-max-unauthenticated', '0'])).toEqual([
      '--copilot-max-unauthenticated ("0") must be a whole number from 1 to 1000000',
    ]);
    expect(problemsOf(['--http-request-timeout-ms', '1.5'])).toEqual([
      '--http-request-timeout-ms ("1.5") must be a whole number from 100 to 86400000',
    ]);
    expect(problemsOf([], { SESSIONFLEET_COPILOT_HANDSHAKE_FRAME_BYTES: 'big' })).toEqual([
      'SESSIONFLEET_COPILOT_HANDSHAKE_FRAME_BYTES ("big") must be a whole number from 1024 to 1073741824',
    ]);
    expect(problemsOf(['--copilot-handshake-frame-bytes', '65536', '--copilot-max-frame-bytes', '4096'])).toEqual([
      '--copilot-handshake-frame-bytes (65536) must not exceed --copilot-max-frame-bytes (4096)',
    ]);
    // Lowering only the request timeout takes the headers' default down with it.
    expect(parseAgentConfig([...base, '--http-request-timeout-ms', '5000'], {}).limits?.http).toMatchObject({
      headersTimeoutMs: 5000,
      requestTimeoutMs: 5000,
    });
    expect(problemsOf(['--http-headers-timeout-ms', '90000'])).toEqual([
      '--http-headers-timeout-ms (90000) must not exceed --http-request-timeout-ms (60000): the headers are part of the request',
    ]);
  });

  it('take the body rule (ADR 0023): the gate may be 0 (off), the pace may not', () => {
    const config = parseAgentConfig([...base, '--http-body-gate-bytes', '0', '--http-body-idle-timeout-ms', '2000'], {
      SESSIONFLEET_HTTP_BODY_MIN_BYTES_PER_SECOND: '4096',
    });
    expect(config.limits?.http).toMatchObject({
      bodyGateBytes: 0,
      bodyIdleTimeoutMs: 2000,
      bodyMinBytesPerSecond: 4096,
    });
    expect(problemsOf(['--http-body-min-bytes-per-second', '0', '--http-body-gate-bytes', '1.5'])).toEqual([
      '--http-body-gate-bytes ("1.5") must be a whole number from 0 to 67108864',
      '--http-body-min-bytes-per-second ("0") must be a whole number from 1 to 1073741824',
    ]);
  });
});
