from django.contrib import admin
from django.urls import include, path

from newsletter import views
from project.security import throttle_failed_logins

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("newsletter/", include("newsletter.urls")),
    path("anymail/", include((views.tracking_webhook_urls(), "anymail"))),
    # Ahead of admin.site.urls, so the admin's own login URL is the throttled one.
    path("admin/login/", throttle_failed_logins(admin.site.login)),
    path("admin/", admin.site.urls),
]

handler400 = "newsletter.views.bad_request"
handler403 = "newsletter.views.permission_denied"
handler404 = "newsletter.views.page_not_found"
handler500 = "newsletter.views.server_error"
