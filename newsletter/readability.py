"""How easy a text is to read, measured the way its language is measured.

English: the Flesch-Kincaid grade (lower is easier; patient education aims at 8 or
below). Spanish: the Fernández Huerta ease (higher is easier, like Flesch's; 70 or more
is plain language). The target per language is NEWSLETTER_READING_TARGETS.
"""

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.utils.translation import gettext as _
from textstat.textstat import textstatistics


@dataclass(frozen=True)
class Measure:
    name: str
    # True: a score at most the target passes (a grade); False: at least (an ease).
    lower_is_easier: bool
    default_target: float


MEASURES = {
    "en": Measure("Flesch-Kincaid grade", lower_is_easier=True, default_target=8),
    "es": Measure("Fernández Huerta", lower_is_easier=False, default_target=70),
}


@cache
def _textstat(language: str) -> textstatistics:
    # One instance per language: textstat's language is a setting of the instance, and
    # the module's shared one would switch under another thread's feet.
    stats = textstatistics()
    stats.set_lang(language)
    return stats


@dataclass(frozen=True)
class ReadingLevel:
    language: str
    measure: str
    score: float
    target: float
    lower_is_easier: bool

    @property
    def meets_target(self) -> bool:
        if self.lower_is_easier:
            return self.score <= self.target
        return self.score >= self.target

    def __str__(self) -> str:
        figure = f"{self.measure} {self.score:g}"
        if self.meets_target:
            return figure
        if self.lower_is_easier:
            aim = _("aim for %(target)s or below") % {"target": f"{self.target:g}"}
        else:
            aim = _("aim for %(target)s or above") % {"target": f"{self.target:g}"}
        return f"⚠ {figure} ({aim})"


def measure_for(language: str) -> Measure:
    return MEASURES.get(language, MEASURES["en"])


def target_for(language: str) -> float:
    measure = measure_for(language)
    targets = getattr(settings, "NEWSLETTER_READING_TARGETS", {})
    return float(targets.get(language, measure.default_target))


def reading_level(plain: str, language: str) -> ReadingLevel:
    """The reading level of plain text in `language` (a language without a measure of
    its own is measured as English)."""
    code = language if language in MEASURES else "en"
    measure = MEASURES[code]
    stats = _textstat(code)
    if not plain.strip():
        score = 0.0
    elif code == "es":
        score = round(stats.fernandez_huerta(plain), 1)
    else:
        score = round(stats.flesch_kincaid_grade(plain), 1)
    return ReadingLevel(code, measure.name, score, target_for(code), measure.lower_is_easier)
