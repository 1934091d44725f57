"""The project's promises to a newcomer: two set-up commands, CI runs the test one, pins agree."""

from __future__ import annotations

import re

import yaml
from conftest import REPO


def readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)?\n(.+?)\n```", setup, flags=re.S)


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = readme_commands()
    assert len(commands) == 2, commands
    run, test = commands
    assert run.startswith("./install.sh && ") and "snakemake --cores all" in run
    assert test.startswith("./install.sh && ") and "pytest" in test
    ci = [ln for ln in (REPO / ".ci/run").read_text().splitlines() if ln and not ln.startswith(("#", "set ", "cd "))]
    # the lint and format checks first (after the install they need), the README's test command last
    assert ci[-1] == test
    assert ci[:-1] == [
        "./install.sh",
        ".venv/bin/ruff check .",
        ".venv/bin/ruff format --check .",
        ".venv/bin/snakefmt --check --line-length 120 Snakefile rules",
    ]


def pins(lines) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#")[0].strip()
        m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(==|>=|<)(.*)$", line)
        if m:
            out[m.group(1).lower().replace("_", "-")] = m.group(2) + m.group(3)
    return out


def test_conda_env_has_the_same_pins_as_requirements():
    env = yaml.safe_load((REPO / "envs/hne.yaml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pins(pip_section) == pins((REPO / "requirements.txt").read_text().splitlines())


def tracked_text_files() -> dict[str, str]:
    import subprocess

    names = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    out = {}
    for name in names:
        path = REPO / name
        if not path.is_file():  # deleted in the working tree, not yet committed
            continue
        try:
            out[name] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
    return out


# What a file of the project must not point a reader to: notes and folders that lie outside the repository.
OUTSIDE = re.compile(r"FINDINGS(\.md)?\b|/work/|\.\./shared|shared/reference|\.library/")


def test_nothing_cites_a_file_outside_the_repository():
    this = "tests/test_project.py"
    hits = [
        f"{name}:{n}: {line.strip()}"
        for name, text in tracked_text_files().items()
        if name != this
        for n, line in enumerate(text.splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert not hits, "cite docs/ instead:\n" + "\n".join(hits)


def test_design_notes_sections_cited_exist():
    notes = (REPO / "docs" / "design-notes.md").read_text()
    sections = set(re.findall(r"^## (\d+)\. ", notes, flags=re.M))
    cited = {
        (name, sec)
        for name, text in tracked_text_files().items()
        for sec in re.findall(r"docs/design-notes\.md §(\d+)", text)
    }
    assert cited, "the code cites the design notes"
    missing = sorted(f"{name}: §{sec}" for name, sec in cited if sec not in sections)
    assert not missing, missing


def test_package_declares_every_library_it_imports():
    """`pip install .` must give a working hne_core: every third-party import of the package is a dependency."""
    import ast
    import importlib.metadata as metadata
    import re
    import tomllib

    declared = {
        re.split(r"[<>=!\[ ]", d)[0].lower().replace("_", "-")
        for d in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    }
    dists = metadata.packages_distributions()
    imported = set()
    for path in (REPO / "hne_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = {name for name in imported if name in dists and name != "hne_core"}
    missing = {
        name: dists[name] for name in third_party if not {d.lower().replace("_", "-") for d in dists[name]} & declared
    }
    assert not missing, f"imported by hne_core but not in pyproject.toml's dependencies: {missing}"
    assert {"art", "seaborn", "matplotlib", "espnet_model_zoo", "datacollective"} <= third_party


def test_no_tracked_file_names_the_issue_tracker():
    """Users of the workflow do not have the project's issue tracker: no tracked text file refers to an issue by
    its number (the word issue followed by a number, with or without '#')."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"\bissues?\s*#?\d+", re.IGNORECASE)
    found = []
    for name in files:
        path = REPO / name
        if path.suffix in {".png", ".pdf", ".gz", ".zip", ".npz", ".pth", ".wav", ".mp3"} or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert not found, found


# hne_core's layers, lowest first: a module imports only from its own layer or lower ones, so that a reader (and a
# new feature) can take the library from the bottom up. Modules directly under hne_core/ (naming, atomic, heads,
# batching, decoding ...) are layer 0, except the tokenizer, which reads what the data stage wrote.
LAYERS = {"data": 1, "tokenizer": 2, "model": 3, "attack": 4, "results": 5, "robustness": 6, "bench": 7}


def hne_core_imports() -> dict[str, set[str]]:
    """Every hne_core module's hne_core imports, those inside functions included (a lazy import is still a
    dependency: it only moves the failure to run time)."""
    import ast

    modules = {}
    for path in (REPO / "hne_core").rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("hne_core"):
                sub = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
                found |= sub or ({node.module} & modules.keys())
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names} & modules.keys()
        graph[name] = found - {name}
    return graph


def layer(module: str) -> int:
    return LAYERS.get(module.split(".")[1], 0) if module.count(".") else 0


def test_hne_core_has_no_import_circle_and_imports_only_downward():
    graph = hne_core_imports()
    assert {"hne_core.decoding", "hne_core.attack.pgd", "hne_core.data.sources.synthetic"} <= graph.keys()
    upward = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts if layer(t) > layer(m))
    assert not upward, upward
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            assert state.get(t) != 1, " -> ".join([*path[path.index(t) :], t])
            if t not in state:
                visit(t, [*path, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
