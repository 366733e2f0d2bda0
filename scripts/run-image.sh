#!/usr/bin/env bash
# Runs the agent image with podman as a fleet would: read-only root file system, uid 1000, no
# capabilities, no new privileges; the host's network, so the agent reaches an upstream on
# loopback. Arguments after the image go to the agent; extra podman options come from
# $PODMAN_RUN_OPTS (e.g. "--name a -d -v ./policy.json:/etc/sessionfleet/policy.json:ro").
#
#   scripts/run-image.sh localhost/sessionfleet-agent:0.1.0 --policy /etc/sessionfleet/policy.json ...
#
# Two settings make it run inside VMs and CI containers that podman's defaults trip over (both are
# explained in docs/image.md): the open-file and process limits are the caller's own (podman
# otherwise asks for more than an unprivileged sandbox may grant), and on a host with cgroup v1
# plus a cgroup v2 hierarchy that holds controllers ("hybrid", which crun refuses) the container
# starts in a private mount namespace where that hierarchy is hidden.
set -euo pipefail
image=${1:?usage: run-image.sh IMAGE [agent arguments...]}
shift
limits=(--ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)" --ulimit "nproc=$(ulimit -Hu):$(ulimit -Hu)")
# podman lowers its own process limit before starting the runtime; the container may not ask for more.
if [ "$(ulimit -Hu)" = unlimited ] || [ "$(ulimit -Hu)" -gt 32768 ]; then limits[3]=nproc=32768:32768; fi
# shellcheck disable=SC2206 # word splitting of the caller's options is intended
run=(podman run --network host --read-only --user 1000:1000 --cap-drop=ALL --security-opt no-new-privileges
  "${limits[@]}" ${PODMAN_RUN_OPTS:-} "$image" "$@")
unified=/sys/fs/cgroup/unified
if grep -qs . "$unified/cgroup.controllers"; then
  exec unshare --mount --propagation private sh -c \
    'umount "$0" 2>/dev/null || mount -t tmpfs none "$0"; shift; exec "$@"' "$unified" -- "${run[@]}"
fi
exec "${run[@]}"
