import { App, TerraformStack, TerraformVariable } from 'cdktf';
import { describe, expect, it } from 'vitest';
import { resolveFleetPolicy, SessionFleetValidationError } from '../../constructs/fleet-policy.js';

function stack() {
  return new TerraformStack(new App(), 'Stack');
}

describe('resolveFleetPolicy', () => {
  it('names the construct path, the prop, the value and the rule', () => {
    const scope = stack();
    expect(() =>
      resolveFleetPolicy(
        scope,
        { isolation: 'session', affinity: { type: 'none' }, sessionsPerInstance: 300 },
        { instanceCpu: '500m' },
      ),
    ).toThrowError(
      new SessionFleetValidationError(scope, [
        "'policy.sessionsPerInstance' (300) must be between 1 and 200",
        '\'policy.affinity.type\': session isolation requires session affinity: affinity.type must be "mcp-streamable-http", "mcp-sse", "header", "cookie" or "copilot-jsonrpc", not "none"',
        "'policy.instanceVcpu': session isolation requires an instance with at least 2 vCPU (instanceVcpu is 0.5)",
      ]),
    );
  });

  it('reads the instance CPU as a Kubernetes quantity or a number of cores', () => {
    const scope = stack();
    expect(
      resolveFleetPolicy(scope, { affinity: { type: 'cookie' } }, { instanceCpu: '2500m' }).policy.instanceVcpu,
    ).toBe(2.5);
    expect(resolveFleetPolicy(scope, { affinity: { type: 'cookie' } }, { instanceCpu: 4 }).policy.instanceVcpu).toBe(4);
    expect(() => resolveFleetPolicy(scope, { affinity: { type: 'cookie' } }, { instanceCpu: 'two' })).toThrowError(
      'Stack: cpu ("two") is not a CPU quantity such as "2", "1500m" or 0.5',
    );
  });

  it('does not judge rules on values that are unresolved tokens, and keeps the tokens', () => {
    const scope = stack();
    const header = new TerraformVariable(scope, 'Header', { type: 'string' }).stringValue;
    const sessions = new TerraformVariable(scope, 'Sessions', { type: 'number' }).numberValue;
    const { policy } = resolveFleetPolicy(scope, {
      affinity: { type: 'header', headerName: header },
      sessionsPerInstance: sessions,
      concurrencyPerInstance: 10,
    });
    expect(policy.affinity).toEqual({ type: 'header', headerName: header });
    expect(policy.sessionsPerInstance).toBe(sessions);
    expect(policy.sessionLifetimeSeconds).toBe(21600);
  });

  it('still judges the concrete values beside a token', () => {
    const scope = stack();
    const header = new TerraformVariable(scope, 'Header', { type: 'string' });
    expect(() =>
      resolveFleetPolicy(scope, { affinity: { type: 'header', headerName: header.stringValue }, maxInstances: 0 }),
    ).toThrowError("Stack: 'policy.maxInstances' (0) must be between 1 and 1000");
  });
});
