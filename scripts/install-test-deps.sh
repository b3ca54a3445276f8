#!/usr/bin/env bash
# Installs what the test suite needs on Debian (run as root, or as a user with passwordless sudo):
# the apt packages below, then this repository in editable mode with its `test` extra.
# Idempotent, and quick when everything is present: apt and pip run only for what is missing.
# Services are not started: the tests start their own PostgreSQL and spamd.
#
# Python: the interpreter is $repo/.venv/bin/python if that exists, else $PYTHON or python3. If
# that python cannot take a pip install (no pip, or Debian's PEP 668 "externally managed" system
# python), $repo/.venv is created and used instead; scripts/test.sh picks the same interpreter.
#
# --server (what scripts/run.sh uses): only what the server needs to run: Debian's spamassassin
# and spamd (govmail runs its own spamd), and this repository without the test extra, always in
# the project's own virtual environment $repo/.venv (created from $PYTHON or python3).
set -euo pipefail

repo=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
export DEBIAN_FRONTEND=noninteractive
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PIP_ROOT_USER_ACTION=ignore

apt_packages=(
  postgresql swaks isync spamassassin spamc opendkim-tools offlineimap3 fetchmail openssl
  libmail-dkim-perl
  ca-certificates chromium
)
# From Debian 12 the spamd daemon is a package of its own; before, spamassassin shipped it. Such
# packages are installed when the distribution has them and skipped otherwise.
optional_apt_packages=()
if [[ ! -x /usr/sbin/spamd ]]; then
  optional_apt_packages+=(spamd)
fi
# What the server itself runs (--server): the managed spamd ([spamd] managed, mailserver/scanners.py).
server_apt_packages=(spamassassin)

say() { printf 'install-test-deps: %s\n' "$*"; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n -E "$@"
  else
    say "need root (or passwordless sudo) to run: $*" >&2
    return 1
  fi
}

# Runs a noisy command with its output kept in a log that is shown only if it fails.
quietly() {
  local log status=0
  log=$(mktemp)
  "$@" >"$log" 2>&1 || status=$?
  if [[ $status -ne 0 ]]; then
    tail -n 60 "$log" >&2
    say "failed ($status): $*" >&2
  fi
  rm -f "$log"
  return "$status"
}

missing_apt_packages() {
  local package
  for package in "$@"; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q '^install ok installed$'; then
      printf '%s\n' "$package"
    fi
  done
}

