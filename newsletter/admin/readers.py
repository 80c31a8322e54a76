"""The admin for the list: topics, subscribers with their consent log and list health,
and what the ESPs reported."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path

from newsletter import charts, tracking
from newsletter.admin.data_rights import SubscriberDataRightsMixin
from newsletter.admin.embed import SubscriberEmbedMixin, TopicEmbedMixin
from newsletter.models import ConsentEvent, DeliveryEvent, Subscriber, Topic


@admin.register(Topic)
class TopicAdmin(TopicEmbedMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "is_default", "position"]
    list_editable = ["is_default", "position"]
    prepopulated_fields = {"slug": ["name"]}


class ConsentEventInline(admin.TabularInline):
    """The consent log is append-only: shown, never edited here."""

    model = ConsentEvent
    extra = 0
    can_delete = False
    fields = ("created_at", "kind", "source", "ip_address", "user_agent", "wording", "detail")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Subscriber)
class SubscriberAdmin(SubscriberEmbedMixin, SubscriberDataRightsMixin, admin.ModelAdmin):
    list_display = ["email", "first_name", "status", "source", "created_at", "confirmed_at"]
    list_filter = ["status", "source", "topics"]
    search_fields = ["email", "first_name"]
    readonly_fields = ["created_at", "updated_at", "confirmed_at", "unsubscribed_at"]
    filter_horizontal = ["topics"]
    date_hierarchy = "created_at"
    inlines = [ConsentEventInline]

    def get_urls(self):
        health = path(
            "health/",
            self.admin_site.admin_view(self.list_health_view),
            name="newsletter_subscriber_health",
        )
        return [health, *super().get_urls()]

    def list_health_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        health = tracking.list_health()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "List health",
            "health": health,
            "charts": charts.list_health_charts(health),
            "status_rows": [
                (label, health.today[status]) for status, label in Subscriber.Status.choices
            ],
        }
        return TemplateResponse(request, "admin/newsletter/subscriber/health.html", context)


@admin.register(DeliveryEvent)
class DeliveryEventAdmin(admin.ModelAdmin):
    """What the ESPs reported, read-only: for operators checking that webhooks arrive."""

    list_display = ["occurred_at", "esp", "kind", "esp_event_type", "delivery", "subscriber"]
    list_filter = ["kind", "esp"]
    list_select_related = ["delivery", "subscriber"]
    date_hierarchy = "occurred_at"
    search_fields = ["message_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
