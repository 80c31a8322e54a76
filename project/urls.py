from django.conf.urls.i18n import i18n_patterns
from django.contrib import admin
from django.urls import include, path

from newsletter.views import reader, site, webhooks
from newsletter.views.api import api
from project.security import throttle_failed_logins

# The reader's pages, in every language: English where they always were, Spanish (and
# any other language) under its prefix, /es/... Signed links work under either prefix.
urlpatterns = i18n_patterns(
    path("", reader.home, name="home"),
    path("newsletter/", include("newsletter.urls")),
    prefix_default_language=False,
)
# Machines' and staff addresses: one address each, never under a language prefix.
urlpatterns += [
    path("healthz", site.healthz, name="healthz"),
    # The JSON API for the center's systems: versioned, never under a language prefix.
    path("api/v1/", api.urls),
    path("anymail/", include((webhooks.tracking_webhook_urls(), "anymail"))),
    # Ahead of admin.site.urls, so the admin's own login URL is the throttled one.
    path("admin/login/", throttle_failed_logins(admin.site.login)),
    path("admin/", admin.site.urls),
]

handler400 = "newsletter.views.site.bad_request"
handler403 = "newsletter.views.site.permission_denied"
handler404 = "newsletter.views.site.page_not_found"
handler500 = "newsletter.views.site.server_error"
