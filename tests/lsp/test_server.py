"""`npc lsp` driven over stdio as an editor drives it: open, change, diagnostics with ranges, hover, completion,
code actions, formatting and go-to-generated-code, for YAML, JSON and .npc."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from lsprotocol import types

from helpers import REPO
from npc.lsp._analysis import is_spec_text
from npc.spec import check_file
from npc.spec.convert import convert

pytestmark = pytest.mark.asyncio(loop_scope="module")

EXAMPLES = REPO / "examples"
FORMS = {
    "yaml": EXAMPLES / "resnet18-classification.yaml",
    "json": EXAMPLES / "forms" / "resnet18-classification.json",
    "npc": EXAMPLES / "resnet18-classification.npc",
}


def text_at(text: str, where: types.Range) -> str:
    assert where.start.line == where.end.line, where
    return text.split("\n")[where.start.line][where.start.character : where.end.character]


def cli_words(path: Path) -> list[str]:
    """What `npc validate` prints for ``path`` after ``file:line:col:`` (its text reporter is str(diagnostic))."""
    _, diagnostics, _ = check_file(path)
    return [str(d)[len(d.location()) + 2 :] for d in diagnostics]


def write(tmp_path: Path, name: str, text: str) -> tuple[Path, str]:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path, path.resolve().as_uri()


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_a_valid_spec_gets_no_diagnostics(editor, form):
    assert await editor.open(FORMS[form]) == []


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_an_unknown_component_is_underlined_with_the_cli_words(editor, form, tmp_path):
    path, uri = write(tmp_path, FORMS[form].name, FORMS[form].read_text(encoding="utf-8"))
    assert await editor.open(path) == []
    text = path.read_text(encoding="utf-8")
    broken = text.replace("name: resnet\n", "name: resnt\n").replace('"resnet"', '"resnt"').replace("resnet(", "resnt(")
    diagnostics = await editor.replace(uri, broken)
    path.write_text(broken, encoding="utf-8")
    assert [d.message for d in diagnostics] == cli_words(path)
    (only,) = diagnostics
    assert text_at(broken, only.range) == ('"resnt"' if form == "json" else "resnt")
    assert only.severity == types.DiagnosticSeverity.Error and only.source == "npc"
    assert "did you mean 'resnet'?" in only.message


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_a_half_typed_document_gets_a_syntax_error_and_no_stale_diagnostics(editor, form, tmp_path):
    good = FORMS[form].read_text(encoding="utf-8")
    path, uri = write(tmp_path, FORMS[form].name, good.replace("batch_norm", "batch_nrm"))
    stale = await editor.open(path)
    assert stale and all("batch_nrm" in d.message for d in stale)
    cut = good.index("head")  # typing stopped in the middle of the architecture: brackets left open
    diagnostics = await editor.replace(uri, good[:cut] + "head")
    assert len(diagnostics) == 1 and diagnostics[0].code == "syntax", diagnostics
    assert "batch_nrm" not in diagnostics[0].message
    assert await editor.replace(uri, good) == []


async def test_incremental_edits_keep_the_buffer_in_step(editor, tmp_path):
    path, uri = write(tmp_path, "spec.yaml", FORMS["yaml"].read_text(encoding="utf-8"))
    await editor.open(path)
    line = path.read_text(encoding="utf-8").split("\n").index("        norm_type: batch_norm")
    diagnostics = await editor.edit(uri, (line, 16), (line, 16), "o")  # norm_type -> norm_typoe
    (only,) = diagnostics
    assert only.range.start == types.Position(line, 8) and only.range.end == types.Position(line, 18)
    assert only.message.startswith("/model/architecture/backbone/params/norm_typoe: unknown key")
    assert await editor.edit(uri, (line, 16), (line, 17), "") == []


async def test_graph_checks_that_need_inference_are_reported(editor):
    case = REPO / "tests/specs/negative/neck_levels_do_not_match_head_anchors.yaml"
    diagnostics = await editor.open(case)
    assert [d.message for d in diagnostics] == cli_words(case)
    assert diagnostics[0].code == "compile" and diagnostics[0].range.start.line == 20


def utf8(path: Path) -> bool:
    try:
        path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return False
    return True


# An editor sends text: the cases about undecodable bytes are the CLI's alone.
NEGATIVE = sorted(
    p
    for p in (REPO / "tests/specs/negative").iterdir()
    if p.suffix in (".yaml", ".json") and ".expect" not in p.name and utf8(p)
)


async def test_every_negative_case_gets_what_npc_validate_reports_where_it_reports_it(editor):
    """The corpus of broken specs: same messages, each starting on the line the CLI names; nothing for a document
    that is not a spec."""
    mismatches = []
    for case in NEGATIVE:
        _, expected, _ = check_file(case)
        if not is_spec_text(case.read_text(encoding="utf-8"), str(case)):
            expected = []  # no top-level `model:`, so not a spec to the editor (an empty file, a list, `modle:`)
        got = await editor.open(case, language=case.suffix[1:])
        editor.close(case.resolve().as_uri())
        words = [str(d)[len(d.location()) + 2 :] for d in expected]
        lines = [(d.line or 1) - 1 for d in expected]
        if [d.message for d in got] != words or [d.range.start.line for d in got] != lines:
            mismatches.append(case.name)
    assert not mismatches


async def test_a_document_that_is_not_a_spec_is_left_alone(editor, tmp_path):
    path, _ = write(tmp_path, "docker-compose.yaml", "services:\n  web: {image: nginx\n")
    assert await editor.open(path) == []


# ---- hover ----------------------------------------------------------------------------------------------------


def position_of(text: str, needle: str, offset: int = 0) -> tuple[int, int]:
    index = text.index(needle) + offset
    line = text.count("\n", 0, index)
    return line, index - (text.rfind("\n", 0, index) + 1)


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_hover_on_a_component_shows_what_the_compiler_inferred(editor, form):
    text = FORMS[form].read_text(encoding="utf-8")
    await editor.open(FORMS[form])
    needle = {"yaml": "name: resnet\n", "json": '"name": "resnet"', "npc": "resnet("}[form]
    line, col = position_of(text, needle, needle.index("resnet") + 2)
    hover = await editor.hover(FORMS[form].resolve().as_uri(), line, col)
    assert hover is not None
    shown = hover.contents.value
    assert "backbone `resnet`" in shown and "classification" in shown
    assert "input: 3ch /1" in shown and "512ch /32" in shown  # ResNet-18's last stage
    assert '"block_type": "basicblock"' in shown


async def test_hover_on_a_param_shows_its_description_type_default_and_choices(editor):
    path = FORMS["yaml"]
    text = path.read_text(encoding="utf-8")
    line, col = position_of(text, "block_type", 2)
    shown = (await editor.hover(path.resolve().as_uri(), line, col)).contents.value
    assert "Residual block" in shown and "- type: string" in shown
    assert '- default: `"basicblock"`' in shown and '`"bottleneck"`' in shown


async def test_hover_on_an_expression_shows_its_value(editor):
    path = EXAMPLES / "resnet-scaled-classification.npc"
    await editor.open(path, language="npc")
    text = path.read_text(encoding="utf-8")
    line, col = position_of(text, "channels: =round(channels[1] * width)", 3)
    shown = (await editor.hover(path.resolve().as_uri(), line, col)).contents.value
    assert "`=round(channels[1] * width)` = `64`" in shown


# ---- completion -----------------------------------------------------------------------------------------------


def labels(items: list[types.CompletionItem]) -> list[str]:
    return [item.label for item in items]


COMPLETION = {
    # form: (text with "|" at the cursor, what must be offered, what must not)
    "yaml-name": (
        "model:\n  task: detection\n  architecture:\n    backbone:\n      name: |\n",
        ["resnet", "cspdarknet"],
        ["fc"],
    ),
    "yaml-params": (
        "model:\n  task: classification\n  architecture:\n    backbone:\n      name: resnet\n      params:\n"
        "        block_type: basicblock\n        |\n",
        ["norm_type", "return_stage_idx"],
        ["block_type"],
    ),
    "yaml-enum": (
        "model:\n  architecture:\n    backbone:\n      name: resnet\n      params:\n        block_type: |\n",
        ["basicblock", "bottleneck"],
        [],
    ),
    "yaml-loss": (
        "model:\n  task: segmentation\n  losses:\n    - criterion: |\n",
        ["seg_cross_entropy"],
        ["yolox_loss"],
    ),
    "yaml-stage": (
        "model:\n  architecture:\n    backbone:\n      name: resnet\n"
        "      stage_params:\n        - {channels: 64, |}\n",
        ["num_blocks", "replace_stride_with_dilation"],
        ["channels"],
    ),
    "json-name": (
        '{"model": {"task": "classification", "architecture": {"head": {"name": |}}}}',
        ["fc"],
        ["anchor_free_decoupled_head"],
    ),
    "json-params": (
        '{"model": {"architecture": {"backbone": {"name": "resnet", "params": {"block_type": "basicblock", |}}}}}',
        ["norm_type"],
        ["block_type"],
    ),
    "npc-name": ("model m : classification {\n  backbone res|\n}\n", ["resnet", "mobilenetv3"], ["fc"]),
    "npc-params": (
        'model m : classification {\n  backbone resnet(block_type: "basicblock", |)\n}\n',
        ["norm_type"],
        ["block_type"],
    ),
    "npc-loss": ("model m : detection {\n  loss |\n}\n", ["yolox_loss"], ["cross_entropy"]),
    "npc-statements": ("model m : classification {\n  |\n}\n", ["backbone", "head", "loss", "checkpoint"], ["task"]),
    "npc-stage": ("model m : classification {\n  backbone resnet() {\n    |\n  }\n}\n", ["stage"], ["backbone"]),
    "npc-after-expression": (
        "model m : classification {\n  backbone resnet() {\n    stage(channels: =round(64 * 0.5), |)\n  }\n}\n",
        ["num_blocks"],
        ["channels", "block_type"],
    ),
    "yaml-model-keys": ("model:\n  task: classification\n  |\n", ["architecture", "checkpoint", "losses"], ["task"]),
}


@pytest.mark.parametrize("case", sorted(COMPLETION))
async def test_completion(editor, case, tmp_path):
    marked, offered, not_offered = COMPLETION[case]
    text = marked.replace("|", "")
    suffix = {"yaml": ".yaml", "json": ".json", "npc": ".npc"}[case.split("-")[0]]
    path, uri = write(tmp_path, "spec" + suffix, text)
    await editor.open(path)
    line, col = position_of(marked, "|")
    got = labels(await editor.complete(uri, line, col))
    assert set(offered) <= set(got), got
    assert not set(not_offered) & set(got), got


async def test_a_value_typed_right_after_the_colon_gets_its_space(editor, tmp_path):
    marked = "model:\n  task: classification\n  architecture:\n    head:\n      name:|\n"
    path, uri = write(tmp_path, "spec.yaml", marked.replace("|", ""))
    await editor.open(path)
    items = {item.label: item for item in await editor.complete(uri, *position_of(marked, "|"))}
    assert items["fc"].insert_text == " fc"


async def test_completed_params_carry_their_defaults_as_snippets(editor, tmp_path):
    marked, _, _ = COMPLETION["yaml-params"]
    path, uri = write(tmp_path, "spec.yaml", marked.replace("|", ""))
    await editor.open(path)
    items = {item.label: item for item in await editor.complete(uri, *position_of(marked, "|"))}
    assert items["norm_type"].insert_text == "norm_type: ${1:batch_norm}"
    assert items["norm_type"].insert_text_format == types.InsertTextFormat.Snippet


# ---- code actions and formatting ------------------------------------------------------------------------------


def apply(text: str, edits: list[types.TextEdit]) -> str:
    lines = text.split("\n")
    offsets = [sum(len(line) + 1 for line in lines[:n]) for n in range(len(lines) + 1)]
    for edit in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        start = offsets[edit.range.start.line] + edit.range.start.character
        end = offsets[min(edit.range.end.line, len(lines))] + edit.range.end.character
        text = text[:start] + edit.new_text + text[end:]
    return text


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_a_did_you_mean_is_one_quick_fix_away(editor, form, tmp_path):
    broken = FORMS[form].read_text(encoding="utf-8").replace("norm_type", "norm_tpye")
    path, uri = write(tmp_path, FORMS[form].name, broken)
    (diagnostic,) = await editor.open(path)
    actions = await editor.actions(uri, (diagnostic.range.start.line, diagnostic.range.start.character + 1), (0, 0))
    actions = await editor.actions(uri, (diagnostic.range.start.line, 0), (diagnostic.range.end.line, 80))
    (fix,) = [a for a in actions if a.kind == types.CodeActionKind.QuickFix]
    assert fix.diagnostics[0].message == diagnostic.message
    fixed = apply(broken, fix.edit.changes[uri])
    assert fixed == FORMS[form].read_text(encoding="utf-8")
    assert await editor.replace(uri, fixed) == []


OLD = """model:
  task: classification
  name: old
  checkpoint: weights/resnet18.pth
  load_checkpoint_head: false
  architecture:
    backbone:
      name: resnet
      params:
        block_type: basicblock
        norm_layer: batch_norm   # the older name
      stage_params:
        - {channels: 64, num_blocks: 2}
    head:
      name: fc
  losses:
    - criterion: cross_entropy
