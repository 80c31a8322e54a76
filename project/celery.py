"""The Celery app: two queues, so a large send never delays a reader's confirmation."""

import os

from celery import Celery
from kombu import Exchange, Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("advances")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = tuple(
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in ("transactional", "bulk")
)
# Anything not routed below is transactional: small and urgent.
app.conf.task_default_queue = "transactional"
app.conf.task_routes = {"newsletter.tasks.bulk_*": {"queue": "bulk"}}
app.autodiscover_tasks()
