#!/usr/bin/env bash
# install-peers.sh installs the comparison's npm peer, proper-lockfile, into
# compare/npm/node_modules (git-ignored), at the version that
# compare/npm/package-lock.json pins. It needs Node and npm (Node 20 is on
# the CI machines) and the npm registry. .ci/test's compare step calls it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/npm"
if [[ -f node_modules/proper-lockfile/package.json ]]; then
	exit 0
fi
if ! command -v npm >/dev/null; then
	echo "install-peers.sh: no npm: proper-lockfile cannot be measured" >&2
	exit 1
fi
npm ci --no-audit --no-fund --loglevel=error
