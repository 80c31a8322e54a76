"""Minimal Django project for the django-newsletter 1.2.1 baseline.

Configured as django-newsletter's installation and settings docs say, with Anymail's real
Mailgun backend pointed at the local fake ESP (``FAKE_ESP_URL``). The database is SQLite in
``benchmarks/.work/dn.sqlite3`` unless ``DATABASE_URL`` names a PostgreSQL database.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

WORK_DIR = Path(__file__).resolve().parents[2] / ".work"


def database_from_url(url: str) -> dict[str, object]:
    """The DATABASES entry for ``postgres://user:password@host:port/name`` or ``sqlite:///path``."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql", "pgsql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "postgres",
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
        }
    if parts.scheme == "sqlite":
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": unquote(parts.path)}
    raise ValueError(f"unsupported DATABASE_URL scheme: {parts.scheme!r}")


BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = os.environ.get("DN_BENCH_SECRET_KEY", "benchmark-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

INSTALLED_APPS = [
    # Contrib apps that django-newsletter's installation docs require.
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.auth",
    "django.contrib.sites",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # One of the thumbnail applications it requires.
    "sorl.thumbnail",
    "newsletter",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "bench_project.urls"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

if os.environ.get("DATABASE_URL"):
    DATABASES = {"default": database_from_url(os.environ["DATABASE_URL"])}
else:
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": WORK_DIR / "dn.sqlite3"}
    }
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
MEDIA_URL = "/media/"
MEDIA_ROOT = WORK_DIR / "dn-media"

# Anymail's real Mailgun backend, sending to the local fake ESP.
EMAIL_BACKEND = "anymail.backends.mailgun.EmailBackend"
ANYMAIL = {
    "MAILGUN_API_KEY": "test-key",
    "MAILGUN_SENDER_DOMAIN": "mg.example.org",
    "MAILGUN_API_URL": os.environ["FAKE_ESP_URL"] + "/v3",
}
DEFAULT_FROM_EMAIL = "Advances <advances@mg.example.org>"

# django-newsletter settings (docs/settings.rst).
NEWSLETTER_THUMBNAIL = "sorl-thumbnail"
NEWSLETTER_USE_HTTPS = True
NEWSLETTER_CONFIRM_EMAIL = True
# No throttling. Submission.submit() calls time.sleep(NEWSLETTER_EMAIL_DELAY) once per email
# whenever the setting exists (sleep(0) costs microseconds); a batch size of 0 turns the batch
# pause off altogether.
NEWSLETTER_EMAIL_DELAY = 0
NEWSLETTER_BATCH_DELAY = 0
NEWSLETTER_BATCH_SIZE = 0
