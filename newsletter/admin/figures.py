"""Filters that open the readers behind a figure: the progress page's delivery counts
and ESP outcomes link to the subscriber list filtered by one of these."""

from collections.abc import Mapping

from django.contrib import admin
from django.utils.translation import gettext_lazy

from newsletter import sending, tracking
from newsletter.models import Delivery, DeliveryEvent, Issue


def _split(value: str | None) -> tuple[int, str] | None:
    issue_id, _sep, what = (value or "").partition(":")
    return (int(issue_id), what) if issue_id.isdigit() and what else None


class _FigureFilter(admin.SimpleListFilter):
    """One parameter, "<issue id>:<what>". Its only choice is the one in the address, so
    the sidebar says what the list shows and offers to clear it."""

    kinds: Mapping[str, object] = {}

    def lookups(self, request, model_admin):
        parsed = _split(self.value())
        if parsed is None or parsed[1] not in self.kinds:
            return []
        issue = Issue.objects.filter(pk=parsed[0]).only("subject").first()
        if issue is None:
            return []
        return [(self.value(), f"{issue.subject}: {self.kinds[parsed[1]]}")]

    def queryset(self, request, queryset):
        parsed = _split(self.value())
        if parsed is None or parsed[1] not in self.kinds:
            return queryset
        return queryset.filter(pk__in=self.readers(*parsed))

    def readers(self, issue_id: int, what: str):
        raise NotImplementedError


class DeliveryFigureFilter(_FigureFilter):
    title = gettext_lazy("delivery of an issue")
    parameter_name = "delivery"
    kinds = dict(Delivery.Status.choices)

    def readers(self, issue_id: int, what: str):
        return sending.readers_with_delivery_status(issue_id=issue_id, status=what)


class OutcomeFigureFilter(_FigureFilter):
    title = gettext_lazy("ESP outcome of an issue")
    parameter_name = "outcome"
    kinds = dict(DeliveryEvent.Kind.choices)

    def readers(self, issue_id: int, what: str):
        return tracking.readers_with_outcome(issue_id=issue_id, kind=what)
