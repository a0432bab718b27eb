"""The example files themselves: each loads with `import_config` as it is, a second load
changes nothing, each says what it demonstrates, and the READMEs link every one."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from .stage import EXAMPLES, ROOT

pytestmark = pytest.mark.django_db

STORIES = sorted(path.stem for path in EXAMPLES.glob("*.yaml"))


def test_there_is_one_example_and_one_story_test_per_story():
    assert STORIES == ["admin-platform", "chat-bot", "media-platform", "server-package", "video-studio"]
    for story in STORIES:
        assert (ROOT / "tests" / "stories" / f"test_{story.replace('-', '_')}.py").exists(), story


@pytest.mark.parametrize("story", STORIES)
def test_an_example_loads_as_it_is_and_a_second_load_changes_nothing(story):
    first, again = StringIO(), StringIO()
    call_command("import_config", str(EXAMPLES / f"{story}.yaml"), stdout=first)
    call_command("import_config", str(EXAMPLES / f"{story}.yaml"), stdout=again)

    assert "deleted 0" in first.getvalue() and "created 0" not in first.getvalue()
    assert ": created 0, updated 0, deleted 0" in again.getvalue()


@pytest.mark.parametrize("story", STORIES)
def test_an_example_says_what_it_demonstrates_and_the_readmes_link_it(story):
    header = (EXAMPLES / f"{story}.yaml").read_text().split("\nproviders:")[0]

    assert header.startswith("# ") and "# What it demonstrates" in header and "# Try it" in header
    assert f"import_config examples/{story}.yaml" in header
    assert f"]({story}.yaml)" in (EXAMPLES / "README.md").read_text()
    assert f"](examples/{story}.yaml)" in (ROOT / "README.md").read_text()
