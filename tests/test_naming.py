"""One spelling of names and paths (hne_core.naming), and results that read each cell's setting from its own files."""

from __future__ import annotations

import json

import pytest

from hne_core import naming
from hne_core.results.aggregate import ResultsError, Setting, attack_cells


def test_weights_model_ids_and_settings_have_one_spelling():
    assert [naming.fmt_weight(w) for w in (1, 0.30, "0.7", 0.7000000001)] == ["1.0", "0.3", "0.7", "0.7"]
    assert naming.model_id(0.7, 0.5) == "la0.7_lc0.5"
    assert naming.parse_model_id("la0.7_lc0.5") == (0.7, 0.5, {"accent": 1.0})
    with pytest.raises(ValueError, match="not a model id"):
        naming.parse_model_id("la0.7-lc0.5")
    assert naming.format_setting(1, 0.5, 0) == "1.0/0.5/0.0"
    assert (
        naming.parse_setting("1.0/0.50/0")
        == naming.setting_of({"lambda_a": 1, "lambda_c_train": 0.5, "lambda_c_infer": 0.0})
        == (1.0, 0.5, 0.0, "")
    )
    with pytest.raises(ValueError, match="λA/λC"):
        naming.parse_setting("1.0/0.5")
    s = Setting.parse("0.7/0.3/0.0")
    assert s.short == "0.7/0.3/0.0" and Setting.of({"lambda_a": 0.7, "lambda_c_train": 0.3, "lambda_c_infer": 0}) == s


def test_templates_serve_rules_and_jobs_alike():
    pattern = naming.attack_dir("results", "{model}", "{lci}", "{steps}")
    assert pattern == "results/attacks/{model}/infer{lci}/pgd{steps}"
    assert naming.attack_dir("results", "la1.0_lc0.0", 0, 200) == pattern.format(
        model="la1.0_lc0.0", lci="0.0", steps=200
    )
    assert naming.attack_checkpoint("r", "m", 0.3, 50) == "r/attacks/m/infer0.3/pgd50.checkpoint"
    assert naming.eval_dir("r", "pretrained", 0.0) == "r/eval/pretrained/infer0.0"


def _write(path, payload):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))
    return str(path)


def test_attack_cells_match_by_the_settings_the_summaries_carry(tmp_path):
    def attack(model, la, lc, lci, steps):
        d = tmp_path / naming.attack_dir("results", model, lci, steps)
        (d / "utterances.csv").parent.mkdir(parents=True, exist_ok=True)
        (d / "utterances.csv").write_text("")
        return _write(
            d / "summary.json", {"lambda_a": la, "lambda_c_train": lc, "lambda_c_infer": lci, "steps": steps}
        ), str(d / "utterances.csv")

    def evaluation(model, la, lc, lci):
        return _write(
            tmp_path / naming.eval_dir("results", model, lci) / "summary.json",
            {"lambda_a": la, "lambda_c_train": lc, "lambda_c_infer": lci},
        )

    a1, c1 = attack("la1.0_lc0.0", 1.0, 0.0, 0.0, 50)
    a2, c2 = attack("la0.7_lc0.5", 0.7, 0.5, 0.0, 50)
    e1, e2 = evaluation("la1.0_lc0.0", 1.0, 0.0, 0.0), evaluation("la0.7_lc0.5", 0.7, 0.5, 0.0)
    cells = attack_cells([a1, a2], [c2, c1], [e2, e1])  # lists in different orders: matched by setting
    assert [(c["lambda_a"], c["attack_csv"], c["eval_summary"]) for c in cells] == [(1.0, c1, e1), (0.7, c2, e2)]
    with pytest.raises(ResultsError, match="no evaluation summary of λA=0.7"):
        attack_cells([a1, a2], [c1, c2], [e1])
    with pytest.raises(ResultsError, match="is not an input of this job"):
        attack_cells([a1], [c2], [e1])
    bare = _write(tmp_path / "old" / "summary.json", {"steps": 50})
    with pytest.raises(ResultsError, match=r"lacks \['lambda_a'"):
        attack_cells([bare], [], [e1])


def test_a_summary_naming_other_tasks_is_another_setting_than_one_without(tmp_path):
    """Two models of the same λs, the paper's (its summaries carry no ``tasks``) and one trained on sex alone
    (``tasks``: 'sex1.0'): two settings, and each attack is matched with its own model's evaluation."""

    def job(folder, payload):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "utterances.csv").write_text("")
        return _write(tmp_path / folder / "summary.json", payload), str(tmp_path / folder / "utterances.csv")

    weights = {"lambda_a": 0.7, "lambda_c_train": 0.0, "lambda_c_infer": 0.0}
    plain, plain_csv = job("attacks/plain", {**weights, "steps": 50})
    sex, sex_csv = job("attacks/sex", {**weights, "tasks": "sex1.0", "steps": 50})
    plain_eval, _ = job("eval/plain", weights)
    sex_eval, _ = job("eval/sex", {**weights, "tasks": "sex1.0"})
    assert naming.setting_of(json.loads(open(plain).read())) == (0.7, 0.0, 0.0, "")
    assert Setting.of(json.loads(open(sex).read())) == Setting(0.7, 0.0, 0.0, "sex1.0") != Setting(0.7, 0.0, 0.0)
    cells = attack_cells([sex, plain], [plain_csv, sex_csv], [sex_eval, plain_eval])
    assert [(c["tasks"], c["attack_csv"], c["eval_summary"]) for c in cells] == [
        ("sex1.0", sex_csv, sex_eval),
        ("", plain_csv, plain_eval),
    ]
    with pytest.raises(ResultsError, match=r"no evaluation summary of λA=0.7, .*, λC\(i\)=0.0, tasks sex1.0"):
        attack_cells([sex], [sex_csv], [plain_eval])
