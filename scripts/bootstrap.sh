#!/usr/bin/env bash
# Installs what lsmigrate needs on a Debian machine, idempotently:
# Debian packages, the virtual environment at .venv/, the pinned Pyodide
# runtime from npm (with the npm devDependencies) and, for tests, the state
# library bundles of e2e/libraries/. A second run with nothing to do takes
# about a second.
#
# Usage: scripts/bootstrap.sh demo|test
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${1:-test}

apt_missing=()
command -v redis-server >/dev/null || apt_missing+=(redis-server)
[ -x /usr/lib/postgresql/15/bin/initdb ] || apt_missing+=(postgresql-15)
command -v node >/dev/null || apt_missing+=(nodejs npm)
if [ "$profile" = test ]; then
  command -v chromium >/dev/null || apt_missing+=(chromium)
  # The multi-instance deployment (deploy/cluster.py) its smoke test starts.
  command -v nginx >/dev/null || apt_missing+=(nginx)
  command -v pgbouncer >/dev/null || apt_missing+=(pgbouncer)
fi
if ((${#apt_missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: these Debian packages are missing and installing them needs root: ${apt_missing[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installing Debian packages: ${apt_missing[*]}"
  # Debian's package scripts start a service they install (nginx would take port 80): lsmigrate starts its
  # own on free ports (deploy/cluster.py), so none is started during the install (policy-rc.d says 101,
  # "action forbidden"), and a policy-rc.d that was there already is left as it was.
  policy=/usr/sbin/policy-rc.d
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# Written by lsmigrate scripts/bootstrap.sh for the length of an install.\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${apt_missing[@]}" >/dev/null
  if [ -d /run/systemd/system ]; then
    systemctl disable --now --quiet nginx pgbouncer 2>/dev/null || true
  fi
  # Under another init a service may still have been started: stopped by the pid its pid file names.
  for pid_file in /run/nginx.pid /run/postgresql/pgbouncer.pid; do
    if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
      kill "$(cat "$pid_file")" || true  # it may have ended meanwhile
    fi
  done
fi

extras=server
[ "$profile" = test ] && extras=dev
hash=$(sha256sum pyproject.toml | cut -c1-16)
stamp=".venv/.installed-$extras-$hash"
# The test extras include the server's, so they serve the demo too.
if [ ! -f "$stamp" ] && [ ! -f ".venv/.installed-dev-$hash" ]; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  echo "bootstrap: installing Python packages (.[$extras]) into .venv/"
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
  rm -f .venv/.installed-"$extras"-*
  touch "$stamp"
fi

npm_stamp="node_modules/.lsmigrate-$(sha256sum package-lock.json | cut -c1-16)"
if [ ! -f "$npm_stamp" ]; then
  echo "bootstrap: installing the Pyodide runtime and the npm devDependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
  touch "$npm_stamp"
fi

# The runtime's gzip and brotli copies: about 30 s once per Pyodide version, a stat per file when they are there.
.venv/bin/python -m lsmigrate.server.runtime.precompress

# The e2e tests load real state libraries (e2e/libraries/src/*.js) bundled by esbuild.
if [ "$profile" = test ]; then
  sources=$(find e2e/libraries/src -name '*.js' | LC_ALL=C sort | xargs sha256sum)
  bundle_stamp="e2e/libraries/dist/.built-$(printf '%s\n' "$(sha256sum package-lock.json)" "$sources" | sha256sum | cut -c1-16)"
  if [ ! -f "$bundle_stamp" ]; then
    echo "bootstrap: bundling the state libraries for the e2e tests (esbuild)"
    rm -rf e2e/libraries/dist
    node_modules/.bin/esbuild e2e/libraries/src/*.js --bundle --format=iife --platform=browser \
      --define:process.env.NODE_ENV='"production"' --outdir=e2e/libraries/dist --log-level=warning
    touch "$bundle_stamp"
  fi
fi
