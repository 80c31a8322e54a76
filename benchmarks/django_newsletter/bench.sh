#!/usr/bin/env bash
# One command for the django-newsletter 1.2.1 baseline: set up its virtualenv, start the
# fake ESP, send one newsletter to ${DN_SUBSCRIBERS:-20000} subscribers, print one JSON line
# (on stdout; progress goes to stderr). Extra arguments go to run.py, e.g.
#   DN_SUBSCRIBERS=200 ./bench.sh --count-queries
#
#   REPO_ROOT   repo whose tests/fake_esp.py is run (default: the repo holding this script)
#   ESP_PYTHON  python that runs the fake ESP (default: $REPO_ROOT/.venv/bin/python)
#   FAKE_ESP_PORT  port for the fake ESP (default: a free one)
#   DN_SUBSCRIBERS number of subscribers (default: 20000)
#   DATABASE_URL   optional postgres://... database instead of SQLite
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(cd "$HERE/.." && pwd)/.work"
REPO_ROOT="${REPO_ROOT:-$(git -C "$HERE" rev-parse --show-toplevel)}"
ESP_PYTHON="${ESP_PYTHON:-$REPO_ROOT/.venv/bin/python}"
SUBSCRIBERS="${DN_SUBSCRIBERS:-20000}"

"$HERE/setup.sh"

if [[ ! -f "$REPO_ROOT/tests/fake_esp.py" ]]; then
    echo "bench: no tests/fake_esp.py under REPO_ROOT=$REPO_ROOT" >&2
    exit 1
fi
PORT="${FAKE_ESP_PORT:-$("$ESP_PYTHON" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')}"

mkdir -p "$WORK"
ESP_LOG="$WORK/dn-fake-esp.log"
ESP_PID=""
stop_esp() {
    if [[ -n "$ESP_PID" ]] && kill -0 "$ESP_PID" 2>/dev/null; then
        if [[ -r "/proc/$ESP_PID/stat" ]]; then
            # utime and stime (fields 14 and 15; the name in field 2 has no spaces here).
            read -r -a stat <"/proc/$ESP_PID/stat"
            ticks="$(getconf CLK_TCK)"
            cpu="$(awk -v t="$((stat[13] + stat[14]))" -v hz="$ticks" 'BEGIN { printf "%.1f", t / hz }')"
            echo "bench: the fake ESP used $cpu CPU seconds" >&2
        fi
        kill -TERM "$ESP_PID" 2>/dev/null || true
        wait "$ESP_PID" 2>/dev/null || true
    fi
}
trap stop_esp EXIT

(cd "$REPO_ROOT" && PYTHONUNBUFFERED=1 exec "$ESP_PYTHON" -m tests.fake_esp \
    --port "$PORT" --no-bodies) >"$ESP_LOG" 2>&1 &
ESP_PID=$!

FAKE_ESP_URL=""
for _ in $(seq 1 100); do
    FAKE_ESP_URL="$(sed -n 's/^FAKE_ESP_URL=//p' "$ESP_LOG" | head -n 1)"
    [[ -n "$FAKE_ESP_URL" ]] && break
    if ! kill -0 "$ESP_PID" 2>/dev/null; then
        echo "bench: the fake ESP exited; its log:" >&2
        cat "$ESP_LOG" >&2
        exit 1
    fi
    sleep 0.1
done
if [[ -z "$FAKE_ESP_URL" ]]; then
    echo "bench: the fake ESP printed no FAKE_ESP_URL within 10 s; its log:" >&2
    cat "$ESP_LOG" >&2
    exit 1
fi
echo "bench: fake ESP at $FAKE_ESP_URL (pid $ESP_PID)" >&2

export FAKE_ESP_URL
"$WORK/dn-venv/bin/python" "$HERE/run.py" --subscribers "$SUBSCRIBERS" "$@"
