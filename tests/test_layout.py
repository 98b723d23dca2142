"""The package's layout: folders read as the pipeline, data flows one way down them, and the
README's map names every folder.

Floors, bottom to top: the ground (modules at the package's root and `store/`), `collect/`,
`label/`, `analyse/`, `cli/`. A module may import from its own floor and the floors below,
never from one above; imports inside functions count too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "issueminer"
FLOORS = ("ground", "collect", "label", "analyse", "cli")
MAX_MODULE_LINES = 700
# folders that hold no code of the package's own layout (bytecode caches)
IGNORED_FOLDERS = {"__pycache__"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def floor_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in FLOORS else "ground"


def imported_modules(source: str, module: str, is_package: bool) -> list[tuple[int, str]]:
    """Every issueminer module `source` imports, with its line; relative imports resolved."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from issueminer.label import rounds` imports the module issueminer.label.rounds
            found += [(node.lineno, f"{target}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "issueminer"]


def upward_imports(source: str, module: str, is_package: bool = False) -> list[str]:
    own = FLOORS.index(floor_of(module))
    return [
        f"line {line}: {target}"
        for line, target in imported_modules(source, module, is_package)
        if FLOORS.index(floor_of(target)) > own
    ]


def python_files() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py") if not IGNORED_FOLDERS & set(p.relative_to(ROOT).parts)
    )


def test_floors_are_found():
    floors = {floor_of(module_name(p)) for p in python_files()}
    assert floors == set(FLOORS)
    assert floor_of("issueminer.taxonomy") == "ground"
    assert floor_of("issueminer.store.db") == "ground"
    assert floor_of("issueminer.collect.sources.github") == "collect"
    assert floor_of("issueminer.cli") == "cli"


def test_no_module_imports_from_a_higher_floor():
    upward = {
        str(path.relative_to(ROOT)): found
        for path in python_files()
        if (found := upward_imports(path.read_text(), module_name(path), path.stem == "__init__"))
    }
    assert upward == {}


def test_the_floor_check_sees_upward_imports():
    source = "from issueminer.analyse import stats\n\ndef f():\n    from . import main\n"
    assert upward_imports(source, "issueminer.findings") == [
        "line 1: issueminer.analyse",
        "line 1: issueminer.analyse.stats",
    ]
    assert upward_imports(source, "issueminer.collect.ingest") == [
        "line 1: issueminer.analyse",
        "line 1: issueminer.analyse.stats",
    ]
    assert upward_imports("from ..cli import main\n", "issueminer.label.rounds") == [
        "line 1: issueminer.cli",
        "line 1: issueminer.cli.main",
    ]
    assert upward_imports(source, "issueminer.cli.stats") == []


def test_no_module_is_over_the_size_limit():
    long = {
        str(p.relative_to(ROOT)): n
        for p in python_files()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


# endings that make another word of the same root: labels/labeling, report/reporting
INFLECTIONS = ("ings", "ing", "ers", "er", "es", "ed", "s")


def _root(name: str) -> str:
    for ending in INFLECTIONS:
        if name.endswith(ending) and len(name) - len(ending) >= 3:
            return name[: -len(ending)]
    return name


def _suffix_only(a: str, b: str) -> bool:
    """Two names of one root that differ only by an ending, so neither says which is which."""
    short, long = sorted((a, b), key=len)
    bare_suffix = long.startswith(short) and "_" not in long[len(short) :]
    return a != b and (bare_suffix or _root(a) == _root(b))


def test_no_two_names_differ_only_by_a_suffix():
    names = {p.stem for p in python_files() if p.stem != "__init__"}
    names |= {p.parent.name for p in python_files() if p.name == "__init__.py"}
    clashes = sorted((a, b) for a in names for b in names if a < b and _suffix_only(a, b))
    assert clashes == []
    assert _suffix_only("labels", "labeling") and _suffix_only("report", "reporting")
    assert _suffix_only("model", "models") and _suffix_only("crawl", "crawler")
    assert not _suffix_only("taxonomy", "taxonomy_merge") and not _suffix_only("stats", "study")


def _map_in_readme() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Where things live\n(.*?)(?=^## )", text, re.M | re.S)
    assert section, "README.md has no '## Where things live' section"
    return set(re.findall(r"^\| `(issueminer/[^`]*)` \|", section.group(1), re.M))


def test_the_readme_maps_every_folder():
    folders = {
        f"{p.relative_to(ROOT).as_posix()}/"
        for p in [PACKAGE, *PACKAGE.rglob("*")]
        if p.is_dir() and not IGNORED_FOLDERS & set(p.relative_to(ROOT).parts)
    }
    mapped = _map_in_readme()
    assert sorted(folders - mapped) == [], "folders missing from README's 'Where things live'"
    assert sorted(mapped - folders) == [], "README's map names folders that do not exist"


@pytest.mark.parametrize("floor", FLOORS[1:])
def test_every_floor_says_what_it_may_use(floor):
    init = PACKAGE / floor / "__init__.py"
    assert ast.get_docstring(ast.parse(init.read_text())), f"{init} has no docstring"
