#!/usr/bin/env bash
# Installs the test dependencies (scripts/install-test-deps.sh) and runs the whole suite from the
# repository root; extra arguments go to pytest. Exits with pytest's status; status 5 (no tests
# collected) is a failure too, so a broken collection never passes CI.
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/install-test-deps.sh"

# Same interpreter rule as install-test-deps.sh.
if [[ -x $repo/.venv/bin/python ]]; then
  python=$repo/.venv/bin/python
else
  python=$(command -v "${PYTHON:-python3}")
fi

cd "$repo"
status=0
"$python" -m pytest -q -p no:cacheprovider --durations=15 "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
exit "$status"
