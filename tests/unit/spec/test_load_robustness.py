"""Whatever the text, loading and validating it ends in a Source with diagnostics or a LoadError, never a crash.

Hypothesis damages a valid spec one edit at a time (the typos and bad pastes users make), and tries arbitrary text.
"""

from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import REPO
from npc.spec import LoadError, load_text, validate

VALID_YAML = (REPO / "tests" / "specs" / "positive" / "yaml_anchors_and_aliases.yaml").read_text()
VALID_JSON = (REPO / "tests" / "specs" / "positive" / "json_form.json").read_text()
# derandomize: the same examples on every run, so a pass or a failure is reproducible in CI.
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
PUNCTUATION = st.sampled_from(list(":-[]{},&*<>!|'\"#~ \t\n") + ["  ", "- ", ": ", "0", "x", "null", "true"])


@st.composite
def damaged(draw, text: str) -> str:
    for _ in range(draw(st.integers(1, 3))):
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 8)))
        text = text[:start] + draw(PUNCTUATION) + text[end:]
    return text


def _load_and_validate(text: str, *, is_json: bool) -> None:
    try:
        source = load_text(text, "fuzz", is_json=is_json)
    except LoadError as exc:
        assert exc.message
        return
    for diagnostic in validate(source):
        assert diagnostic.message and (diagnostic.pointer == "" or diagnostic.pointer.startswith("/"))


@SETTINGS
@given(damaged(VALID_YAML))
def test_damaged_yaml_never_crashes(text):
    _load_and_validate(text, is_json=False)


@SETTINGS
@given(damaged(VALID_JSON))
def test_damaged_json_never_crashes(text):
    _load_and_validate(text, is_json=True)


@SETTINGS
@given(st.text(max_size=200))
@example("=")
def test_arbitrary_text_never_crashes(text):
    _load_and_validate(text, is_json=False)
    _load_and_validate(text, is_json=True)
