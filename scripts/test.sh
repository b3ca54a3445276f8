#!/usr/bin/env bash
# Installs the test dependencies (scripts/install-test-deps.sh), runs ruff and mypy, then the whole
# suite from the repository root; extra arguments go to pytest. Exits with pytest's status, or 1
# when only a static check failed; status 5 (no tests collected) is a failure too, so a broken
# collection never passes CI.
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

# Static checks first: ruff, then mypy on the packages (pyproject's [tool.mypy]) and on tests/ and
# benchmarks/ under the same settings. A finding fails the run, but the tests still run, so one
# run reports everything; the last line names what failed.
failed=()
"$python" -m ruff check . || failed+=("ruff")
"$python" -m mypy || failed+=("mypy (packages)")
"$python" -m mypy tests benchmarks || failed+=("mypy (tests, benchmarks)")

# -rs: every skipped test is listed with its reason.
status=0
"$python" -m pytest -q -p no:cacheprovider -rs --durations=15 "$@" || status=$?
if [[ $status -eq 5 ]]; then
  echo "test.sh: pytest collected no tests; that is a failure" >&2
fi
if [[ $status -ne 0 ]]; then
  failed+=("pytest (status $status)")
fi
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "test.sh: FAILED: ${failed[*]}" >&2
  exit $(( status != 0 ? status : 1 ))
fi
