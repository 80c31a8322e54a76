import logging

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps

logger = logging.getLogger("newsletter")


class NewsletterConfig(AppConfig):
    name = "newsletter"
    verbose_name = "Advances newsletter"

    def ready(self) -> None:
        from django.conf import settings

        from newsletter import checks, tracking  # noqa: F401  (signal receiver, checks)

        if settings.CELERY_TASK_ALWAYS_EAGER:
            logger.info(
                "No broker (CELERY_BROKER_URL, REDIS_URL): tasks run inline in this process."
            )


class AdvancesAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with Advances' own site (header, title, start pages)."""

    default = False  # named in INSTALLED_APPS; NewsletterConfig stays this module's default
    default_site = "newsletter.admin_site.AdvancesAdminSite"
