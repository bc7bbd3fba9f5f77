"""NetsPresso Trainer's 48 published model configs validate as they are, with no diagnostic at all.

They are read from ../shared/peer (beside the repository, in CI too), never copied into the project.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import PEER
from npc.spec import check_file, format_text

PEER_MODEL_CONFIGS = PEER / "configs" / "model"
CONFIGS = sorted(PEER_MODEL_CONFIGS.rglob("*.yaml"))
NUMBER_OF_PEER_CONFIGS = 48
ABSENT = f"the peer's configs are not beside the repository ({PEER_MODEL_CONFIGS} is missing)"

PARAMS = (
    [pytest.param(path, id=path.stem) for path in CONFIGS]
    if PEER_MODEL_CONFIGS.is_dir()
    else [pytest.param(None, id="peer-configs", marks=pytest.mark.skip(reason=ABSENT))]
)


@pytest.mark.parametrize("config", PARAMS)
def test_peer_config_validates(config: Path):
    source, diagnostics, code = check_file(config)
    assert diagnostics == [], format_text(diagnostics)
    assert code == 0
    assert source.data["model"]["name"]


@pytest.mark.skipif(not PEER_MODEL_CONFIGS.is_dir(), reason=ABSENT)
def test_all_peer_configs_are_found():
    assert len(CONFIGS) == NUMBER_OF_PEER_CONFIGS
    assert len({path.stem for path in CONFIGS}) == NUMBER_OF_PEER_CONFIGS  # stems are unique test ids
