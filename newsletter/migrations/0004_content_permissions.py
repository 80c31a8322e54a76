"""Editors write pieces and issues; only Publishers may send an issue to the list."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CONTENT = [
    f"{action}_{model}"
    for model in ("educationpiece", "issue", "issuepiece")
    for action in ("add", "change", "view")
]
GROUP_PERMISSIONS = {
    "Editors": CONTENT,
    "Publishers": [*CONTENT, "send_issue"],
}


def grant(apps, schema_editor):
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
    dependencies = [("newsletter", "0003_content")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
