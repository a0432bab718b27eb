"""The `operators` group the console's role table depends on (health/access.py: members may
run operational actions). Created here so a fresh install has it to add users to; removing
the migration leaves the group and its members alone."""

from django.db import migrations

OPERATORS = "operators"  # health.access.OPERATORS, copied: a migration does not import app code


def create_operators(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.get_or_create(name=OPERATORS)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("health", "0006_incidents"),
    ]

    operations = [migrations.RunPython(create_operators, migrations.RunPython.noop)]
