"""The main Advances topic, and the Editors and Publishers groups with their rights."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUP_PERMISSIONS = {
    "Editors": ["view_topic"],
    "Publishers": [
        "view_topic",
        "add_topic",
        "change_topic",
        "view_subscriber",
        "change_subscriber",
        "view_consentevent",
    ],
}


def create_topic_and_groups(apps, schema_editor):
    Topic = apps.get_model("newsletter", "Topic")
    Topic.objects.get_or_create(
        slug="advances",
        defaults={
            "name": "Advances",
            "description": "The cancer center's patient-education newsletter.",
            "is_default": True,
        },
    )
    # Permissions are normally created after all migrations; make them exist now.
    app_config = apps.get_app_config("newsletter")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, codenames in GROUP_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="newsletter", codename__in=codenames)
        )


class Migration(migrations.Migration):
    dependencies = [
        ("newsletter", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_topic_and_groups, migrations.RunPython.noop)]
