import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from newsletter.models import EducationPiece, Issue, IssuePiece, Subscriber, Topic


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Topic {n}")
    slug = factory.Sequence(lambda n: f"topic-{n}")


class SubscriberFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscriber
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"reader{n}@example.com")
    first_name = factory.Faker("first_name")
    status = Subscriber.Status.ACTIVE

    @factory.post_generation
    def topics(self, create, extracted, **kwargs):
        if create:
            self.topics.set(
                extracted if extracted is not None else Topic.objects.filter(is_default=True)
            )


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.org")
    is_staff = True
    password = factory.django.Password("a-long-test-password")

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if create and extracted:
            self.groups.set(Group.objects.filter(name__in=extracted))


class EducationPieceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = EducationPiece

    title = factory.Sequence(lambda n: f"Piece {n}")
    slug = factory.Sequence(lambda n: f"piece-{n}")
    summary = "A short summary."
    body = factory.Sequence(lambda n: f"Body of piece {n}. It is short and plain.")


class IssueFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Issue
        skip_postgeneration_save = True

    subject = factory.Sequence(lambda n: f"Issue {n}")
    slug = factory.Sequence(lambda n: f"issue-{n}")
    preheader = "What this issue is about."
    intro = "Welcome to this issue."

    @factory.post_generation
    def topics(self, create, extracted, **kwargs):
        if create:
            self.topics.set(
                extracted if extracted is not None else Topic.objects.filter(is_default=True)
            )

    @factory.post_generation
    def with_pieces(self, create, extracted, **kwargs):
        if create:
            for position, piece in enumerate(extracted or [], start=1):
                IssuePiece.objects.create(issue=self, piece=piece, position=position)


def approve(issue: Issue, reviewer=None) -> Issue:
    """Have a clinical reviewer (not its author) approve the issue as it is now, as
    rule 9 requires before any send. Returns the issue."""
    from newsletter import approval

    reviewer = reviewer or UserFactory(groups=[approval.REVIEWERS_GROUP])
    approval.review_issue(issue_id=issue.pk, reviewer=reviewer, decision=approval.Decision.APPROVED)
    return issue
