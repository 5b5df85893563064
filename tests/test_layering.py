"""The package's layering, read from the source with ``ast`` (nothing is imported).

Each floor imports only its own floor and the floors below it:

    floor 3   experiment.py, compare*.py, flops.py, report.py, launcher.py   callers that attach method callbacks
    floor 2   train.py, models.py, data.py, preprocess.py, evaluation.py, memory.py, isolation.py, widgets (progress), run records
    floor 1   env.py, metrics.py, plot.py, methods/*, shared small helpers (errors, version, batching, strategy)

and the package face ``ftlab/__init__.py`` sits on top: nothing inside the package imports names from it.
A method (a module or a package under ``ftlab/methods/``) knows torch/PEFT and floor 1 only; methods
share helpers through ``methods/blocks.py`` and ``methods/pooling.py``, never through each other.

Every import counts, also the ones inside functions: a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ftlab"

FLOOR_1 = {"ftlab.errors", "ftlab.version", "ftlab.env", "ftlab.metrics", "ftlab.plot", "ftlab.batching",
           "ftlab.strategy", "ftlab.methods"}  # ftlab.methods: every method module and package below it
FLOOR_2 = {"ftlab.train", "ftlab.models", "ftlab.data", "ftlab.preprocess", "ftlab.evaluation", "ftlab.progress",
           "ftlab.history", "ftlab.results", "ftlab.run_folder", "ftlab.evaluate_modules", "ftlab.memory",
           "ftlab.isolation"}
FLOOR_3 = {"ftlab.experiment", "ftlab.compare", "ftlab.compare_methods", "ftlab.flops", "ftlab.report",
           "ftlab.launcher"}
FACE = "ftlab"
TOP = {FACE, "ftlab.__main__"}  # the package face and the command line: above every floor

# What a method may import from ftlab besides its own module/package.
METHOD_SHARED = {"ftlab.methods.blocks", "ftlab.methods.pooling"}
METHOD_FORBIDDEN = ("ftlab.train", "ftlab.plot", "ftlab.evaluation", "ftlab.experiment", "ftlab.compare",
                    "ftlab.compare_methods", "ftlab.flops")

# Known violations, each with its one-line fix; remove an entry once fixed (none left).
PENDING: dict = {}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_module(name: str) -> bool:
    """A module or package of ftlab (also a folder without __init__, like evaluate_modules/*)."""
    if name in MODULES:
        return True
    rel = Path(*name.split("."))
    return (PACKAGE.parent / rel).is_dir() and name.startswith("ftlab.")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def imports(module: str) -> list[tuple[int, str]]:
    """(line, target) for every ftlab import in ``module``; ``from X import y`` targets ``X.y`` when that is a
    module, else ``X`` itself (``from ftlab import train`` is the module ftlab.train, ``from ftlab import
    setup`` is the package face)."""
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if _under(a.name, FACE)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            if not _under(source, FACE):
                continue
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                found.append((node.lineno, sub if _is_module(sub) else source))
    return found


def _floor(module: str) -> int | None:
    if module in TOP:
        return 4
    for floor, members in ((1, FLOOR_1), (2, FLOOR_2), (3, FLOOR_3)):
        if any(_under(module, m) for m in members):
            return floor
    return None


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"


def _method(module: str) -> str | None:
    """The method a module belongs to: ftlab.methods.freeze.report -> ftlab.methods.freeze."""
    parts = module.split(".")
    return ".".join(parts[:3]) if len(parts) >= 3 and parts[:2] == ["ftlab", "methods"] else None


METHOD_MODULES = [m for m in MODULES if _method(m)]


def test_every_module_is_on_a_floor():
    unplaced = [m for m in MODULES if _floor(m) is None]
    assert not unplaced, f"place these modules on a floor in tests/test_layering.py: {unplaced}"


def test_the_parser_sees_imports():  # guards the test itself against passing on a parser that finds nothing
    assert any(t == "ftlab.env" for _, t in imports("ftlab.train"))
    assert any(t == "ftlab.train" for _, t in imports("ftlab.experiment"))
    assert any(t == "ftlab.data" for _, t in imports("ftlab"))


@pytest.mark.parametrize("module", METHOD_MODULES)
def test_methods_import_no_trainer_plot_evaluation_or_face(module):
    bad = [f"{_where(module, line)} imports {t}" for line, t in imports(module)
           if t in (FACE, "ftlab.methods") or any(_under(t, f) for f in METHOD_FORBIDDEN)]
    assert not bad, ("a method knows torch/PEFT and floor-1 helpers only (move what it needs down to a floor-1 "
                     "module): " + "; ".join(bad))


@pytest.mark.parametrize("module", METHOD_MODULES)
def test_methods_do_not_import_each_other(module):
    own = _method(module)
    bad = [f"{_where(module, line)} imports {t}" for line, t in imports(module)
           if _method(t) and _method(t) != own and not any(_under(t, s) for s in METHOD_SHARED)]
    assert not bad, ("one method does not borrow from another; put a shared helper in methods/blocks.py, "
                     "methods/pooling.py or a floor-1 module: " + "; ".join(bad))


def test_train_imports_no_method():
    bad = [f"{_where('ftlab.train', line)} imports {t}" for line, t in imports("ftlab.train")
           if _under(t, "ftlab.methods")]
    assert not bad, "train.py must not know the methods; callers (experiment.py) attach them: " + "; ".join(bad)


def test_plot_imports_no_model_code():
    bad = [f"{_where('ftlab.plot', line)} imports {t}" for line, t in imports("ftlab.plot")
           if any(_under(t, m) for m in ("ftlab.train", "ftlab.models", "ftlab.methods", "ftlab.experiment",
                                         "ftlab.evaluation"))]
    assert not bad, "plot.py draws histories and tables only: " + "; ".join(bad)


@pytest.mark.parametrize("module", [m for m in MODULES if m not in TOP])
def test_each_floor_imports_only_its_floor_and_below(module):
    mine = _floor(module)
    bad = []
    for line, target in imports(module):
        theirs = _floor(target)
        if (module, target) in PENDING:
            continue
        if target == FACE:
            bad.append(f"{_where(module, line)} imports the package face `ftlab` (import the submodule instead)")
        elif mine is not None and theirs is not None and theirs > mine:
            bad.append(f"{_where(module, line)} (floor {mine}) imports {target} (floor {theirs})")
    assert not bad, "; ".join(bad)
