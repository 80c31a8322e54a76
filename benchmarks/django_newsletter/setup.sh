#!/usr/bin/env bash
# Create (or bring up to date) the virtualenv for the django-newsletter baseline.
# Idempotent: reinstalls only when requirements.txt has changed since the last install.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(cd "$HERE/.." && pwd)/.work"
VENV="$WORK/dn-venv"
REQUIREMENTS="$HERE/requirements.txt"
STAMP="$VENV/.requirements.sha256"

mkdir -p "$WORK"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "setup: creating $VENV" >&2
    python3 -m venv "$VENV"
fi

wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [[ ! -f "$STAMP" || "$(cat "$STAMP")" != "$wanted" ]]; then
    echo "setup: installing $REQUIREMENTS" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS" >&2
    "$VENV/bin/python" -m pip check >&2
    echo "$wanted" >"$STAMP"
fi
echo "setup: $VENV is ready" >&2
