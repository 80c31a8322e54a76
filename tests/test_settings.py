"""Settings come from the environment; production refuses to start unsafely."""

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent


def settings_in(env: dict[str, str], *names: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import json, django; from django.conf import settings; django.setup(); "
        f"print(json.dumps({{n: getattr(settings, n) for n in {list(names)!r}}}, default=str))"
    )
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in {"SECRET_KEY", "DEBUG", "ESP", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "project.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_without_secret_key_refuses_to_start():
    result = settings_in({}, "DEBUG")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_are_strict():
    result = settings_in(
        {"SECRET_KEY": "x" * 50, "ALLOWED_HOSTS": "news.example.org"},
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "ALLOWED_HOSTS",
        "EMAIL_BACKEND",
        "CELERY_TASK_ALWAYS_EAGER",
    )
    values = json.loads(result.stdout)
    assert values["SESSION_COOKIE_SECURE"]
    assert values["CSRF_COOKIE_SECURE"]
    assert values["SECURE_HSTS_SECONDS"] >= 31536000
    assert values["ALLOWED_HOSTS"] == ["news.example.org"]
    assert values["EMAIL_BACKEND"] == "newsletter.outbox.OutboxEmailBackend"
    assert values["CELERY_TASK_ALWAYS_EAGER"] is True


def test_esp_selects_anymail_backend_and_its_settings_from_the_environment():
    result = settings_in(
        {
            "SECRET_KEY": "x" * 50,
            "ESP": "mailgun",
            "MAILGUN_API_KEY": "key-1",
            "MAILGUN_API_URL": "http://127.0.0.1:9/v3",
            "ANYMAIL_WEBHOOK_SECRET": "u:p",
            "REDIS_URL": "redis://127.0.0.1:6379/5",
        },
        "EMAIL_BACKEND",
        "ANYMAIL",
        "CELERY_TASK_ALWAYS_EAGER",
        "CELERY_BROKER_URL",
    )
    values = json.loads(result.stdout)
    assert values["EMAIL_BACKEND"] == "anymail.backends.mailgun.EmailBackend"
    assert values["ANYMAIL"]["MAILGUN_API_KEY"] == "key-1"
    assert values["ANYMAIL"]["MAILGUN_API_URL"] == "http://127.0.0.1:9/v3"
    assert values["ANYMAIL"]["WEBHOOK_SECRET"] == "u:p"
    assert values["ANYMAIL"]["SEND_DEFAULTS"] == {"track_opens": False, "track_clicks": False}
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False
    assert values["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/5"


def test_the_broker_may_be_rabbitmq_while_redis_keeps_the_send_rate_and_limits():
    result = settings_in(
        {
            "SECRET_KEY": "x" * 50,
            "REDIS_URL": "redis://127.0.0.1:6379/5",
            "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/advances",
        },
        "CELERY_BROKER_URL",
        "CELERY_TASK_ALWAYS_EAGER",
        "REDIS_URL",
        "CACHES",
    )
    values = json.loads(result.stdout)
    assert values["CELERY_BROKER_URL"] == "amqp://guest:guest@127.0.0.1:5672/advances"
    assert values["CELERY_TASK_ALWAYS_EAGER"] is False
    assert values["REDIS_URL"] == "redis://127.0.0.1:6379/5"
    assert values["CACHES"]["default"]["LOCATION"] == "redis://127.0.0.1:6379/5"


def test_a_send_rate_without_redis_for_workers_is_warned_about(settings):
    from newsletter.checks import check_shared_send_rate

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.NEWSLETTER_MAX_RATE = 500
    settings.REDIS_URL = ""
    assert [w.id for w in check_shared_send_rate(None)] == ["newsletter.W010"]
    settings.REDIS_URL = "redis://127.0.0.1:6379/5"
    assert check_shared_send_rate(None) == []


def test_celery_routes_issue_dispatch_to_bulk_and_the_rest_to_transactional():
    from project.celery import app

    router = app.amqp.router
    assert (
        router.route({}, "newsletter.tasks.send_subscriber_email")["queue"].name == "transactional"
    )
    bulk = router.route({}, "newsletter.tasks.bulk_send")["queue"]
    assert (bulk.name, bulk.routing_key, bulk.exchange.name) == ("bulk", "bulk", "bulk")
    transactional = router.route({}, "newsletter.tasks.send_subscriber_email")["queue"]
    assert transactional.routing_key == "transactional"
    assert app.conf.task_acks_late
    assert app.conf.task_reject_on_worker_lost
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.broker_transport_options["visibility_timeout"] > app.conf.task_time_limit
    assert app.conf.accept_content == ["json"]


def deploy_check(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`manage.py check --deploy` under production settings: only what the environment
    names, none of the test run's own relaxations (SECURE_SSL_REDIRECT=false, ...)."""
    keep = {"PATH", "HOME", "LANG", "DATABASE_URL", "VAR_DIR", "PYTHONPATH"}
    clean = {k: v for k, v in os.environ.items() if k in keep}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env={**clean, "DJANGO_SETTINGS_MODULE": "project.settings", **env},
        capture_output=True,
        text=True,
        check=False,
    )


# What a real deployment sets (README "Deploying"); the webhook secret too, since the
# ESP webhooks must not be open in production.
PRODUCTION = {
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "news.example.org",
    "SITE_URL": "https://news.example.org",
    "ANYMAIL_WEBHOOK_SECRET": f"esp:{secrets.token_urlsafe(24)}",
}


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:6379/9"], ids=["embedded", "redis"])
def test_deploy_check_is_clean_under_production_settings(redis_url):
    result = deploy_check({**PRODUCTION, "REDIS_URL": redis_url})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_deploy_check_notices_a_weakened_setting():
    result = deploy_check({**PRODUCTION, "SECURE_SSL_REDIRECT": "false"})
    assert result.returncode != 0
    assert "security.W008" in result.stderr
