#!/usr/bin/env bash
# install-peers.sh installs the comparison's npm peer, proper-lockfile, into
# compare/npm/node_modules (git-ignored), at the version that
# compare/npm/package-lock.json pins. It needs Node and npm, and the npm
# registry; as root with apt-get, it installs Debian's nodejs and npm where
# either is missing (Node 20 is on the CI machines already). .ci/test's
# compare step calls it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/npm"
if [[ -f node_modules/proper-lockfile/package.json ]]; then
	exit 0
fi
if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
	if ((EUID == 0)) && command -v apt-get >/dev/null; then
		echo "install-peers.sh: installing nodejs and npm" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get -o DPkg::Lock::Timeout=300 update -qq || echo "install-peers.sh: apt-get update failed; trying the current lists" >&2
		apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends nodejs npm >/tmp/nfsflock-npm-apt.log 2>&1 ||
			tail -n 15 /tmp/nfsflock-npm-apt.log >&2
	fi
	if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
		echo "install-peers.sh: no node or npm, and cannot install them here (not root, no apt-get, or the install failed): proper-lockfile cannot be measured" >&2
		exit 1
	fi
fi
npm ci --no-audit --no-fund --loglevel=error
