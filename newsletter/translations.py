"""Content in several languages: education pieces linked to their translations, and an
issue's copy in another language.

A piece's translations share a `translation_group`, with at most one piece per
language (a database constraint). An issue exists in one language; "create the Spanish
issue" copies an English one's structure and puts each piece's Spanish version in its
place, so the editor translates the issue's own words and nothing else.
"""

import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, QuerySet
from django.utils.text import slugify

from newsletter.errors import NewsletterError
from newsletter.models import EducationPiece, Issue, IssuePiece, Subscriber


class TranslationConflict(NewsletterError):
    """The two pieces cannot be linked: same language, or that language is taken."""


def translations_of(piece: EducationPiece) -> dict[str, EducationPiece]:
    """Every piece of this one's group, by language, itself included."""
    if piece.translation_group is None:
        return {piece.language: piece}
    return {
        other.language: other
        for other in EducationPiece.objects.filter(translation_group=piece.translation_group)
    }


def missing_languages(piece: EducationPiece) -> list[str]:
    have = translations_of(piece)
    return [code for code, _ in settings.LANGUAGES if code not in have]


def pieces_missing(language: str) -> "QuerySet[EducationPiece]":
    """Pieces in other languages that have no translation into `language`."""
    translated = EducationPiece.objects.filter(
        language=language, translation_group__isnull=False
    ).values("translation_group")
    return EducationPiece.objects.exclude(language=language).exclude(
        translation_group__in=translated
    )


def link_translation(*, piece: EducationPiece, translation: EducationPiece) -> None:
    """Put `translation` in `piece`'s group (making one if neither has any). Raises
    TranslationConflict if they share a language or the group already has a piece in
    the translation's language."""
    if piece.pk == translation.pk or piece.language == translation.language:
        raise TranslationConflict("a translation is in another language")
    with transaction.atomic():
        group = piece.translation_group or translation.translation_group or uuid.uuid4()
        taken = (
            EducationPiece.objects.filter(translation_group=group, language=translation.language)
            .exclude(pk=translation.pk)
            .exists()
        )
        if taken:
            raise TranslationConflict(f"the group already has a piece in {translation.language}")
        EducationPiece.objects.filter(pk__in=[piece.pk, translation.pk]).update(
            translation_group=group
        )
    piece.translation_group = translation.translation_group = group


def unlink_translation(*, piece: EducationPiece) -> None:
    EducationPiece.objects.filter(pk=piece.pk).update(translation_group=None)
    piece.translation_group = None


@dataclass(frozen=True)
class TranslatedIssue:
    issue: Issue
    # Pieces of the original with no version in the new language: left out.
    untranslated: list[EducationPiece]


def create_translated_issue(*, issue_id: int, language: str, author: Any = None) -> TranslatedIssue:
    """A new draft issue in `language` with the original's structure: its subject,
    preheader and intro to translate, its topics, and in each piece's place that
    piece's version in `language`, where there is one. The original is unchanged."""
    original = Issue.objects.get(pk=issue_id)
    with transaction.atomic():
        copy = Issue.objects.create(
            subject=original.subject,
            slug=_free_slug(f"{original.slug}-{language}"),
            preheader=original.preheader,
            intro=original.intro,
            language=language,
            author=author,
            last_edited_by=author,
        )
        copy.topics.set(original.topics.all())
        untranslated = []
        for item in original.issue_pieces.select_related("piece"):
            version = translations_of(item.piece).get(language)
            if version is None:
                untranslated.append(item.piece)
                continue
            IssuePiece.objects.create(issue=copy, piece=version, position=item.position)
    return TranslatedIssue(issue=copy, untranslated=untranslated)


def _free_slug(wanted: str) -> str:
    base = slugify(wanted)[:190] or "issue"
    slug, n = base, 1
    while Issue.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@dataclass(frozen=True)
class LanguageAudience:
    code: str
    name: str
    readers: int
    receives: bool  # the issue's own language: these readers get it


def audience_by_language(issue: Issue) -> list[LanguageAudience]:
    """Active readers of the issue's topics, per language: those of the issue's
    language get it; the others would need the issue in their language."""
    topic_ids = list(issue.topics.values_list("pk", flat=True))
    counts = dict(
        Subscriber.objects.filter(status=Subscriber.Status.ACTIVE, topics__in=topic_ids)
        .values("language")
        .annotate(readers=Count("pk", distinct=True))
        .values_list("language", "readers")
    )
    return [
        LanguageAudience(code, name, counts.get(code, 0), code == issue.language)
        for code, name in settings.LANGUAGES
    ]
