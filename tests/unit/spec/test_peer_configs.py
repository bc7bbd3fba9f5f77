"""NetsPresso Trainer's own 48 model configs, unchanged, are accepted and compile to exactly the shipped zoo's models.

An extra check: the peer's files are not part of npc. They are read from ../shared/peer beside the repository
(CI has it); where that folder is missing these tests are skipped with the reason, and nothing else needs it.
The zoo's own parity (parameters, keys, shapes) is tested on any clone by test_peer_parity.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import REPO, ZOO_SPECS, compile_file
from npc.spec import check_file, format_text
from npc.spec._migrate import migrate_text

PEER_MODEL_CONFIGS = REPO.parent / "shared" / "peer" / "configs" / "model"
CONFIGS = sorted(PEER_MODEL_CONFIGS.rglob("*.yaml"))
NUMBER_OF_PEER_CONFIGS = 48
ABSENT = f"the peer's configs are not beside the repository ({PEER_MODEL_CONFIGS} is missing)"

PARAMS = (
    [pytest.param(path, id=path.stem) for path in CONFIGS]
    if PEER_MODEL_CONFIGS.is_dir()
    else [pytest.param(None, id="peer-configs", marks=pytest.mark.skip(reason=ABSENT))]
)


def _body(source: str) -> str:
    """The emitted source without its header (npc version, spec file name, spec sha256)."""
    return source.split('"""', 1)[1]


@pytest.mark.parametrize("config", PARAMS)
def test_peer_config_validates_and_compiles_to_the_zoo_model(config: Path):
    source, diagnostics, problem = check_file(config)
    assert diagnostics == [], format_text(diagnostics)
    assert problem is None
    zoo_spec = REPO / "zoo" / config.name
    assert zoo_spec.is_file(), f"the zoo has no spec called {config.stem}"
    assert _body(compile_file(config)) == _body(compile_file(zoo_spec))


@pytest.mark.parametrize("config", PARAMS)
def test_current_peer_config_is_left_alone_by_migrate(config: Path):
    text = config.read_text()
    assert migrate_text(text, str(config)) == (text, [])


@pytest.mark.skipif(not PEER_MODEL_CONFIGS.is_dir(), reason=ABSENT)
def test_the_zoo_holds_exactly_the_peer_configs():
    assert len(CONFIGS) == NUMBER_OF_PEER_CONFIGS
    assert sorted(path.stem for path in CONFIGS) == [path.stem for path in ZOO_SPECS]
