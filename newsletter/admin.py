from django.contrib import admin

from newsletter.models import ConsentEvent, Subscriber, Topic


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
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
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "first_name", "status", "created_at", "confirmed_at"]
    list_filter = ["status", "topics"]
    search_fields = ["email", "first_name"]
    readonly_fields = ["created_at", "updated_at", "confirmed_at", "unsubscribed_at"]
    filter_horizontal = ["topics"]
    date_hierarchy = "created_at"
    inlines = [ConsentEventInline]
