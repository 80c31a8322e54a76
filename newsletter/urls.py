from django.urls import path

from newsletter.views import embed
from newsletter.views import reader as views

app_name = "newsletter"
urlpatterns = [
    path("subscribe/", views.subscribe, name="subscribe"),
    path("subscribe/check-your-inbox/", views.check_inbox, name="check_inbox"),
    path("confirm/<str:token>/", views.confirm, name="confirm"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("preferences/<str:token>/", views.preferences, name="preferences"),
    path("preferences/<str:token>/my-data/", views.request_my_data, name="request_my_data"),
    path("preferences/<str:token>/erase/", views.erase_my_data, name="erase_my_data"),
    path("privacy/", views.privacy_page, name="privacy"),
    path("embed/subscribe/", embed.subscribe_form, name="embed_subscribe"),
    path("embed/subscribe.json", embed.subscribe_json, name="embed_subscribe_json"),
    path("embed/thanks/", embed.thanks, name="embed_thanks"),
    path("archive/", views.archive, name="archive"),
    path("archive/feed/", views.ArchiveFeed(), name="archive_feed"),
    path("archive/<slug:slug>/", views.archive_issue, name="archive_issue"),
]
