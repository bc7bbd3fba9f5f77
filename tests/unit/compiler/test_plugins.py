"""Plugins without forking: examples/plugin installs beside npc, and npc validates, lists and compiles its family;
a broken plugin gets an error naming its package. Each case runs npc in a subprocess with the plugin on its path."""

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from helpers import REPO, import_source

PLUGIN = REPO / "examples" / "plugin"
SPEC = """\
model:
  task: {task}
  name: tiny_plugin_model
  architecture:
    backbone:
      name: tinyconv
      params: {{act_type: silu}}
      stage_params: [{{channels: 8}}, {{channels: 16}}]
    head:
      name: {head}
  losses:
    - criterion: {loss}
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example plugin installed (dist-info + entry points) into a fresh folder, as pip installs it."""
    target = tmp_path_factory.mktemp("site")
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(PLUGIN)]
    if importlib.util.find_spec("setuptools"):  # build with the venv's setuptools: no download, seconds faster
        command.append("--no-build-isolation")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return target


def npc(site, *args, cwd=None):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "npc", *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd
    )


def test_the_plugin_family_is_listed_validated_and_in_the_schema(site, tmp_path):
    listing = npc(site, "list", "--kind", "backbone")
    assert listing.returncode == 0, listing.stderr
    (row,) = [line for line in listing.stdout.splitlines() if line.startswith("backbone  tinyconv")]
    assert row.split()[-1] == "npc-example-plugin" and " yes " in row
    assert '"tinyconv"' in npc(site, "schema").stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(SPEC.format(task="classification", head="fc", loss="cross_entropy").replace("silu", "sigmoidd"))
    result = npc(site, "validate", bad)
    assert result.returncode == 1 and "/model/architecture/backbone/params/act_type" in result.stderr


@pytest.mark.parametrize(("task", "head", "loss"), [("classification", "fc", "cross_entropy")])
def test_a_spec_using_the_plugin_compiles_and_runs(site, tmp_path, task, head, loss):
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(task=task, head=head, loss=loss))
    out = tmp_path / "model.py"
    result = npc(site, "compile", spec, "-o", out)
    assert result.returncode == 0, result.stderr
    source = out.read_text()
    assert "class TinyConv(nn.Module)" in source and "import npc" not in source  # standalone, as always
    torch = pytest.importorskip("torch")
    model = import_source(source, "plugin_model", tmp_path).build_model(num_classes=3).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 3, 32, 32))["pred"].shape == (2, 3)


def _broken_plugin(tmp_path, body: str, name: str = "npc-broken-plugin"):
    """A one-module plugin in its own site folder, with the dist-info (METADATA, entry_points.txt) pip writes."""
    site = tmp_path / "site"
    (site / "npc_broken").mkdir(parents=True)
    (site / "npc_broken" / "__init__.py").write_text(textwrap.dedent(body))
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[npc.components]\nbroken = npc_broken\n")
    return site


COLLIDES = """
from npc.compiler._registry import Component, register

@register
class Mine(Component):
    '''My resnet.'''
    kind = "backbone"
    name = "resnet"
"""
NO_DESCRIPTION = """
from npc.compiler._registry import Component, register

@register
class Mine(Component):
    '''A backbone whose param has no description.'''
    kind = "backbone"
    name = "mine"
    params = {"width": {"type": "integer", "default": 8}}
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (COLLIDES, "backbone 'resnet' is registered twice: by npc"),
        (NO_DESCRIPTION, "backbone 'mine': param 'width' has no JSON Schema description"),
        ("raise RuntimeError('boom')\n", "cannot import npc_broken: RuntimeError: boom"),
    ],
    ids=["name-collision", "missing-piece", "import-error"],
)
def test_a_broken_plugin_is_named_not_a_traceback(tmp_path, body, message):
    site = _broken_plugin(tmp_path, body)
    result = npc(site, "list")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "plugin 'npc-broken-plugin'" in result.stderr and message in result.stderr


def test_the_example_plugin_uses_only_the_public_plugin_api():
    """Plugin authors import `npc.plugin`; npc's underscore modules may change under them."""
    import ast

    import npc.plugin

    source = (PLUGIN / "src" / "npc_example_plugin" / "__init__.py").read_text()
    modules = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    npc_modules = {module for module in modules if module and module.split(".")[0] == "npc"}
    assert npc_modules == {"npc.plugin"}
    assert all(hasattr(npc.plugin, name) for name in npc.plugin.__all__)