"""


async def test_migrate_this_file_rewrites_what_npc_migrate_would(editor, tmp_path):
    from npc.spec._migrate import migrate_text

    path, uri = write(tmp_path, "old.yaml", OLD)
    diagnostics = await editor.open(path)
    assert any("npc migrate FILE" in d.message for d in diagnostics)
    actions = await editor.actions(uri, (0, 0), (0, 0))
    (migrate,) = [a for a in actions if a.kind == types.CodeActionKind.Source]
    assert migrate.title.startswith("Migrate this file (npc migrate)")
    migrated = apply(OLD, migrate.edit.changes[uri])
    assert migrated == migrate_text(OLD, str(path))[0]
    assert "norm_type: batch_norm" in migrated and "# the older name" in migrated
    assert path.read_text(encoding="utf-8") == OLD  # the server wrote nothing


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_formatting_is_npc_fmt(editor, form, tmp_path):
    canonical = FORMS[form].read_text(encoding="utf-8")
    messy = {
        "yaml": canonical.replace("    backbone:\n", "    backbone:   \n").replace("  task:", "  task:  "),
        "json": canonical.replace('{"model": {', '{"model":{'.replace("{", "{ ")).replace("  ", "    ", 3),
        "npc": canonical.replace(
            "  head fc(num_layers: 1, dropout_prob: 0.0)", "  head fc( num_layers:1,dropout_prob:0.0 )"
        ),
    }[form]
    assert messy != canonical
    path, uri = write(tmp_path, FORMS[form].name, messy)
    await editor.open(path)
    edits = await editor.format(uri)
    assert apply(messy, edits) == convert(messy, str(path), form) == canonical
    assert path.read_text(encoding="utf-8") == messy
    await editor.replace(uri, canonical)
    assert not await editor.format(uri)


# ---- go to generated code --------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", sorted(FORMS))
async def test_definition_jumps_from_a_component_to_its_class_in_the_compiled_module(editor, form, tmp_path):
    from npc.cli import main

    spec = tmp_path / FORMS[form].name
    shutil.copy(FORMS[form], spec)
    assert main(["compile", str(spec), "--provenance", str(tmp_path / "map.json")]) == 0
    module = spec.with_suffix(".py")
    await editor.open(spec)
    text = spec.read_text(encoding="utf-8")
    stage = {"yaml": "channels: 256", "json": '"channels": 256', "npc": "channels: 256"}[form]
    location = await editor.definition(spec.resolve().as_uri(), *position_of(text, stage, 2))
    assert location.uri == module.resolve().as_uri()
    assert module.read_text(encoding="utf-8").split("\n")[location.range.start.line].startswith("class ResNet(")
    head = {"yaml": "name: fc", "json": '"name": "fc"', "npc": "fc("}[form]
    location = await editor.definition(spec.resolve().as_uri(), *position_of(text, head, len(head) - 2))
    assert module.read_text(encoding="utf-8").split("\n")[location.range.start.line].startswith("class FC(")


async def test_definition_without_a_compiled_module_is_empty(editor, tmp_path):
    spec = tmp_path / "fresh.yaml"
    shutil.copy(FORMS["yaml"], spec)
    await editor.open(spec)
    text = spec.read_text(encoding="utf-8")
    assert await editor.definition(spec.resolve().as_uri(), *position_of(text, "name: fc", 7)) is None


INFERRED = """\
model:
  task: classification
  name: inferred_demo
  architecture:
    backbone:
      name: resnet
      params: {block_type: basicblock, norm_type: batch_norm}
      stage_params:
        - {channels: 16, num_blocks: 1}
        - {channels: 32, num_blocks: 1}
    head:
      name: fc
      params: {num_layers: 2, act_type: relu, intermediate_channels: "=backbone.channels[-1] // 2"}
