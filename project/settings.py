"""Settings for Advances, read entirely from the environment.

Every variable is optional; without any, Advances runs as the embedded default:
SQLite in var/, tasks inline, email written to var/outbox/. See README.md for the
full table. With DEBUG off, SECRET_KEY is required and cookies and HSTS are strict.
"""

import json
import os
from pathlib import Path

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    return int(value) if value.strip() else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (use `make run` for the embedded default)."
        )
    SECRET_KEY = "insecure-dev-key-only-for-debug-mode"  # noqa: S105 (DEBUG only)

SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "anymail",
    "django_ratelimit",
    "csp",
    # django-ninja: the JSON API; listed so its docs page uses its own bundled static
    # files (no CDN), which our Content-Security-Policy allows.
    "ninja",
    "newsletter",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "project.security.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # After sessions, before CommonMiddleware (Django's order): the /es/ prefix picks
    # Spanish; unprefixed reader pages are English; staff pages follow the browser.
    "newsletter.languages.LanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_ratelimit.middleware.RatelimitMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "newsletter.context_processors.newsletter",
            ],
        },
    },
]

# --- Database: SQLite in var/ unless DATABASE_URL names another (PostgreSQL in production).
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{VAR_DIR / 'advances.sqlite3'}",
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        # WAL lets the web process read while a worker writes; IMMEDIATE takes the
        # write lock at BEGIN so two writers queue instead of failing mid-transaction.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # A file, not memory, so a Celery worker started by the tests sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: shared through Redis when there is one (rate limits must count across
# processes); the embedded default runs one process, so local memory is enough there.
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "advances",
        }
    }
    # Django's own Redis cache increments atomically; django-ratelimit just does not
    # list it among the backends it names.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.W001"]
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    # django-ratelimit warns that local memory is not shared between processes; the
    # embedded default is one process.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

RATELIMIT_VIEW = "newsletter.views.site.rate_limited"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# Readers' languages: every public page and email exists in each (locale/ catalogues).
# Each name is in its own language: it is what the language switch shows. Adding one:
# docs/languages.md.
LANGUAGES = [("en", "English"), ("es", "Español")]
# One catalogue for the project's templates and code (`make messages` updates it).
LOCALE_PATHS = [BASE_DIR / "newsletter" / "locale"]
TIME_ZONE = os.environ.get("TIME_ZONE", "America/Chicago")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# WhiteNoise serves static files straight from the apps (no collectstatic step);
# set STATIC_ROOT only if you collect them for a CDN or another server.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or None
WHITENOISE_USE_FINDERS = True

# --- Security. With DEBUG off: secure cookies, HSTS, HTTPS redirect (a proxy in front
# sets X-Forwarded-Proto; set SECURE_SSL_REDIRECT=false if it redirects itself).
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Health checks come over plain HTTP from inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = 0 if DEBUG else env_int("SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Sending the preload directive only asks; nothing is preloaded until someone submits
# the registrable domain at hstspreload.org. SECURE_HSTS_PRELOAD=false withholds it.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "newsletter.views.site.csrf_failure"
# No page reads the CSRF cookie from JavaScript: forms carry the token in a field.
CSRF_COOKIE_HTTPONLY = True
# Only editors and publishers have sessions. A login lasts a working day, not Django's
# two weeks: a forgotten browser on a shared ward computer must not stay signed in.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 60 * 60)
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Browser features no page here uses, switched off (project.security); browsing-topics
# because a cancer reading list must never feed an advertising profile.
PERMISSIONS_POLICY = (
    "accelerometer=(), browsing-topics=(), camera=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), payment=(), usb=()"
)
# Content-Security-Policy (django-csp 4): scripts, styles and images from this site
# only; no inline script or style anywhere. The public pages load one stylesheet and
# no script; the admin loads its own static files. The one exception, the issue
# preview (the email in an iframe srcdoc, which inherits this policy), widens it for
# that view alone (newsletter.admin.content).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        # Education pieces may show images from the center's own HTTPS hosts; an image
        # runs no code, and the referrer policy keeps the page address to ourselves.
        "img-src": [SELF, "data:", "https:"],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "base-uri": [NONE],
        "object-src": [NONE],
    },
}
# Failed admin logins allowed per client IP and, separately, per username within the
# window; the next attempt is answered 429 until the window ends (project.security).
ADMIN_LOGIN_RATE = os.environ.get("ADMIN_LOGIN_RATE", "10/15m")

