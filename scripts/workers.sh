#!/usr/bin/env bash
# `make worker` with no QUEUES: one Celery worker process per queue on this machine,
# each started with the same command line an operator (or docker-compose) gives for one:
#   make worker QUEUES=transactional NODE=transactional CONCURRENCY=...
#   make worker QUEUES=bulk NODE=bulk CONCURRENCY=...
# so a confirmation email never waits for a slot that a bulk send holds. Both stop
# together: on Ctrl-C, on SIGTERM, or when either of them exits.
set -u
MAKE=${MAKE:-make}
TRANSACTIONAL_CONCURRENCY=${TRANSACTIONAL_CONCURRENCY:-2}
BULK_CONCURRENCY=${BULK_CONCURRENCY:-2}

pids=()
stop() {
    trap - TERM INT HUP
    # make passes SIGTERM on to its Celery worker, which finishes its tasks (warm shutdown).
    kill -TERM "${pids[@]}" 2>/dev/null
    wait "${pids[@]}" 2>/dev/null
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM HUP

"$MAKE" --no-print-directory worker QUEUES=transactional NODE=transactional \
    CONCURRENCY="$TRANSACTIONAL_CONCURRENCY" &
pids+=($!)
"$MAKE" --no-print-directory worker QUEUES=bulk NODE=bulk CONCURRENCY="$BULK_CONCURRENCY" &
pids+=($!)

wait -n
status=$?
echo "workers.sh: a worker stopped (exit $status); stopping the other" >&2
stop
exit "$status"
