from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from newsletter import approval, composing, embed
from newsletter.models import EducationPiece, Issue, IssuePiece, Topic


def refuse_control_characters(value: str) -> None:
    # A line break in an address or name is how header injection starts.
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValidationError(
            _("This can't contain line breaks or other control characters."),
            code="control_characters",
        )


class SafeEmailField(forms.EmailField):
    """An email address, trimmed and lower-cased, refused if it hides a line break."""

    def to_python(self, value: object) -> str:
        text = super().to_python(value) or ""
        refuse_control_characters(text)
        return text.lower()


class NameField(forms.CharField):
    def to_python(self, value: object) -> str:
        text = super().to_python(value) or ""
        refuse_control_characters(text)
        return text


def out_of_key_range(value: object) -> bool:
    """Whether a value is a number no primary key (a signed 64-bit integer) can be.
    SQLite raises OverflowError for one instead of finding nothing."""
    try:
        number = int(str(value))
    except ValueError:
        return False  # not a number at all: the field's own check says so
    return not -(2**63) <= number < 2**63


class TopicsField(forms.ModelMultipleChoiceField):
    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs: object) -> None:
        super().__init__(queryset=Topic.objects.all(), **kwargs)

    def clean(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            for pk in value:
                if out_of_key_range(pk):
                    raise ValidationError(
                        self.error_messages["invalid_pk_value"],
                        code="invalid_pk_value",
                        params={"pk": pk},
                    )
        return super().clean(value)


class SubscribeForm(forms.Form):
    email = SafeEmailField(max_length=254, label=_("Email address"))
    first_name = NameField(max_length=100, required=False, label=_("First name (optional)"))
    topics = TopicsField(required=False, label=_("Topics"))
    # A honeypot: hidden from people, filled in by bots. A filled-in form is answered
    # like any other and then ignored.
    website = forms.CharField(required=False, label=_("Leave this field empty"))

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not self.is_bound:
            self.fields["topics"].initial = list(
                Topic.objects.filter(is_default=True).values_list("pk", flat=True)
            )


class EmbedSubscribeForm(SubscribeForm):
    """The signup form as an embed on another site posts it: the same fields and checks,
    plus the embed's source name and the reader's language."""

    source = forms.CharField(required=False, max_length=100)
    # A page's `lang` as the script read it ("es-MX" is Spanish); anything else, the
    # site's default language, as a page without `lang` gets.
    language = forms.CharField(required=False, max_length=35)

    def clean_source(self) -> str:
        name = self.cleaned_data["source"] or embed.DEFAULT_SOURCE
        try:
            return embed.clean_source(name)
        except embed.InvalidSource:
            raise ValidationError(
                _("Use lower-case letters, digits, “-” or “_” only."), code="invalid_source"
            ) from None

    def clean_language(self) -> str:
        return embed.reader_language(self.cleaned_data["language"])


class PreferencesForm(forms.Form):
    first_name = NameField(max_length=100, required=False, label=_("First name"))
    topics = TopicsField(
        required=True,
        label=_("Topics"),
        error_messages={"required": _("Choose at least one topic, or unsubscribe from all below.")},
    )
    # Each language named in its own words, as in the language switch. Left out of a
    # submission: unchanged.
    language = forms.ChoiceField(
        required=False,
        label=_("Language of your emails"),
        choices=settings.LANGUAGES,
        widget=forms.RadioSelect,
    )


class MarkdownWithAltTextField(forms.CharField):
    """Markdown whose every image has alt text: screen readers read it aloud."""

    widget = forms.Textarea

    def validate(self, value: str) -> None:
        super().validate(value)
        missing = composing.images_without_alt(value or "")
        if missing:
            raise ValidationError(
                "Every image needs alt text, e.g. ![A nurse talking with a patient](URL). "
                "%(count)d image(s) have none.",
                code="image_without_alt",
                params={"count": missing},
            )


class EducationPieceAdminForm(forms.ModelForm):
    body = MarkdownWithAltTextField(help_text="Markdown. Every image needs alt text.")
    cta_url = forms.URLField(
        label="Call-to-action URL",
        required=False,
        assume_scheme="https",
        help_text="A web address, or tel:+16082666400 for a phone number.",
    )

    class Meta:
        model = EducationPiece
        fields = [
            "title", "slug", "summary", "body", "topic", "home_position", "cta_label",
            "cta_url", "reviewed_by", "reviewed_on", "review_due",
        ]  # fmt: skip


class IssueAdminForm(forms.ModelForm):
    intro = MarkdownWithAltTextField(required=False, help_text="Markdown, shown before the pieces.")

    class Meta:
        model = Issue
        fields = ["subject", "slug", "preheader", "intro", "topics"]


class TestSendForm(forms.Form):
    MAX_ADDRESSES = 5
    addresses = forms.CharField(
        label="Send a test to",
        help_text=f"Your own address, or up to {MAX_ADDRESSES} addresses separated by commas.",
        max_length=1000,
    )

    def clean_addresses(self) -> list[str]:
        field = SafeEmailField(max_length=254)
        raw = [item for item in self.cleaned_data["addresses"].split(",") if item.strip()]
        if not raw:
            raise ValidationError("Enter at least one address.", code="required")
        if len(raw) > self.MAX_ADDRESSES:
            raise ValidationError(
                "At most %(max)d addresses.", code="too_many", params={"max": self.MAX_ADDRESSES}
            )
        return list(dict.fromkeys(field.clean(item) for item in raw))


class ScheduleForm(forms.Form):
    when = forms.DateTimeField(
        label="Send at",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
        help_text="In the server's time zone.",
    )

    def clean_when(self) -> datetime:
        when = self.cleaned_data["when"]
        if when <= timezone.now():
            raise ValidationError("Choose a time in the future.", code="past")
        return when


class SubscriberImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file",
        help_text="UTF-8 (“CSV UTF-8”), at most 5 MB and 50,000 rows. Columns: email, consent, "
        "and optionally first_name, topics (slugs separated by ;) and confirmed (yes/no).",
    )
    source = NameField(
        max_length=200,
        label="What is this list?",
        help_text="Kept with every imported reader's consent, e.g. “2024 health fair sheet”.",
    )


class IssuePieceForm(forms.ModelForm):
    """A piece in an issue: one whose clinical review is overdue cannot be added."""

    class Meta:
        model = IssuePiece
        fields = ["position", "piece"]

    def clean_piece(self) -> EducationPiece:
        piece = self.cleaned_data["piece"]
        if piece is not None and "piece" in self.changed_data and approval.review_overdue(piece):
            raise ValidationError(
                _(
                    "The clinical review of “%(title)s” was due on %(due)s: renew the "
                    "review before adding it to an issue."
                ),
                code="review_overdue",
                params={"title": piece.title, "due": f"{piece.review_due:%Y-%m-%d}"},
            )
        return piece
