"""The analysis behind the server, in process: what counts as a spec, and a broken plugin named like the CLI."""

from __future__ import annotations

import pytest

from npc.compiler._plugins import PluginError
from npc.lsp import _analysis, analyse


@pytest.mark.parametrize(
    ("path", "text", "is_spec"),
    [
        ("a.yaml", "model:\n  task: x\n", True),
        ("a.yml", "# comment\n'model': {\n", True),  # does not parse yet, still a spec
        ("a.yaml", "services:\n  model: x\n", False),  # `model` not at the top level
        ("a.json", '{"model": {', True),
        ("a.json", '{"compilerOptions": {}}', False),
        ("a.npc", "", True),  # every .npc file is one
    ],
)
def test_what_counts_as_a_spec(path, text, is_spec):
    assert analyse(text, path).is_spec is is_spec


def test_a_broken_plugin_is_one_diagnostic_in_the_cli_words(monkeypatch):
    def broken(text, path):
        raise PluginError("npc-example-plugin", "cannot import it")

    monkeypatch.setattr(_analysis, "check_text", broken)
    (diagnostic,) = analyse("model:\n  task: classification\n", "spec.yaml").diagnostics
    assert diagnostic.message == "npc: plugin 'npc-example-plugin': cannot import it"  # as `npc validate` prints
    assert (diagnostic.line, diagnostic.col, diagnostic.code) == (1, 1, "plugin")


def test_a_document_over_the_size_limit_is_refused_unread():
    from npc.spec._load import MAX_SPEC_BYTES

    analysis = analyse("model:\n" + "#" * MAX_SPEC_BYTES, "huge.yaml")
    (diagnostic,) = analysis.diagnostics
    assert diagnostic.message.endswith(f"specs are limited to {MAX_SPEC_BYTES} bytes")
    assert analysis.source is None


def test_a_yaml_file_that_is_not_a_spec_gets_no_completion_or_hover():
    from npc.lsp._completion import completions
    from npc.lsp._hover import hover

    compose = analyse("services:\n  web:\n    image: nginx\n  \n", "docker-compose.yaml")
    assert completions(compose, 3, 2) == [] and hover(compose, 2, 5) is None
