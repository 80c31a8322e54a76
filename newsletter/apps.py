import logging

from django.apps import AppConfig

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
