"""npc: compile NetsPresso-Trainer-style model specs into standalone, readable PyTorch source.

Pipeline: ``npc.spec`` (load → validate → normalise) → ``npc.compiler`` (graph → passes → emit) → generated
``model.py`` → ``npc.runtime`` (train, evaluate, predict, export). ``npc.schemas`` holds the JSON Schema.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