# The reverse proxies (addresses or networks, comma-separated) whose X-Forwarded-For is
# believed; every other peer's address is REMOTE_ADDR itself, whatever it sends. Empty
# by default: a header anyone can forge moves no rate limit. docker-compose sets it to
# its Caddy's fixed address. The system check newsletter.E010 refuses a bad entry.
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")
# django-ratelimit's "ip" key (the admin login limit) reads the same client address.
RATELIMIT_IP_META_KEY = "newsletter.views.clients.client_ip_for_ratelimit"

# --- Email. Without ESP, each message becomes one .eml file in var/outbox/.
# With ESP=mailgun (postmark, amazon_ses, ...), Anymail's backend for it, configured
# from environment variables under Anymail's own names (MAILGUN_API_KEY, ...).
ESP = os.environ.get("ESP", "").strip().lower()
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Advances <advances@example.org>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# The domain after the @ in Message-IDs the site writes itself (the outbox); empty means
# SITE_URL's host. ESPs assign their own on their own domain.
MESSAGE_ID_DOMAIN = os.environ.get("MESSAGE_ID_DOMAIN", "").strip()
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "outbox"))
NEWSLETTER_TRACKING = env_bool("NEWSLETTER_TRACKING")
ANYMAIL: dict[str, object] = {
    # Rule 6: a cancer center's reading list is sensitive, so no open or click
    # tracking unless an operator turns it on.
    "SEND_DEFAULTS": {
        "track_opens": NEWSLETTER_TRACKING,
        "track_clicks": NEWSLETTER_TRACKING,
    },
}
# Only these ESPs take tracking per message in Anymail; the others (Brevo, Amazon SES
# with its configuration set, Resend, ...) take it from the account, where an operator
# turns it off, and Anymail refuses the option for them.
TRACKING_PER_MESSAGE = {
    "mailgun", "mailjet", "mandrill", "mailersend", "postmark", "sendgrid", "sparkpost",
    "unisender_go",
}  # fmt: skip
if ESP and ESP not in TRACKING_PER_MESSAGE:
    ANYMAIL["SEND_DEFAULTS"] = {}
# A stuck ESP call is cut off after this many seconds and retried (network error).
ANYMAIL["REQUESTS_TIMEOUT"] = float(os.environ.get("ANYMAIL_REQUESTS_TIMEOUT", "") or 30)
if os.environ.get("ANYMAIL_WEBHOOK_SECRET"):
    ANYMAIL["WEBHOOK_SECRET"] = os.environ["ANYMAIL_WEBHOOK_SECRET"]
if ESP == "smtp":
    # The center's own relay, with Django's SMTP settings; STARTTLS unless told not to
    # (EMAIL_USE_SSL=true for implicit TLS on port 465 instead).
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
    EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL")
    EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", not EMAIL_USE_SSL)
    EMAIL_PORT = env_int("EMAIL_PORT", 465 if EMAIL_USE_SSL else 587)
    EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
    EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30)
elif ESP:
    EMAIL_BACKEND = f"anymail.backends.{ESP}.EmailBackend"
    _esp_prefix = ESP.upper() + "_"
    ANYMAIL.update(
        {name: value for name, value in os.environ.items() if name.startswith(_esp_prefix)}
    )
    # Anymail's boto3 settings for Amazon SES are dicts; from the environment, JSON.
    for _name in ("AMAZON_SES_CLIENT_PARAMS", "AMAZON_SES_SESSION_PARAMS"):
        if isinstance(ANYMAIL.get(_name), str):
            ANYMAIL[_name] = json.loads(str(ANYMAIL[_name]))
else:
    EMAIL_BACKEND = "newsletter.outbox.OutboxEmailBackend"

