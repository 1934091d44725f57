"""Partial reruns on a finished smoke run: the exact jobs Snakemake plans (dry run) after the everyday changes.

Each case works on a copy of the shared smoke run (mtimes and .snakemake metadata kept), so the shared run is never
touched. Snakemake 9 reruns a job when its code, inputs (checksums), input mtimes, params or software environment
change; the rules pass each job only the config values it uses, so a change reaches the jobs that depend on it.
"""

from __future__ import annotations

import copy
import shutil

import pandas as pd
import pytest
import yaml
from conftest import DATA_JOBS, SMOKE, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow  # real workflow runs (minutes each)

# The aggregates (the results rules and `all`): one constant, shared by every case below.
ATTACK_AGGREGATES = {
    "results_advtwer": 1,
    "results_table": 1,
    "results_comparison": 1,
    "results_figure1": 1,
    "results_perceptual": 1,
    "listen_page": 1,
    "all": 1,
}
AGGREGATES = {**ATTACK_AGGREGATES, "results_benign": 1, "results_training_curves": 1}
# Everything the smoke config builds (2 models, 3 evaluations, 2 attacked pairs x 2 milestones).
SMOKE_JOBS = {
    **DATA_JOBS,
    "collect_stats": 1,
    "pretrain": 1,
    "evaluate_base": 1,
    "finetune": 2,
    "evaluate": 3,
    "attack_targets": 1,
    "attack": 4,
    **AGGREGATES,
}


@pytest.fixture(scope="module")
def finished(smoke_run, tmp_path_factory):
    """A copy of the finished smoke run (copy2 keeps mtimes; .snakemake keeps the rerun metadata)."""
    dest = tmp_path_factory.mktemp("reruns") / "run"
    shutil.copytree(smoke_run, dest, symlinks=True, copy_function=shutil.copy2)
    return dest


def plan(workdir, tmp_path, overlay: dict | None = None) -> dict[str, int]:
    configs = [str(SMOKE)]
    if overlay is not None:
        path = tmp_path / "overlay.yaml"
        path.write_text(yaml.safe_dump(overlay))
        configs.append(str(path))
    proc = run_snakemake(workdir, "-n", "--cores", "2", "--configfile", *configs)
    return planned_jobs(proc)


def smoke_config() -> dict:
    return yaml.safe_load(SMOKE.read_text())


def test_the_full_smoke_plan_is_what_the_cases_count_from(tmp_path):
    assert plan(tmp_path, tmp_path) == SMOKE_JOBS


def test_nothing_changed_plans_nothing(finished, tmp_path):
    assert plan(finished, tmp_path) == {}


def test_one_lambda_added_plans_its_model_evaluation_attacks_and_the_aggregates(finished, tmp_path):
    smoke = smoke_config()
    grid = smoke["finetune"]["grid"] + [{"lambda_a": 0.9, "lambda_c": 0.0}]
    tables = copy.deepcopy(smoke["tables"])
    tables[0]["columns"].append({"lambda_a": 0.9, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "label": "0.9"})
    planned = plan(finished, tmp_path, {"finetune": {"grid": grid}, "tables": tables})
    # its fine-tuning, its evaluation at λC(i) = λC(t) = 0.0 (also its table column), its 2 milestones
    assert planned == {"finetune": 1, "evaluate": 1, "attack": 2, **AGGREGATES}


def test_one_milestone_appended_plans_that_milestone_and_the_aggregates(finished, tmp_path):
    planned = plan(finished, tmp_path, {"attack": {"steps": [2, 4, 6]}})
    assert planned == {"attack": 2, **ATTACK_AGGREGATES}  # pgd6 of the 2 attacked pairs, chained on pgd4


def test_one_milestone_inserted_plans_its_chain(finished, tmp_path):
    planned = plan(finished, tmp_path, {"attack": {"steps": [2, 3, 4]}})
    assert planned == {"attack": 4, **ATTACK_AGGREGATES}  # pgd3, and pgd4 now chained on pgd3, for 2 pairs


def test_step_size_changed_plans_all_attacks_and_no_training(finished, tmp_path):
    planned = plan(finished, tmp_path, {"attack": {"step_size": 0.04}})
    assert planned == {"attack": 4, **ATTACK_AGGREGATES}


def test_resources_changed_plan_nothing(finished, tmp_path):
    """A longer time limit or a GPU (e.g. for a cluster rerun) is no reason to redo a finished job."""
    planned = plan(
        finished,
        tmp_path,
        {"finetune": {"runtime": 999, "mem_mb": 999, "threads": 2}, "attack": {"runtime": 999, "gpu": 1}},
    )
    assert planned == {}


def test_one_synthetic_sentence_changed_plans_everything_downstream_of_the_data(smoke_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(smoke_run, run, symlinks=True, copy_function=shutil.copy2)
    script_path = run / "results/data/synthetic_script.tsv"
    script = pd.read_csv(script_path, sep="\t", keep_default_na=False, dtype=str)
    row = script.index[script.split == "train"][0]
    script.loc[row, "sentence"] = "the quick brown fox jumps over the lazy dog"
    script.to_csv(script_path, sep="\t", index=False)
    planned = plan(run, tmp_path)
    # the corpus is re-synthesised from the edited script; every job that reads the data follows
    assert planned == {k: v for k, v in SMOKE_JOBS.items() if k != "synthetic_script"}