"""


async def test_hover_on_an_expression_that_reads_inferred_values_shows_what_it_resolved_to(editor, tmp_path):
    path, uri = write(tmp_path, "inferred.yaml", INFERRED)
    assert await editor.open(path) == []
    shown = (await editor.hover(uri, *position_of(INFERRED, "intermediate_channels", 3))).contents.value
    assert "**`intermediate_channels`**" in shown
    assert "`=backbone.channels[-1] // 2` = `16` (from what the compiler inferred)" in shown


VARS = """\
vars:
  width: 0.5
  first: "=round(64 * width)"
  last: "=backbone.channels[-1]"
  broken: "=widht * 2"
model:
  task: classification
"""


@pytest.mark.parametrize(
    ("var", "shown"),
    [
        ("first", "`=round(64 * width)` = `32`"),
        ("last", "reads values the compiler infers"),
        ("broken", "unknown variable 'widht'"),
    ],
)
async def test_hover_on_a_var_shows_its_value(editor, tmp_path, var, shown):
    path, uri = write(tmp_path, "vars.yaml", VARS)
    await editor.open(path)  # the spec itself is incomplete: a var's value needs only the vars
    hovered = await editor.hover(uri, *position_of(VARS, f"  {var}:", 3))
    assert shown in hovered.contents.value
