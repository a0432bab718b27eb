from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("health", "0003_alertstate"),
    ]

    operations = [
        migrations.AddField(
            model_name="providerhealth",
            name="reason",
            field=models.TextField(blank=True),
        ),
    ]
