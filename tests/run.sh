#!/usr/bin/env bash
# The project's test command (README): lint, type-check and run the tests.
#   bash tests/run.sh [pytest arguments]
# On a fresh Debian machine, as root, it installs what the tests need: Prosody, the venv,
# and starts the local PostgreSQL if it is down.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() { printf '== %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

if ! command -v prosody >/dev/null; then
  step "installing Prosody"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q prosody \
    || fail "apt-get install prosody"
fi
if ! command -v go-sendxmpp >/dev/null; then
  step "installing go-sendxmpp (the interoperability test's client)"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q go-sendxmpp \
    || fail "apt-get install go-sendxmpp"
fi
if ! command -v ejabberdctl >/dev/null; then
  step "installing ejabberd (tests/harness/ejabberd.py)"
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q ejabberd \
    || fail "apt-get install ejabberd"
fi
# A system Prosody that apt may start (on 5222) is not in the way: the tests run their own
# Prosody on free loopback ports (deploy/localprosody.py).

if ! .venv/bin/python -c pass 2>/dev/null; then
  step "creating .venv"
  python3 -m venv --clear .venv || fail "python3 -m venv .venv (is python3-venv installed?)"
fi
stamp=.venv/.installed-by-run-sh
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  step "pip install -e '.[test,bench]'"
  .venv/bin/python -m pip install -q -e '.[test,bench]' || fail "pip install -e '.[test,bench]'"
  touch "$stamp"
fi
# Tools run as modules of the venv's Python: a script's #! line may name another checkout.
py=.venv/bin/python

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  step "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n1)" main start \
    || true
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  pg_isready -q -h 127.0.0.1 -p 5432 || fail "PostgreSQL is not up on 127.0.0.1:5432"
fi
export ADDINBOT_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test

step "ruff check bot store tests deploy"
"$py" -m ruff check bot store tests deploy || fail "ruff check bot store tests deploy"
step "mypy bot store"
"$py" -m mypy bot store || fail "mypy bot store"
step "lint-imports (the layers and boundaries in pyproject.toml)"
"$py" -c 'import sys; from importlinter.cli import lint_imports_command as c; sys.argv[0] = "lint-imports"; c()' \
  || fail "lint-imports"

run_pytest() {  # with $py, the venv's Python
  local status=0
  "$py" -m pytest -q -p no:cacheprovider "$@" || status=$?
  case $status in
    0) ;;
    5) fail "pytest collected no tests (exit 5)" ;;
    *) fail "pytest exited $status" ;;
  esac
}

# The oldest versions pyproject.toml allows are tested too, in a venv of their own: each
# lower bound there (">=X") of these packages is installed as "==X". That venv is made
# while the first pass runs.
oldest=$("$py" - <<'PY'
import re, tomllib
wanted = ("slixmpp", "sqlalchemy", "sqlmodel", "prometheus_client", "idna", "babel")
with open("pyproject.toml", "rb") as f:
    dependencies = tomllib.load(f)["project"]["dependencies"]
for dependency in dependencies:
    found = re.match(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([^,;\s]+)", dependency)
    if found and found[1].lower().replace("-", "_") in wanted:
        print(f"{found[1]}=={found[3]}")
PY
) || fail "reading the lower bounds in pyproject.toml"
[ "$(wc -w <<<"$oldest")" -eq 6 ] \
  || fail "pyproject.toml: slixmpp, sqlalchemy, sqlmodel, prometheus_client, idna and babel need a >= each"
prepare_oldest() {
  if ! .venv-oldest/bin/python -c pass 2>/dev/null; then
    python3 -m venv --clear .venv-oldest || fail "python3 -m venv .venv-oldest"
  fi
  local stamp=.venv-oldest/.installed-by-run-sh
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$oldest" ]; then
    # shellcheck disable=SC2086 # one word per pin
    .venv-oldest/bin/python -m pip install -q -e '.[test]' $oldest \
      || fail "pip install into .venv-oldest"
    printf '%s\n' "$oldest" >"$stamp"
  fi
}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
if [ $# -gt 0 ]; then
  step "pytest $*"
  run_pytest "$@"
  exit 0  # pytest arguments given: that one pass only
fi

step "preparing .venv-oldest with $oldest (in the background)"
prepare_oldest >"$logs/oldest-venv" 2>&1 &
oldest_venv=$!

# side_by_side NAME1 PASS1 NAME2 PASS2: two passes (shell functions) at once, their
# servers, databases and ports their own; then what each said, and a failure if either did.
side_by_side() {
  "$2" >"$logs/$1" 2>&1 &
  local first=$!
  "$4" >"$logs/$3" 2>&1 &
  local second=$! failed=""
  wait "$first" || failed="$failed $1"
  wait "$second" || failed="$failed $3"
  step "the $1 pass said:"; cat "$logs/$1"
  step "the $3 pass said:"; cat "$logs/$3"
  [ -z "$failed" ] || fail "the pass(es) of:$failed"
}

# The unit tests (mostly CPU) beside the integration tests with their bots on SQLite
# (mostly waiting on sockets).
unit_pass() { run_pytest tests/unit; }
sqlite_pass() { run_pytest tests/integration; }
step "pytest: unit tests; and the integration tests with their bots on SQLite"
side_by_side unit unit_pass SQLite sqlite_pass

# The integration suite again with its bots on PostgreSQL, beside the core, rooms and
# spoofing integration tests against ejabberd (Debian's 23.01, a private node:
# tests/harness/ejabberd.py), their bots on SQLite, and the several-processes ones on
# PostgreSQL. The few scenarios only a Prosody can
# stage (marked prosody_only, each saying why) are left out of the ejabberd pass rather than
# counted as skipped; they ran in the passes above.
postgresql_pass() {
  ADDINBOT_TEST_STORE=postgresql run_pytest tests/integration -m "not sqlite_only and not once"
}
ejabberd_pass() {
  ADDINBOT_TEST_XMPP=ejabberd ADDINBOT_TEST_STORE=sqlite run_pytest -m "not prosody_only" \
    tests/integration/test_direct.py tests/integration/test_join.py \
    tests/integration/test_rooms.py tests/integration/test_spoofing.py \
    tests/integration/test_owners.py
  # Several processes on one PostgreSQL (each test its own database) on ejabberd too.
  ADDINBOT_TEST_XMPP=ejabberd ADDINBOT_TEST_STORE=postgresql run_pytest -m "not prosody_only" \
    tests/integration/test_processes.py
}
step "pytest: the integration suite again, its bots on PostgreSQL; and against ejabberd"
side_by_side PostgreSQL postgresql_pass ejabberd ejabberd_pass

step "pytest with the oldest versions allowed:" $oldest
wait "$oldest_venv" || { cat "$logs/oldest-venv"; fail "preparing .venv-oldest"; }
# The unit tests and one scenario against a real Prosody, the bot on SQLite.
py=.venv-oldest/bin/python run_pytest tests/unit tests/integration/test_direct.py
