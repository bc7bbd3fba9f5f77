"""Built-in component families, one module per family; importing a module registers what it defines.

Every module in this package is imported (in sorted order, so registration is deterministic), as timm's
``models/__init__.py`` imports each family: adding a file is all it takes to add a family.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
