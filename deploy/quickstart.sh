#!/usr/bin/env bash
# Quick start: a local Prosody on loopback with demo accounts, addinbot on SQLite, and a
# printed demonstration of the whole loop. The bot keeps running until Ctrl-C.
#
#   bash deploy/quickstart.sh            keeps the state of the last run: rooms, add-ins,
#                                        accounts (in ./run/quickstart, or
#                                        $ADDINBOT_QUICKSTART_STATE)
#   bash deploy/quickstart.sh --reset    starts clean (and runs the demonstration again)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
state="${ADDINBOT_QUICKSTART_STATE:-$root/run/quickstart}"
password=demo
reset=no
for arg in "$@"; do
  case "$arg" in
    --reset) reset=yes ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart.sh: unknown argument $arg (only --reset)" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1m%s\033[0m\n' "$*"; }

if ! command -v prosody >/dev/null; then
  say "Installing Prosody from Debian's packages…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prosody >/dev/null
fi
if [ ! -x .venv/bin/addinbot ]; then
  say "Creating .venv and installing addinbot…"
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e .
fi

if [ "$reset" = yes ]; then
  rm -rf "$state"
  say "Starting clean (--reset): a new state in $state."
  fresh=yes
elif [ -f "$state/addinbot.db" ]; then
  say "Keeping the state of the last run in $state: its rooms, add-ins and accounts" \
      "(bash deploy/quickstart.sh --reset starts clean)."
  fresh=no
else
  say "Starting with a new state in $state (kept for the next run; --reset starts clean)."
  fresh=yes
fi
mkdir -p "$state"
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

say "Starting a private Prosody on loopback…"
coproc PROSODY { exec .venv/bin/python deploy/localprosody.py --workdir "$state/prosody" \
  --accounts "addinbot:$password,admin:$password,alice:$password,bob:$password"; }
pids+=("$PROSODY_PID")
read -r -t 30 line <&"${PROSODY[0]}" || { echo "Prosody did not start" >&2; exit 1; }
port=${line#PORT=}

rm -f "$state/addinbot.toml"
(umask 077; cat > "$state/addinbot.toml") <<TOML
[xmpp]
jid = "addinbot@localhost"
password = "$password"
host = "127.0.0.1"
port = $port
tls = "plain"
nick = "AddinBot"

[store]
url = "sqlite:///$state/addinbot.db"

[roles]
admins = ["admin@localhost"]

[pools]
names = ["conference.localhost"]
TOML

say "Starting addinbot (log: $state/addinbot.log)…"
.venv/bin/addinbot run --config "$state/addinbot.toml" >"$state/addinbot.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do
  grep -q "connected as" "$state/addinbot.log" && break
  sleep 0.1
done
grep -q "connected as" "$state/addinbot.log" || { cat "$state/addinbot.log" >&2; exit 1; }

if [ "$fresh" = yes ]; then
  say "The whole loop, with three real XMPP clients:"
  ADDINBOT_DEMO_PASSWORD=$password .venv/bin/addinbot demo --config "$state/addinbot.toml" \
    --admin admin@localhost --manager alice@localhost --participant bob@localhost \
    --room lobby@conference.localhost
else
  say "The bot is back in the rooms it served, with their add-ins (the demonstration ran" \
      "on the first start):"
  .venv/bin/addinbot --config "$state/addinbot.toml" room list
fi

cat <<INFO

addinbot is running. Talk to it with any XMPP client:
  server    127.0.0.1 port $port (plain text, loopback only)
  accounts  admin@localhost (an addinbot admin), alice@localhost, bob@localhost
  password  $password
  the bot   addinbot@localhost — send it "help"; in lobby@conference.localhost type "!addin"
Or from this shell, on the same database:
  .venv/bin/addinbot --config $state/addinbot.toml addin list
Press Ctrl-C to stop the bot and Prosody.
INFO
wait "${pids[1]}"
