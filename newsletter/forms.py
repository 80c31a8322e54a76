from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from newsletter.models import Topic


def refuse_control_characters(value: str) -> None:
    # A line break in an address or name is how header injection starts.
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        raise ValidationError(
            "This can't contain line breaks or other control characters.",
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
    email = SafeEmailField(max_length=254, label="Email address")
    first_name = NameField(max_length=100, required=False, label="First name (optional)")
    topics = TopicsField(required=False, label="Topics")
    # A honeypot: hidden from people, filled in by bots. A filled-in form is answered
    # like any other and then ignored.
    website = forms.CharField(required=False, label="Leave this field empty")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if not self.is_bound:
            self.fields["topics"].initial = list(
                Topic.objects.filter(is_default=True).values_list("pk", flat=True)
            )


class PreferencesForm(forms.Form):
    first_name = NameField(max_length=100, required=False, label="First name")
    topics = TopicsField(
        required=True,
        label="Topics",
        error_messages={"required": "Choose at least one topic, or unsubscribe from all below."},
    )
