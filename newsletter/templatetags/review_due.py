"""`{% review_due_badge %}`: the count of education pieces whose clinical review is
overdue or due soon, for the admin index. Its markup is in
templates/admin/newsletter/_review_due.html, so any index template can include it."""

from django import template
from django.urls import reverse

from newsletter import review_due

register = template.Library()


@register.inclusion_tag("admin/newsletter/_review_due.html", takes_context=True)
def review_due_badge(context: template.Context) -> dict[str, object]:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.has_perm("newsletter.view_educationpiece"):
        return {"show": False}
    counts = review_due.summary()
    url = reverse("admin:newsletter_educationpiece_changelist")
    return {
        "show": bool(counts.overdue or counts.due_soon),
        "overdue": counts.overdue,
        "due_soon": counts.due_soon,
        "notice_days": counts.notice_days,
        "overdue_url": f"{url}?review=overdue",
        "due_soon_url": f"{url}?review=due-soon",
    }
