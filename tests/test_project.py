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
    assert ci == [test]


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
