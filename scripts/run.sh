#!/usr/bin/env bash
# Sets up and runs govmail on its embedded defaults: SQLite + files in ./data, a self-signed TLS
# certificate, loopback unprivileged ports, a first domain, and a spamd that govmail runs itself
# ([spamd] managed). Re-running it reuses ./data, and is quick: apt and pip run only for what is
# missing (scripts/install-test-deps.sh --server: Debian's spamassassin + spamd, and this
# repository without its test tools, in the project's own virtual environment ./.venv).
#   GOVMAIL_DATA_DIR (default ./data) and GOVMAIL_DOMAIN (default example.gov.vn) change that;
#   any config key can be overridden with GOVMAIL_<SECTION>__<KEY> (e.g. GOVMAIL_SMTP__MX_LISTEN);
#   GOVMAIL_PYTHON=/path/to/python runs with that interpreter as it is (nothing is pip-installed
#   into it, no .venv is made): for a python that already has the dependencies (the tests use it).
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n ${GOVMAIL_PYTHON:-} ]]; then
  python=$GOVMAIL_PYTHON
  SKIP_PYTHON=1 bash "$repo/scripts/install-test-deps.sh" --server
else
  bash "$repo/scripts/install-test-deps.sh" --server
  python=$repo/.venv/bin/python
fi

data=${GOVMAIL_DATA_DIR:-$repo/data}
domain=${GOVMAIL_DOMAIN:-example.gov.vn}
if [[ ! -f $data/govmail.toml ]]; then
  "$python" -m mailserver init --data-dir "$data" --domain "$domain"
else
  echo "using existing $data/govmail.toml"
  echo "admin API token: $(cat "$data/admin-token" 2>/dev/null || echo '(see the init output)')"
fi
exec "$python" -m mailserver serve --config "$data/govmail.toml"
