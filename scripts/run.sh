#!/usr/bin/env bash
# Sets up and runs govmail on its embedded defaults: SQLite + files in ./data, a self-signed TLS
# certificate, loopback unprivileged ports, a first domain. Re-running it reuses ./data.
#   GOVMAIL_DATA_DIR (default ./data) and GOVMAIL_DOMAIN (default example.gov.vn) change that.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/install-test-deps.sh" --python-only

if [[ -x $repo/.venv/bin/python ]]; then
  python=$repo/.venv/bin/python
else
  python=$(command -v "${PYTHON:-python3}")
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