# --- Newsletter.
NEWSLETTER_POSTAL_ADDRESS = os.environ.get(
    "NEWSLETTER_POSTAL_ADDRESS",
    "UW Carbone Cancer Center, 600 Highland Avenue, Madison, WI 53792",
)
NEWSLETTER_LIST_ID = os.environ.get("NEWSLETTER_LIST_ID", "Advances <advances.example.org>")
NEWSLETTER_CONFIRM_DAYS = env_int("NEWSLETTER_CONFIRM_DAYS", 7)
# A repeated signup re-sends an email at most this often per address.
NEWSLETTER_RESEND_MINUTES = env_int("NEWSLETTER_RESEND_MINUTES", 10)
# Sending (see README "Sending an issue"). 0 for the batch size means the ESP's own
# per-call limit (Mailgun 1,000) or, for ESPs sent one message at a time, 100.
NEWSLETTER_BATCH_SIZE = env_int("NEWSLETTER_BATCH_SIZE", 0)
# How long a claimed batch belongs to its worker without news from it. A live worker
# renews the lease every third of it while the batch is at the ESP, so a slow ESP never
# costs it its rows; a dead worker's rows go out again one lease (plus a beat) later.
# A database outage shorter than this sends nobody a duplicate (newsletter/leases.py).
NEWSLETTER_LEASE_SECONDS = env_int("NEWSLETTER_LEASE_SECONDS", 60)
# How many workers may send one issue at once (each a "lane" taking batch after batch).
NEWSLETTER_LANES = env_int("NEWSLETTER_LANES", 16)
# Recipients per second across all workers (shared through Redis); 0 is unlimited.
NEWSLETTER_MAX_RATE = env_int("NEWSLETTER_MAX_RATE", 0)
# Threads sending at once, each over its own kept-open connection, where an ESP takes
# one message per call (newsletter/esp/per_message.py).
NEWSLETTER_SEND_CONCURRENCY = env_int("NEWSLETTER_SEND_CONCURRENCY", 8)
# true: one message per reader even where the ESP has a batch path (e.g. an SES account
# whose key may not manage templates).
NEWSLETTER_PER_MESSAGE = env_bool("NEWSLETTER_PER_MESSAGE")
# ESP calls that fail for good before a send pauses itself.
NEWSLETTER_MAX_ERRORS = env_int("NEWSLETTER_MAX_ERRORS", 5)
# Rule 9: nothing is sent without a clinical reviewer's approval. false is for a
# one-person demo only.
NEWSLETTER_REQUIRE_APPROVAL = env_bool("NEWSLETTER_REQUIRE_APPROVAL", True)
# Reading level each language's education should meet (newsletter.readability): for
# English the Flesch-Kincaid grade is at most this; for Spanish the Fernández Huerta
# ease is at least this (higher is easier; 70 is plain language). "en:8,es:70".
NEWSLETTER_READING_TARGETS = {
    code: float(target)
    for code, _, target in (
        item.partition(":") for item in env_list("NEWSLETTER_READING_TARGETS", "en:8,es:70")
    )
}
# An education piece's clinical review is due this many months after it was reviewed.
NEWSLETTER_REVIEW_MONTHS = env_int("NEWSLETTER_REVIEW_MONTHS", 12)
# The weekly reviewers' email lists pieces whose review falls due within this many days.
NEWSLETTER_REVIEW_NOTICE_DAYS = env_int("NEWSLETTER_REVIEW_NOTICE_DAYS", 30)
# Welcome series (newsletter/series.py): how long a series "day" lasts. Shorten it for a
# demo (e.g. 60: a ten-day series in ten minutes); production keeps a real day.
NEWSLETTER_SERIES_DAY_SECONDS = env_int("NEWSLETTER_SERIES_DAY_SECONDS", 24 * 60 * 60)
# An optional mailto: for List-Unsubscribe, beside the one-click HTTPS URL.
NEWSLETTER_UNSUBSCRIBE_MAILTO = os.environ.get("NEWSLETTER_UNSUBSCRIBE_MAILTO", "")
NEWSLETTER_SIGNUP_RATE_IP = os.environ.get("NEWSLETTER_SIGNUP_RATE_IP", "20/h")
NEWSLETTER_SIGNUP_RATE_EMAIL = os.environ.get("NEWSLETTER_SIGNUP_RATE_EMAIL", "5/h")
# Web pages of the center's own sites allowed to embed the signup form, as origins
# (scheme://host[:port], comma-separated). Empty: no other site can sign anyone up.
NEWSLETTER_EMBED_ORIGINS = env_list("NEWSLETTER_EMBED_ORIGINS")
# Requests per API key within the window (django-ratelimit rate); then 429.
NEWSLETTER_API_RATE = os.environ.get("NEWSLETTER_API_RATE", "120/m")
# Retention (privacy.apply_retention): unconfirmed signups are deleted after this many
# days, and IP addresses and user agents in the consent log dropped after this many.
NEWSLETTER_PENDING_DAYS = env_int("NEWSLETTER_PENDING_DAYS", 30)
NEWSLETTER_CONSENT_DETAIL_DAYS = env_int("NEWSLETTER_CONSENT_DETAIL_DAYS", 365)
# A reader may ask for their data by email at most this often.
NEWSLETTER_EXPORT_MINUTES = env_int("NEWSLETTER_EXPORT_MINUTES", 60)
# ESP events (newsletter.tracking): a reader whose messages soft-bounce this many times
# (distinct messages) within this many days is suppressed as bounced.
NEWSLETTER_SOFT_BOUNCE_LIMIT = env_int("NEWSLETTER_SOFT_BOUNCE_LIMIT", 3)
NEWSLETTER_SOFT_BOUNCE_DAYS = env_int("NEWSLETTER_SOFT_BOUNCE_DAYS", 30)

