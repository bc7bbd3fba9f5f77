"""Every combination of each family template's boolean switches emits a module that parses and passes ruff.

A template with n switches (``vars.<name>``, set by its component's ``Built.template_vars``) has 2**n variants,
and the zoo and examples build only a few of them: rtdetr_head's four switches give 16 and the specs build one.
Here the whole module of a real zoo/example build is emitted again with every combination of a template's switches
(the build closest to the combination lends the constructor arguments), so a branch no spec reaches yet is still
known to be valid Python that ruff accepts. Torch is never imported: this checks text, not behaviour.
"""

from __future__ import annotations

import ast
import itertools
import re
import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest
from jinja2 import nodes

from helpers import EXAMPLES, ZOO_SPECS
from npc.compiler import compile_graph, registry
from npc.compiler._emit import _environment, emit
from npc.compiler._graph import components
from npc.compiler._render import LINE_LENGTH
from npc.spec import load_spec

RUFF_CONFIG = ["--config", f"line-length = {LINE_LENGTH}"]  # the emitted file's limit, as test_emitted_source


@cache
def _switches(template: str) -> tuple[str, ...]:
    """The ``vars.<name>`` a template reads, its includes' too (an include renders with the includer's vars)."""
    environment = _environment()
    tree = environment.parse(environment.loader.get_source(environment, template)[0])
    read = {
        node.attr
        for node in tree.find_all(nodes.Getattr)
        if isinstance(node.node, nodes.Name) and node.node.name == "vars"
    }
    for include in tree.find_all(nodes.Include):
        read.update(_switches(include.template.value))
    return tuple(sorted(read))


TEMPLATES = sorted({family.template for family in registry.list_components() if family.template})
CASES = [
    (template, dict(zip(_switches(template), values, strict=True)))
    for template in TEMPLATES
    for values in itertools.product((False, True), repeat=len(_switches(template)))
]


def _case_id(template: str, switches: dict[str, bool]) -> str:
    shown = [f"{name}={int(value)}" for name, value in switches.items()]
    return "-".join([template.removesuffix(".py.jinja"), *shown])


def _file_name(template: str, switches: dict[str, bool]) -> str:
    return re.sub(r"\W", "_", _case_id(template, switches)) + ".py"


@cache
def _graphs() -> tuple:
    """Each zoo and example spec's compiled graph, in a fixed order (ties in ``_graph_for`` go to the first)."""
    return tuple(compile_graph(load_spec(path)) for path in [*ZOO_SPECS, *EXAMPLES])


def _graph_for(template: str, switches: dict[str, bool]):
    """The spec graph whose build of ``template`` agrees with most of ``switches`` (the first on a tie): its
    constructor arguments fit the combination best, e.g. resnet's ``block=Bottleneck`` comes with ``bottleneck``."""
    graphs = [graph for graph in _graphs() if any(n.family.template == template for n in components(graph))]
    assert graphs, f"no spec in zoo/ or examples/ builds {template}"

    def agreement(graph) -> int:
        (built,) = [n.built for n in components(graph) if n.family.template == template]
        return sum(built.template_vars.get(name) == value for name, value in switches.items())

    return max(graphs, key=agreement)


def _impossible(template: str, switches: dict[str, bool]) -> str | None:
    """Why no build produces this combination, where the component's own build() says so; None when one can."""
    if switches.get("sequence_reduction") and switches.get("attention_bias"):
        # block_metaformer_attention's two variants: vit, mobilevit, mixtransformer and efficientformer each set
        # both as constants in build(), and at most one of them True.
        return "every family sets sequence_reduction and attention_bias as constants, never both"
    if (
        template == "fpn.py.jinja"
        and not switches["extra_levels"]
        and (switches["extra_pool"] or switches["extra_convs"])
    ):
        # FPN.build: extra_pool and extra_convs are both "extra_levels > 0 and ...".
        return "FPN.build sets extra_pool and extra_convs only with extra_levels"
    return None


def _emit_with(graph, template: str, switches: dict[str, bool]) -> str:
    """The module ``graph`` emits with ``switches`` set on every node of ``template``, the rest as built."""
    chosen = [node for node in components(graph) if node.family.template == template]
    originals = [node.built for node in chosen]
    try:
        for node in chosen:
            node.built = replace(node.built, template_vars={**node.built.template_vars, **switches})
        return emit(graph)
    finally:
        for node, built in zip(chosen, originals, strict=True):
            node.built = built


def _ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def checked(tmp_path_factory) -> dict[str, list[str]]:
    """File name → problems: every case emitted into one folder, then one ``ruff check`` and one ``ruff format``."""
    folder = tmp_path_factory.mktemp("switches")
    problems: dict[str, list[str]] = {}
    for template, switches in CASES:
        if _impossible(template, switches):
            continue
        name = _file_name(template, switches)
        problems[name] = []
        try:
            source = _emit_with(_graph_for(template, switches), template, switches)
            ast.parse(source)
        except Exception as exc:  # a template that fails to render or parse: reported on its own case
            problems[name].append(f"{type(exc).__name__}: {exc}")
            continue
        (folder / name).write_text(source)
    lint = _ruff(
        "check", "--no-cache", "--output-format", "concise", "--select", "E,F,W,I,B,UP", *RUFF_CONFIG, str(folder)
    )
    for line in lint.stdout.splitlines():
        if line.startswith(str(folder)):
            problems[Path(line.split(":", 1)[0]).name].append(line.removeprefix(f"{folder}/"))
    fmt = _ruff("format", "--check", "--no-cache", *RUFF_CONFIG, str(folder))
    for path in re.findall(r"^Would reformat: (.+)$", fmt.stdout, flags=re.MULTILINE):
        diff = _ruff("format", "--diff", "--no-cache", *RUFF_CONFIG, path).stdout
        problems[Path(path).name].append(f"ruff format would change it:\n{diff}")
    assert lint.returncode in (0, 1) and fmt.returncode in (0, 1), lint.stderr + fmt.stderr  # 2: ruff itself failed
    return problems


@pytest.mark.parametrize(("template", "switches"), CASES, ids=[_case_id(*case) for case in CASES])
def test_every_switch_combination_emits_clean_python(checked, template, switches):
    if reason := _impossible(template, switches):
        pytest.skip(reason)
    assert not checked[_file_name(template, switches)], "\n".join(checked[_file_name(template, switches)])


@pytest.mark.parametrize("template", TEMPLATES, ids=[t.removesuffix(".py.jinja") for t in TEMPLATES])
def test_the_switches_read_are_the_ones_the_component_sets(template):
    """The switches varied above are the template's; each must be a boolean its component sets, or a combination
    the component builds would fail (StrictUndefined) or a switch it sets would be dead."""
    (family,) = [family for family in registry.list_components() if family.template == template]
    built = [node.built for graph in _graphs() for node in components(graph) if node.family is family]
    assert built, f"no spec in zoo/ or examples/ builds {family.name}"
    set_by_component = {key for b in built for key, value in b.template_vars.items() if isinstance(value, bool)}
    assert set_by_component == set(_switches(template))