# install_apt_packages PACKAGE... [-- OPTIONAL_PACKAGE...]
install_apt_packages() {
  local -a wanted=() optional=() missing=() known=()
  while [[ $# -gt 0 && $1 != -- ]]; do wanted+=("$1"); shift; done
  [[ $# -gt 0 ]] && shift
  optional=("$@")
  mapfile -t missing < <(missing_apt_packages "${wanted[@]}" "${optional[@]}")
  [[ ${#missing[@]} -eq 0 ]] && return 0
  # policy-rc.d exit 101 tells the packages' maintainer scripts not to start their services.
  local policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod 755 $policy"
    trap 'as_root rm -f '"$policy" EXIT
  fi
  say "apt-get update"
  quietly as_root apt-get update -q
  local package
  for package in "${missing[@]}"; do
    if [[ " ${optional[*]} " != *" $package "* ]] || apt-cache show "$package" >/dev/null 2>&1; then
      known+=("$package")
    fi
  done
  [[ ${#known[@]} -eq 0 ]] && return 0
  say "apt-get install ${known[*]}"
  quietly as_root apt-get install -y -q --no-install-recommends "${known[@]}"
}

# Prints the interpreter the tests use (same rule as scripts/test.sh).
chosen_python() {
  if [[ -x $repo/.venv/bin/python ]]; then
    printf '%s\n' "$repo/.venv/bin/python"
  else
    command -v "${PYTHON:-python3}" || true
  fi
}

# True if this interpreter is >= 3.11 and pip may install into it.
python_takes_pip_install() {
  "$1" - <<'PY' >/dev/null 2>&1
import importlib.util, pathlib, sys, sysconfig
if sys.version_info < (3, 11) or importlib.util.find_spec("pip") is None:
    sys.exit(1)
in_venv = sys.prefix != sys.base_prefix
managed = pathlib.Path(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED").exists()
sys.exit(0 if in_venv or not managed else 1)
PY
}

# repo_install_is_current PYTHON [EXTRA]: true if the repository is installed editable from $repo
# with every requirement of pyproject.toml (dependencies + EXTRA, default `test`, and the extras
# they name) satisfied; EXTRA "" checks the dependencies alone.
repo_install_is_current() {
  # -P: the current directory may hold a stale govmail.egg-info that would shadow the install.
  "$1" -P - "$repo" "${2-test}" <<'PY' >/dev/null 2>&1
import json, pathlib, sys, tomllib
from importlib import metadata
from urllib.parse import unquote, urlsplit
try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

repo = pathlib.Path(sys.argv[1])
project = tomllib.loads((repo / "pyproject.toml").read_text())["project"]
dist = metadata.distribution(project["name"])
direct_url = json.loads(dist.read_text("direct_url.json") or "{}")
if not direct_url.get("dir_info", {}).get("editable"):
    sys.exit(1)
if pathlib.Path(unquote(urlsplit(direct_url["url"]).path)).resolve() != repo.resolve():
    sys.exit(1)
if dist.version != project["version"]:
    sys.exit(1)

def satisfied(text: str, extra: str = "") -> bool:
    req = Requirement(text)
    if req.marker is not None and not req.marker.evaluate({"extra": extra}):
        return True
    installed = metadata.distribution(req.name)
    if not req.specifier.contains(installed.version, prereleases=True):
        return False
    return all(
        satisfied(sub, wanted)
        for wanted in req.extras
        for sub in installed.requires or []
        if "extra" in sub
    )

extra = sys.argv[2]
wanted = project["dependencies"] + (project["optional-dependencies"][extra] if extra else [])
sys.exit(0 if all(satisfied(r) for r in wanted) else 1)
PY
}

# create_venv BASE_PYTHON ("" for python3): $repo/.venv, from BASE_PYTHON.
create_venv() {
  local python=$1
  if [[ -z $python ]]; then
    install_apt_packages python3
    python=$(command -v python3)
  fi
  if ! "$python" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    install_apt_packages python3-venv python3-pip
  fi
  say "creating $repo/.venv from $python"
  quietly "$python" -m venv "$repo/.venv"
}

# install_python_packages [EXTRA]: the repository (with EXTRA, default `test`) into the chosen
# interpreter, a new $repo/.venv if that one cannot take it.
install_python_packages() {
  local extra=${1-test} python
  python=$(chosen_python)
  if [[ -z $python ]] || ! python_takes_pip_install "$python"; then
    create_venv "$python"
    python=$repo/.venv/bin/python
  fi
  if repo_install_is_current "$python" "$extra"; then
    return 0
  fi
  local spec=$repo
  [[ -n $extra ]] && spec="${repo}[${extra}]"
  # The server alone (run.sh): no byte-compiling at install; the first start compiles what it uses.
  local -a compile=()
  [[ -z $extra ]] && compile=(--no-compile)
  say "pip install -e '.${extra:+[$extra]}' into $python"
  quietly "$python" -m pip install -q "${compile[@]}" -e "$spec"
}

case ${1:-} in
  --server)  # scripts/run.sh: the server's own needs, in $repo/.venv
    install_apt_packages "${server_apt_packages[@]}" -- "${optional_apt_packages[@]}"
    [[ -n ${SKIP_PYTHON:-} ]] && exit 0  # run.sh with GOVMAIL_PYTHON: that python as it is
    if [[ ! -x $repo/.venv/bin/python ]]; then
      create_venv "$(command -v "${PYTHON:-python3}" || true)"
    fi
    install_python_packages ""
    ;;
  --python-only)  # just this repository and its Python dependencies, with the test extra
    install_python_packages
    ;;
  *)
    install_apt_packages "${apt_packages[@]}" -- "${optional_apt_packages[@]}"
    install_python_packages
    ;;
esac
