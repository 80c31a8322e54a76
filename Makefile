# Advances: `make run` for the embedded default, `make test` for the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000
# `make worker` alone starts one process per queue; QUEUES=... starts exactly one.
QUEUES ?=
CONCURRENCY ?= 2
TRANSACTIONAL_CONCURRENCY ?= 2
comma := ,
NODE ?= $(firstword $(subst $(comma), ,$(QUEUES)))
BIND ?= 0.0.0.0:8000
WEB_WORKERS ?= 3

# The embedded default runs with DEBUG on and no services; production sets DEBUG off.
DEV_ENV := DEBUG=$${DEBUG:-1}

.PHONY: install catalogues messages browser-deps run migrate seed serve test deploy-check lint format worker beat bench bench-esps latency drill clean

install: $(STAMP) catalogues

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The Spanish (and any other) catalogue, .po -> .mo with polib: no gettext tools needed.
# run, test and serve all come through install, so every page is translated.
catalogues: $(STAMP)
	$(BIN)/python -m newsletter.catalogues --compile

# New and changed strings from the code and templates into every catalogue (needs
# xgettext: Debian's gettext), then what still needs a translator. A new language:
# `.venv/bin/python manage.py makemessages --locale xx` once (docs/languages.md).
MAKEMESSAGES_IGNORE := --ignore '.venv/*' --ignore 'var/*' --ignore 'tests/*' --ignore 'benchmarks/*'
messages: install
	$(DEV_ENV) $(BIN)/python manage.py makemessages --all --add-location file $(MAKEMESSAGES_IGNORE)
	$(BIN)/python -m newsletter.catalogues --compile
	-$(BIN)/python -m newsletter.catalogues --check

migrate: install
	$(DEV_ENV) $(BIN)/python manage.py migrate --noinput

seed: migrate
	$(DEV_ENV) $(BIN)/python manage.py seed_demo

# Tasks run inline here and there is no beat: a second process runs the welcome series
# every SERIES_EVERY seconds, stopped with the server. NEWSLETTER_SERIES_DAY_SECONDS=60
# makes a series day last a minute (README "Welcome series").
SERIES_EVERY ?= 10

run: seed
	@echo "Advances: http://$(HOST):$(PORT)/  (admin: http://$(HOST):$(PORT)/admin/, emails: var/outbox/)"
	$(DEV_ENV) $(BIN)/python manage.py run_series --every $(SERIES_EVERY) & series=$$!; \
	trap 'kill $$series 2>/dev/null' EXIT INT TERM; \
	$(DEV_ENV) $(BIN)/python manage.py runserver $(HOST):$(PORT)

# The browser tests need Debian's Chromium: without it they are skipped, and fail under
# CI, so CI's `make test` installs it first (as root); a developer's does not need root.
browser-deps:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	else \
		echo "browser-deps: /usr/bin/chromium is missing; as root run:"; \
		echo "  apt-get update && apt-get install -y --no-install-recommends chromium"; \
	fi

test: install $(if $(CI),browser-deps)
	$(BIN)/python -m pytest

# The deployment files without Docker: every compose service of ours runs a target
# here, only the proxy publishes ports, and `caddy validate` accepts the Caddyfile.
deploy-check: install
	$(BIN)/python -m pytest tests/test_deploy.py -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(DEV_ENV) $(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Production web server (docker-compose runs this): migrate, collect the static files
# for the proxy when STATIC_ROOT is set, then gunicorn.
serve: install
	$(BIN)/python manage.py migrate --noinput
	if [ -n "$$STATIC_ROOT" ]; then $(BIN)/python manage.py collectstatic --noinput; fi
	$(BIN)/gunicorn project.wsgi --bind $(BIND) --workers $(WEB_WORKERS) --access-logfile -

# `make worker`: two worker processes on this machine, one per queue (scripts/workers.sh,
# both stopped together), so a confirmation never waits behind a bulk send.
# `make worker QUEUES=bulk NODE=bulk2 CONCURRENCY=4`: exactly one process, node
# NODE@<host>; each docker-compose worker service runs this, and so does each machine
# added to a send (README "Workers: queues and machines").
worker: install
ifeq ($(strip $(QUEUES)),)
	MAKE="$(MAKE)" TRANSACTIONAL_CONCURRENCY=$(TRANSACTIONAL_CONCURRENCY) BULK_CONCURRENCY=$(CONCURRENCY) exec bash scripts/workers.sh
else
	$(DEV_ENV) exec $(BIN)/celery -A project worker --queues $(QUEUES) --hostname $(NODE)@%h --concurrency $(CONCURRENCY) --loglevel INFO
endif

beat: install
	mkdir -p var
	$(DEV_ENV) $(BIN)/celery -A project beat --loglevel INFO --schedule var/celerybeat-schedule

# The dispatch benchmark (PostgreSQL and Redis on 127.0.0.1): writes benchmarks/RESULTS.md.
bench: install
	$(BIN)/python benchmarks/bench.py

# Recipients per second through each ESP's path at 20,000 readers, beside
# django-newsletter's rate: writes the ESP section of benchmarks/RESULTS.md.
bench-esps: install
	$(BIN)/python benchmarks/esps.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# Confirmation latency during a 100,000-reader send (PostgreSQL and Redis on 127.0.0.1):
# writes its own section of benchmarks/RESULTS.md.
latency: install
	$(BIN)/python benchmarks/latency.py

# The failover drill: three worker nodes over RabbitMQ, one SIGKILLed mid-send (PostgreSQL,
# Redis and RabbitMQ on 127.0.0.1): writes its own section of benchmarks/RESULTS.md.
drill: install
	$(BIN)/python benchmarks/drill.py