# --- Celery. With a broker (CELERY_BROKER_URL, else REDIS_URL), tasks go to workers;
# without one they run inline in the web process, errors propagating, so the embedded
# default needs no broker. The broker may be RabbitMQ (amqp://...) or Redis; the Redis
# of rate limits, the send rate and the cache is always REDIS_URL.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "") or REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = CELERY_BROKER_URL == "memory://"
CELERY_TASK_EAGER_PROPAGATES = True
# JSON only: a task message is data (ids), never code to unpickle.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
# No result backend: the database (the Delivery ledger) records what happened.
CELERY_TASK_IGNORE_RESULT = True
# Acknowledge after the task ran, and re-queue it if the worker process dies, so a
# crash never loses a message. Tasks are idempotent, so a redelivery is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One message at a time per process: a bulk batch is long, and prefetching would park
# work behind it while other workers sit idle.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# No task runs longer than this; a stuck ESP call is cut off and retried.
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_TIME_LIMIT = 300
# Redis re-delivers an unacknowledged message after this long; it must exceed the
# longest task, or a running task would be handed to a second worker. (RabbitMQ gives a
# dead worker's unacknowledged messages back as soon as its connection drops.) Rows of
# a dead worker do not wait for this: their lease and the periodic task bring them back.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Every 15 s: take back claims of dead workers, start due scheduled issues, finish
# completed sends.
CELERY_BEAT_SCHEDULE = {
    "newsletter-periodic": {"task": "newsletter.tasks.run_periodic", "schedule": 15.0},
}
# Daily: delete stale pending signups, drop old IP addresses and user agents.
CELERY_BEAT_SCHEDULE["newsletter-retention"] = {
    "task": "newsletter.tasks.apply_retention",
    "schedule": 24 * 60 * 60.0,
}
# Hourly: today's subscribers per status, for the list-health page.
CELERY_BEAT_SCHEDULE["newsletter-list-snapshot"] = {
    "task": "newsletter.tasks.take_list_snapshot",
    "schedule": 60 * 60.0,
}
# Every 30 s: enrol new readers in welcome series and queue the steps that are due
# (the rows then go out on the bulk queue like an issue's).
CELERY_BEAT_SCHEDULE["newsletter-series"] = {
    "task": "newsletter.tasks.run_series",
    "schedule": 30.0,
}
# Weekly (Mondays 14:00 UTC, morning in Madison): tell the Clinical reviewers which education
# pieces' reviews fall due within NEWSLETTER_REVIEW_NOTICE_DAYS (transactional queue).
CELERY_BEAT_SCHEDULE["newsletter-reviews-due"] = {
    "task": "newsletter.tasks.send_reviews_due",
    "schedule": crontab(minute=0, hour=14, day_of_week=1),
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "newsletter": {"level": os.environ.get("LOG_LEVEL", "INFO")},
        "project": {"level": os.environ.get("LOG_LEVEL", "INFO")},
    },
}
