/**
 * Shared fate of the app and the agent on Azure, where neither Container Apps nor Container
 * Instances can delete the instance from inside it, share a process namespace, or order the SIGTERM
 * of two containers (docs/adr/0101-azure-recycling-drain-and-network.md).
 *
 * Both containers' command lines are wrapped in a small POSIX `sh` script, and the two scripts
 * talk through a file on an empty-dir volume both containers mount:
 * - the agent's script runs the agent, forwards SIGTERM to it and, once the agent has exited (it
 *   drained, or it recycled after its session), writes the `agent-stopped` marker;
 * - the app's script runs the app and keeps it running until the marker appears, even after a
 *   SIGTERM, so the agent drains into a live app; then it stops the app and exits. The platform
 *   restarts both containers (restart policy Always), so a recycled instance's next session meets
 *   a new app process. A SIGTERM the agent never answers is forwarded after the drain timeout.
 *
 * Terraform reads `${` and `%{` in strings as templates: the scripts contain neither.
 */
import { Token } from 'cdktf';
import type { Policy } from '../policy/index.js';
import type { AzureSessionFleetBaseProps } from './azure-fleet-base.js';

/** The empty-dir volume both containers mount, and where. */
export const RUN_VOLUME = 'sessionfleet-run';
export const RUN_DIR = '/run/sessionfleet';
/** Overrides RUN_DIR (tests run the scripts outside a container). */
export const RUN_DIR_ENV = 'SESSIONFLEET_RUN_DIR';
export const AGENT_STOPPED_MARKER = 'agent-stopped';

/** Seconds the app's script waits, after its SIGTERM, beyond the drain timeout before it forwards the signal anyway. */
const FORWARD_MARGIN_SECONDS = 5;

const DIR = `d=$${RUN_DIR_ENV}; [ -n "$d" ] || d=${RUN_DIR}; m="$d/${AGENT_STOPPED_MARKER}"`;

/**
 * The agent's script (`sh -c <script> <agent executable> <args...>`): `$0` is the agent, `$@` its
 * arguments. The marker is written whatever the agent's exit, so the app never outlives it.
 */
export const AGENT_WRAPPER_SCRIPT = [
  DIR,
  'rm -f "$m"',
  '"$0" "$@" &',
  'pid=$!',
  `trap 'kill -TERM "$pid" 2>/dev/null' TERM INT`,
  // A trapped signal ends `wait` early: wait again until the agent itself has exited.
  'wait "$pid"; status=$?',
  'while kill -0 "$pid" 2>/dev/null; do wait "$pid"; status=$?; done',
  ': > "$m"',
  'exit "$status"',
].join('\n');

/**
 * The app's script (`sh -c <script> <app command...>`). Needs `/bin/sh` and `sleep` in the app's
 * image. A stale marker from the instance's previous round is removed first.
 */
export function appWrapperScript(policy: Policy): string {
  const limit = Token.isUnresolved(policy.drainTimeoutSeconds)
    ? `$((${Token.asString(policy.drainTimeoutSeconds)} + ${FORWARD_MARGIN_SECONDS}))`
    : String(policy.drainTimeoutSeconds + FORWARD_MARGIN_SECONDS);
  return [
    DIR,
    'rm -f "$m"',
    '"$0" "$@" &',
    'app=$!',
    'term=0; waited=0',
    `trap 'term=1' TERM INT`,
    'while kill -0 "$app" 2>/dev/null; do',
    '  [ -e "$m" ] && break',
    '  if [ "$term" = 1 ]; then',
    '    waited=$((waited + 1))',
    `    [ "$waited" -gt ${limit} ] && break`,
    '  fi',
    '  sleep 1',
    'done',
    'kill -TERM "$app" 2>/dev/null',
    'wait "$app"; status=$?',
    'while kill -0 "$app" 2>/dev/null; do wait "$app"; status=$?; done',
    'exit "$status"',
  ].join('\n');
}

/** `sh -c` command lines: the script, then what it runs as `$0 "$@"`. */
export function wrapAgentCommand(agentCommand: readonly string[]): string[] {
  return ['/bin/sh', '-c', AGENT_WRAPPER_SCRIPT, ...agentCommand];
}

export function wrapAppCommand(policy: Policy, appCommand: readonly string[]): string[] {
  return ['/bin/sh', '-c', appWrapperScript(policy), ...appCommand];
}

/** What a fleet without the wrapper gets, for the warning and the errors. */
export const NO_WRAPPER_DRAIN =
  'the app receives SIGTERM together with the agent, so sessions still in flight when the instance stops may end before the agent has drained them';

/**
 * Whether the app and agent command lines are wrapped (see `drainWrapper`), the problems of that
 * choice with the policy, and the warning a fleet without it gets.
 */
export function resolveDrainWrapper(
  props: AzureSessionFleetBaseProps,
  policy: Policy | undefined,
): { wrap: boolean; problems: string[]; warning?: string } {
  const command = props.app?.command;
  const wrap = props.drainWrapper ?? command !== undefined;
  const problems: string[] = [];
  if (wrap && command === undefined) {
    problems.push(
      `'drainWrapper' needs 'app.command': the wrapper starts the app itself, and the image's own entrypoint is not known at synth time`,
    );
  }
  const recycle = policy?.recycleAfterSession;
  if (!wrap && recycle === true) {
    problems.push(
      `'policy.recycleAfterSession' needs the drain wrapper on Azure (give 'app.command' and leave 'drainWrapper' on): Container Apps and Container Instances restart an exited agent in place, so the app process, with the ended session in memory, would serve the next session`,
    );
  }
  return {
    wrap,
    problems,
    warning: wrap ? undefined : `'drainWrapper' is off (no 'app.command', or set to false): ${NO_WRAPPER_DRAIN}`,
  };
}
