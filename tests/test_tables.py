"""Results library on hand-made inputs: table layout and marking rules, writers, bootstrap, paired comparisons.

The paper's own numbers (hne_core/results/paper_results.csv) are also run through the table code: its marking
rules must reproduce the bold cells printed in the paper, and the config's findings must hold on them."""

from __future__ import annotations

import json
import math

import jiwer
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO

from hne_core.results.aggregate import (
    ResultsError,
    Setting,
    UtteranceScores,
    advtwer_frame,
    bootstrap_indices,
    edit_counts,
    percentile_interval,
    read_advtwer,
    resampled_wer,
    write_frame,
)
from hne_core.results.compare import evaluate_findings, findings_section, paired_difference, parse_setting
from hne_core.results.paper import PAPER_STEPS, budget_note, describe_mapping, load_paper_results, milestone_map
from hne_core.results.tables import (
    PaperTable,
    benign_frame,
    benign_layout,
    escape_md,
    escape_tex,
    refwer_table,
    row_marks,
    to_html,
    to_latex,
    to_markdown,
)

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
TABLES = {t["name"]: t for t in CONFIG["tables"]}


# ------------------------------------------------------------------------------------------------ marking rules
def test_bold_is_the_row_maximum_compared_as_numbers_not_text():
    bold, _ = row_marks([99.95, 100.65, 101.04, 7.14], [True, False, False, False])
    assert bold == [False, False, True, False]  # as text, "99.95" would win


def test_a_tie_for_the_maximum_bolds_every_tied_cell():
    bold, _ = row_marks([50.0, 61.2, 61.2, 12.0], [True, False, False, False])
    assert bold == [False, True, True, False]


def test_ties_are_judged_on_the_printed_values():
    bold, _ = row_marks([97.604, 97.601, 90.0], [True, False, False])
    assert bold == [True, True, False]  # both print 97.60
    bold, _ = row_marks([97.606, 97.601, 90.0], [True, False, False])
    assert bold == [True, False, False]  # 97.61 against 97.60


def test_highlight_needs_to_beat_every_baseline_strictly():
    # baselines at 0 and 3 (Table 1 has two: STL decoder and STL CTC)
    values = [93.35, 59.87, 93.35, 37.53, 99.95, 96.80]
    baseline = [True, False, False, True, False, False]
    bold, highlight = row_marks(values, baseline)
    # 59.87 beats the CTC baseline only; 93.35 ties the decoder baseline: neither is highlighted
    assert highlight == [False, False, False, False, True, True]
    assert bold == [False, False, False, False, True, False]


def test_a_baseline_can_be_the_row_maximum_and_is_never_highlighted():
    bold, highlight = row_marks([120.5, 101.0, 99.0], [True, False, False])
    assert bold == [True, False, False] and highlight == [False, False, False]


def test_missing_cells_are_never_marked_and_a_missing_baseline_highlights_nothing():
    bold, highlight = row_marks([math.nan, 40.0, 30.0], [True, False, False])
    assert bold == [False, True, False] and highlight == [False, False, False]
    bold, highlight = row_marks([10.0, math.nan, 30.0], [True, False, False])
    assert bold == [False, False, True] and highlight == [False, False, True]


def test_no_baseline_means_no_highlight():
    _, highlight = row_marks([1.0, 2.0], [False, False])
    assert highlight == [False, False]


def test_lower_is_better_marks_the_minimum_and_cells_below_every_baseline():
    """WER against the references under attack: lower is more robust, so the row minimum is bold and a cell is
    highlighted when strictly below every baseline (on the printed values)."""
    values = [40.0, 35.5, 52.0, 38.004, 35.504]
    baseline = [True, False, False, True, False]
    bold, highlight = row_marks(values, baseline, lower_is_better=True)
    assert bold == [False, True, False, False, True]  # 35.50 twice as printed
    assert highlight == [False, True, False, False, True]  # below 38.00 and 40.00; 52.0 is not
    bold, highlight = row_marks([10.0, math.nan, 12.0], [True, False, False], lower_is_better=True)
    assert bold == [True, False, False] and highlight == [False, False, False]


# ------------------------------------------------------------------------------------------------ layout
def _frame(cells: dict[tuple[float, float, float, int], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"lambda_a": a, "lambda_c_train": c, "lambda_c_infer": i, "steps": s, "adv_twer": v}
            for (a, c, i, s), v in cells.items()
        ]
    )


TOY = {
    "name": "toy",
    "title": "Toy | table with 100% & more_λ",
    "columns": [
        {"lambda_a": 1.0, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "label": "STL *dec*", "baseline": True},
        {"lambda_a": 0.7, "lambda_c_train": 0.5, "lambda_c_infer": 0.0, "label": "a|b_c & 50%"},
        {"lambda_a": 0.7, "lambda_c_train": 0.3, "lambda_c_infer": 0.0, "label": "<x>"},
    ],
}


def _toy_table() -> PaperTable:
    frame = _frame(
        {
            (1.0, 0.0, 0.0, 50): 99.95,
            (0.7, 0.5, 0.0, 50): 100.65,
            (0.7, 0.3, 0.0, 50): 101.04,
            (1.0, 0.0, 0.0, 100): 80.0,
            (0.7, 0.5, 0.0, 100): 80.0,
            (1.0, 0.0, 0.0, 200): 1.0,
        }
    )  # (0.7, 0.3) missing at 100; steps 200 not requested
    return PaperTable.from_frame(frame, TOY, [50, 100])


def test_layout_rows_are_milestones_and_columns_follow_config_order():
    table = _toy_table()
    assert table.values.shape == (2, 3)
    assert table.values[0].tolist() == [99.95, 100.65, 101.04]
    assert table.values[1, :2].tolist() == [80.0, 80.0] and math.isnan(table.values[1, 2])
    bold, highlight = table.marks()
    assert bold.tolist() == [[False, False, True], [True, True, False]]  # a tie with the baseline: both bold
    assert highlight.tolist() == [[False, True, True], [False, False, False]]  # a tie is not an improvement


def test_csv_keeps_numbers_and_spells_out_the_marks():
    frame = pd.read_csv(pd.io.common.StringIO(_toy_table().to_csv()), keep_default_na=False)
    assert list(frame.columns) == ["steps", "STL *dec* (baseline)", "a|b_c & 50%", "<x>", "bold", "highlighted"]
    assert frame["steps"].tolist() == ["PGD-50", "PGD-100"]
    assert frame.iloc[0]["<x>"] == 101.04 or frame.iloc[0]["<x>"] == "101.04"
    assert frame.iloc[1]["<x>"] == ""
    assert frame["bold"].tolist() == ["<x>", "STL *dec*;a|b_c & 50%"]
    assert frame["highlighted"].tolist() == ["a|b_c & 50%;<x>", ""]


def test_markdown_marks_and_escapes():
    md = to_markdown(_toy_table().grid())
    lines = md.splitlines()
    assert lines[0].startswith(r"### Toy \| table with 100% & more\_λ (NOT the paper")  # milestones 50, 100
    assert lines[2] == r"| steps | *STL \*dec\** | a\|b\_c & 50% | \<x\> |"
    assert lines[4] == "| λA/λC(t)/λC(i) | *1.0/0.0/0.0* | 0.7/0.5/0.0 | 0.7/0.3/0.0 |"
    assert lines[5] == "| PGD-50 | *99.95* | <mark>100.65</mark> | <mark>**101.04**</mark> |"
    assert lines[6] == "| PGD-100 | ***80.00*** | **80.00** | – |"
    assert all(line.count("|") - line.count(r"\|") == 5 for line in lines[2:7])  # 4 cells per row, escapes kept


def test_latex_marks_and_escapes():
    tex = to_latex(_toy_table().grid())
    assert r"\caption{Toy | table with 100\% \& more\_$\lambda$ (NOT the paper" in tex  # milestones 50, 100
    assert r"\cellcolor{gray!20}STL *dec* & a|b\_c \& 50\% & <x> \\" in tex
    assert (
        r"PGD-50 & \cellcolor{gray!20}99.95 & \cellcolor{yellow!35}100.65 & \cellcolor{yellow!35}\textbf{101.04} \\"
        in tex
    )
    assert r"PGD-100 & \cellcolor{gray!20}\textbf{80.00} & \textbf{80.00} & -- \\" in tex
    assert escape_tex("a_b#c$d{e}~^\\") == r"a\_b\#c\$d\{e\}\textasciitilde{}\textasciicircum{}\textbackslash{}"


def test_refwer_table_is_the_twin_of_a_table_with_lower_marked_better():
    frame = _frame({(1.0, 0.0, 0.0, 50): 99.95, (0.7, 0.5, 0.0, 50): 100.65, (0.7, 0.3, 0.0, 50): 101.04})
    frame["ref_wer"] = [30.0, 25.0, 41.0]
    table = refwer_table(frame, TOY, [50])
    assert table.name == "toy_refwer" and "against the references" in table.title and TOY["title"] in table.title
    assert table.values.tolist() == [[30.0, 25.0, 41.0]]
    bold, highlight = table.marks()
    assert bold.tolist() == [[False, True, False]] and highlight.tolist() == [[False, True, False]]
    grid = table.grid()
    assert "lowest in row" in grid.legend and [c.label for c in table.columns] == [c["label"] for c in TOY["columns"]]
    assert "| PGD-50 | *30.00* | <mark>**25.00**</mark> | 41.00 |" in to_markdown(grid)
    csv = pd.read_csv(pd.io.common.StringIO(table.to_csv()), keep_default_na=False)
    assert csv["bold"].tolist() == ["a|b_c & 50%"] and csv["highlighted"].tolist() == ["a|b_c & 50%"]


def test_html_escapes_labels():
    page = to_html(_toy_table().grid())
    assert "&lt;x&gt;" in page and "<x>" not in page
    assert '<td style="background:#fff3a0;font-weight:bold">101.04</td>' in page


def test_escape_md_covers_cell_breakers():
    assert escape_md("a|b*c_d`e") == r"a\|b\*c\_d\`e"


# ------------------------------------------------------------------------------------------------ the paper itself
PAPER_BOLD = {  # the bold cell of each row as printed in the paper, by column label
    "table1": [
        "MTL decoder inference 0.5",
        "MTL decoder inference 0.7",
        "MTL decoder inference 0.7",
        "MTL decoder inference 0.5",
    ],
    "table2": ["0.7", "0.6", "0.7", "0.7"],
    "table3": ["0.7", "0.5", "0.5", "0.5"],
}


@pytest.mark.parametrize("name", sorted(PAPER_BOLD))
def test_the_rules_reproduce_the_papers_bold_cells(name):
    paper = load_paper_results()
    paper = paper[(paper["table"] == name) & (paper["metric"] == "adv_twer")].rename(columns={"value": "adv_twer"})
    table = PaperTable.from_frame(paper, TABLES[name], PAPER_STEPS)
    assert not np.isnan(table.values).any()
    bold, highlight = table.marks()
    labels = [c.label for c in table.columns]
    assert [[lab for lab, b in zip(labels, row) if b] for row in bold] == [[x] for x in PAPER_BOLD[name]]
    highlighted = [{lab for lab, h in zip(labels, row) if h} for row in highlight]
    if name == "table1":  # only CTC dropped at inference beats both STL baselines (the paper's section 5.1)
        assert highlighted == [{f"MTL decoder inference {c}" for c in ("0.3", "0.5", "0.7")}] * 4
    elif name == "table2":  # λA 0.8-0.6 in every row; 0.5 only where it edges past 57.57 and 49.79
        assert highlighted == [{"0.8", "0.7", "0.6"}] * 2 + [{"0.8", "0.7", "0.6", "0.5"}] * 2
    else:
        assert highlighted == [{"0.5", "0.7"}] * 4


def test_a_run_off_the_papers_budget_says_so_in_every_table_title():
    """Milestones other than 500/1000/1500/2000: the title of every table format carries the warning; the paper's
    own milestones carry none."""
    quick = _toy_table()  # milestones 50 and 100
    assert budget_note([50, 100]) in quick.grid().title and "NOT the paper's attack budget" in budget_note([50, 100])
    for text in (to_markdown(quick.grid()), to_html(quick.grid()), to_latex(quick.grid())):
        assert "NOT the paper" in text
    paper = PaperTable.from_frame(_frame({(1.0, 0.0, 0.0, s): 50.0 for s in PAPER_STEPS}), TOY, list(PAPER_STEPS))
    assert budget_note(list(PAPER_STEPS)) == "" and "NOT" not in paper.grid().title


def test_milestones_are_matched_to_the_papers_by_position():
    assert milestone_map([50, 100, 150, 200]) == {50: 500, 100: 1000, 150: 1500, 200: 2000}
    assert milestone_map([500, 1000, 1500, 2000]) == {500: 500, 1000: 1000, 1500: 1500, 2000: 2000}
    assert "own" in describe_mapping(list(PAPER_STEPS))
    assert "by position" in describe_mapping([2, 4])


# ------------------------------------------------------------------------------------------------ bootstrap
REFS = ["A B C D", "E F", "G H I", "J", "K L M N O", "P Q"]
HYPS = ["A X C D", "E F G", "", "J", "K L M", "P Q R S"]


def test_edit_counts_add_up_to_jiwer_corpus_wer():
    edits, words = edit_counts(REFS, HYPS)
    assert words.tolist() == [4, 2, 3, 1, 5, 2]
    assert edits.sum() / words.sum() == pytest.approx(jiwer.wer(REFS, HYPS))


def test_same_seed_same_interval_and_the_interval_holds_the_point():
    edits, words = edit_counts(REFS, HYPS)
    scores = UtteranceScores(tuple(f"u{i}" for i in range(len(REFS))), edits, words)
    first = percentile_interval(resampled_wer(scores, bootstrap_indices(len(REFS), 500, seed=11)), 0.95)
    again = percentile_interval(resampled_wer(scores, bootstrap_indices(len(REFS), 500, seed=11)), 0.95)
    other = percentile_interval(resampled_wer(scores, bootstrap_indices(len(REFS), 500, seed=12)), 0.95)
    assert first == again and first != other
    assert first[0] <= scores.wer <= first[1]
    assert first[1] - first[0] > 10  # six short utterances: a wide interval


def _write_cell(folder, utt_ids, targets, hyps, accent_acc=None, summary_twer=None, refs=None, summary_wer=None):
    folder.mkdir(parents=True)
    refs = ["R"] * len(utt_ids) if refs is None else refs
    pd.DataFrame({"utt_id": utt_ids, "reference": refs, "target": targets, "hypothesis": hyps}).to_csv(
        folder / "utterances.csv", index=False
    )
    twer = 100 * jiwer.wer(targets, hyps) if summary_twer is None else summary_twer
    wer = 100 * jiwer.wer(refs, hyps) if summary_wer is None else summary_wer
    (folder / "summary.json").write_text(json.dumps({"adv_twer": twer, "wer": wer}))
    (folder / "eval.json").write_text(json.dumps({"wer": 0.25, "accent_acc": accent_acc}))
    return {
        "attack_csv": str(folder / "utterances.csv"),
        "attack_summary": str(folder / "summary.json"),
        "eval_summary": str(folder / "eval.json"),
    }


def test_advtwer_frame_is_tidy_and_checks_its_inputs(tmp_path):
    ids = ["u1", "u2", "u3"]
    targets = ["LOREM IPSUM", "DOLOR SIT AMET", "CONSECTETUR"]
    refs = ["THE CAT SAT", "A DOG", "RED HOUSE ON THE HILL"]
    a = _write_cell(tmp_path / "a", ids, targets, ["LOREM IPSUM", "DOLOR", ""], accent_acc=0.9, refs=refs)
    b = _write_cell(
        tmp_path / "b", ids[::-1], targets[::-1], ["X Y Z W", "DOLOR SIT AMET", "CONSECTETUR"], refs=refs[::-1]
    )
    cells = [
        {"lambda_a": 1.0, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "steps": 100, **b},
        {"lambda_a": 0.7, "lambda_c_train": 0.5, "lambda_c_infer": 0.0, "steps": 50, **a},
    ]
    frame = advtwer_frame(cells, 300, 0.95, seed=3)
    assert list(frame.columns) == [
        "lambda_a",
        "lambda_c_train",
        "lambda_c_infer",
        "tasks",
        "steps",
        "adv_twer",
        "adv_twer_ci_low",
        "adv_twer_ci_high",
        "ref_wer",
        "ref_wer_ci_low",
        "ref_wer_ci_high",
        "benign_wer",
        "accent_acc",
        "n_utts",
    ]
    assert frame["lambda_a"].tolist() == [0.7, 1.0]  # sorted by setting
    # a: 0 + 2 + 1 edits over 6 target words; b: (1 sub + 3 insertions) + 0 + (1 sub + 1 deletion) over 6
    assert frame["adv_twer"].tolist() == pytest.approx([50.0, 100.0])
    assert (frame["adv_twer_ci_low"] <= frame["adv_twer"]).all() and (
        frame["adv_twer"] <= frame["adv_twer_ci_high"]
    ).all()
    # against the 10 reference words: a: 3 + 2 + 5 edits (nothing right); b: 5 + 3 + 3 (X Y Z W for RED HOUSE ON
    # THE HILL: 4 substitutions + 1 deletion; DOLOR SIT AMET for A DOG: 2 + 1 insertion; CONSECTETUR for THE CAT
    # SAT: 1 + 2 deletions): 110 %, where its AdvTWER was 100
    assert frame["ref_wer"].tolist() == pytest.approx([100.0, 110.0])
    assert frame["ref_wer"].tolist() == pytest.approx(
        [
            100 * jiwer.wer(refs, ["LOREM IPSUM", "DOLOR", ""]),
            100 * jiwer.wer(refs[::-1], ["X Y Z W", "DOLOR SIT AMET", "CONSECTETUR"]),
        ]
    )
    assert ((frame["ref_wer_ci_low"] <= frame["ref_wer"]) & (frame["ref_wer"] <= frame["ref_wer_ci_high"])).all()
    assert frame["benign_wer"].tolist() == [25.0, 25.0]
    assert frame["accent_acc"].iloc[0] == pytest.approx(90.0) and math.isnan(frame["accent_acc"].iloc[1])
    assert frame["tasks"].tolist() == ["", ""]  # the paper's models: the accent alone
    assert frame.equals(advtwer_frame(cells, 300, 0.95, seed=3))

    c = _write_cell(tmp_path / "c", ["u1", "u2", "u9"], targets, targets)
    with pytest.raises(ResultsError, match="other utterances"):
        advtwer_frame([cells[0], {**cells[1], **c}], 300, 0.95, seed=3)
    d = _write_cell(tmp_path / "d", ids, targets, targets, summary_twer=12.0)
    with pytest.raises(ResultsError, match="AdvTWER from the utterances .* differs from its summary"):
        advtwer_frame([{**cells[0], **d}], 300, 0.95, seed=3)
    e = _write_cell(tmp_path / "e", ids, targets, targets, summary_wer=12.0)
    with pytest.raises(ResultsError, match="WER from the utterances .* differs from its summary"):
        advtwer_frame([{**cells[0], **e}], 300, 0.95, seed=3)


def test_a_model_with_other_tasks_is_its_own_cell_and_survives_a_csv_round_trip(tmp_path):
    """Two models of the same λs, the paper's (no ``tasks``) and one trained on sex alone: two rows of the frame,
    read back from the CSV with tasks '' (not NaN, not 'nan') and 'sex1.0', and two columns of a table."""
    ids, targets = ["u1", "u2"], ["LOREM IPSUM", "DOLOR SIT"]
    accent = _write_cell(tmp_path / "accent", ids, targets, ["LOREM IPSUM", "DOLOR SIT"], accent_acc=0.5)
    sex = _write_cell(tmp_path / "sex", ids, targets, ["X", "Y"])
    weights = {"lambda_a": 0.7, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "steps": 50}
    cells = [{**weights, "tasks": "sex1.0", **sex}, {**weights, **accent}]
    path = tmp_path / "advtwer.csv"
    write_frame(advtwer_frame(cells, 100, 0.95, seed=1), path)
    assert ",,50," in path.read_text()  # the accent-only row: an empty tasks cell
    frame = read_advtwer(path)
    assert frame["tasks"].tolist() == ["", "sex1.0"] and frame["adv_twer"].tolist() == pytest.approx([0.0, 100.0])
    assert [Setting.of(r) for r in frame.to_dict("records")] == [Setting(0.7, 0.0, 0.0), Setting(0.7, 0, 0, "sex1.0")]
    table = {
        "name": "tasks",
        "title": "t",
        "columns": [
            {**weights, "label": "accent"},
            {**weights, "tasks": {"sex": 1.0}, "label": "sex"},
        ],
    }
    picked = PaperTable.from_frame(frame, table, [50])
    assert picked.values.tolist() == [[0.0, 100.0]]
    assert [c.text for c in picked.grid().rows[0]] == ["λA/λC(t)/λC(i)/tasks", "0.7/0.0/0.0", "0.7/0.0/0.0/sex1.0"]


def test_a_setting_spells_its_tasks_only_when_it_has_other_tasks():
    plain, sex = Setting(0.7, 0.0, 0.0), Setting(0.7, 0.0, 0.0, "sex1.0")
    assert plain != sex and Setting(0.7, 0.0, 0.0, float("nan")) == plain == Setting(0.7, 0, 0, "accent1.0")
    assert plain.short == "0.7/0.0/0.0" and plain.spelled == "λA=0.7, λC(t)=0.0, λC(i)=0.0"
    assert sex.short == "0.7/0.0/0.0/sex1.0" and sex.spelled == "λA=0.7, λC(t)=0.0, λC(i)=0.0, tasks sex1.0"
    assert Setting.parse("0.7/0.0/0.0/sex1.0") == sex == Setting.of({**plain.row(), "tasks": {"sex": 1.0}})
    assert plain.row() == {"lambda_a": 0.7, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "tasks": ""}


# ------------------------------------------------------------------------------------------------ comparisons
def _scores(edits, words):
    return UtteranceScores(tuple(f"u{i}" for i in range(len(edits))), np.array(edits), np.array(words))


def test_paired_difference_signs_ties_and_intervals():
    idx = bootstrap_indices(5, 400, seed=1)
    robust, weak = _scores([5, 5, 4, 6, 5], [5] * 5), _scores([1, 0, 2, 1, 1], [5] * 5)
    d = paired_difference(robust, weak, idx, 0.95, higher_is_better=True)
    assert d.point == pytest.approx(80.0) and d.holds and d.outside and d.low <= d.point <= d.high
    tie = paired_difference(robust, robust, idx, 0.95, higher_is_better=True)
    assert tie.point == 0 and not tie.holds and not tie.outside and not tie.against
    wer = paired_difference(weak, robust, idx, 0.95, higher_is_better=False)  # lower WER is better
    assert wer.holds and wer.point == pytest.approx(80.0)
    with pytest.raises(ResultsError):
        paired_difference(robust, _scores([1, 1], [5, 5]), idx, 0.95, higher_is_better=True)


def test_paired_difference_resamples_both_sides_alike():
    """Scores that move together (the worse side has one more edit of 10 words on every utterance, the utterances
    themselves from 0 to 10 edits): the paired difference is 10 points in every resample, so its interval is
    [10, 10]; resampling the worse side apart from the better one gives an interval that holds 0."""
    better = _scores([0, 10, 1, 9, 2, 8, 0, 10], [10] * 8)
    worse = _scores(better.edits + 1, [10] * 8)
    idx = bootstrap_indices(8, 400, seed=1)
    d = paired_difference(better, worse, idx, 0.95, higher_is_better=False)
    # each resampled WER is 100·edits/words, two roundings (≤ 2·100·u, u = 2^-53); the difference adds one more
    tol = 600 * 2.0**-53
    assert d.point == pytest.approx(10.0, abs=tol) and 10.0 - tol <= d.low <= d.high <= 10.0 + tol and d.outside
    apart = resampled_wer(worse, idx) - resampled_wer(better, bootstrap_indices(8, 400, seed=2))
    low, high = percentile_interval(apart, 0.95)
    assert low < 0 < high


def test_the_configs_findings_hold_on_the_papers_own_numbers():
    """Each finding as declared in config.yaml, run on the published values: the paper's own claims come out
    as the paper states them, except the all-three-heads one, which its PGD-500 row (100.65 < 101.04) breaks."""
    attacked = sorted({Setting.of(c) for t in CONFIG["tables"] for c in t["columns"]})
    fake = _scores([1, 2, 3], [4, 4, 4])
    steps = [50, 100, 150, 200]
    attack = {(s, n): fake for s in attacked for n in steps}
    evaluated = set(attacked) | {
        Setting(p["lambda_a"], p["lambda_c"], p["lambda_c"]) for p in CONFIG["finetune"]["grid"]
    }
    results = evaluate_findings(CONFIG["findings"], attack, {s: fake for s in evaluated}, steps, 50, 0.95, seed=0)
    assert [r.paper_counts for r in results] == [(16, 16), (24, 24), (12, 12), (59, 60), (1, 1)]
    assert all(r.verdict == "does not hold" and r.n_hold == 0 for r in results)  # identical scores: ties
    assert results[3].comparisons[0].better == parse_setting("0.7/0.5/0.0") and len(results[3].comparisons) == 15


def test_a_finding_with_a_tasks_setting_compares_that_models_cells():
    """'0.7/0.0/0.0/sex1.0' is the sex model, '0.7/0.0/0.0' the paper's model of the same λs: the finding must
    read the sex model's scores (higher than the baseline's) and not the accent model's (lower)."""
    base, accent, sex = Setting(1.0, 0.0, 0.0), Setting(0.7, 0.0, 0.0), Setting.parse("0.7/0.0/0.0/sex1.0")
    level = {base: 2, accent: 1, sex: 3}  # edits per utterance of 4 words
    attack = {(s, 50): _scores([e] * 6, [4] * 6) for s, e in level.items()}
    findings = [
        {"claim": "sex", "metric": "adv_twer", "comparisons": [["0.7/0.0/0.0/sex1.0", "1.0/0.0/0.0"]]},
        {"claim": "accent", "metric": "adv_twer", "comparisons": [["0.7/0.0/0.0", "1.0/0.0/0.0"]]},
    ]
    with_sex, with_accent = evaluate_findings(findings, attack, {}, [50], 50, 0.95, seed=0)
    assert with_sex.comparisons[0].better == sex and with_sex.comparisons[0].ours[50].point == pytest.approx(25.0)
    assert with_sex.verdict == "holds" and with_accent.verdict == "does not hold"
    text = "\n".join(findings_section([with_sex, with_accent], [50], 0.95))
    assert "| 0.7/0.0/0.0/sex1.0 vs 1.0/0.0/0.0 | +25.00" in text and "| 0.7/0.0/0.0 vs 1.0/0.0/0.0 | -25.00" in text
    assert "λA/λC(t)/λC(i)/tasks |" in text and "λA/λC(t)/λC(i) |" in text  # the tasks part only where named


# ------------------------------------------------------------------------------------------------ benign table
def test_benign_table_puts_the_base_first_and_bolds_the_lowest_wer():
    summaries = [
        {
            "model": "la1.0_lc0.3",
            "lambda_a": 1.0,
            "lambda_c_train": 0.3,
            "lambda_c_infer": 0.3,
            "wer": 0.2,
            "accent_acc": None,
            "n_utts": 8,
        },
        {
            "model": "la1.0_lc0.3",
            "lambda_a": 1.0,
            "lambda_c_train": 0.3,
            "lambda_c_infer": 0.0,
            "wer": 0.15,
            "accent_acc": None,
            "n_utts": 8,
        },
        {
            "model": "la1.0_lc0.0",
            "lambda_a": 1.0,
            "lambda_c_train": 0.0,
            "lambda_c_infer": 0.0,
            "wer": 0.15,
            "accent_acc": None,
            "n_utts": 8,
        },
        {
            "model": "la0.7_lc0.0",
            "lambda_a": 0.7,
            "lambda_c_train": 0.0,
            "lambda_c_infer": 0.0,
            "wer": 1.25,
            "accent_acc": 0.875,
            "n_utts": 8,
        },
        {
            "model": "pretrained",
            "lambda_a": 1.0,
            "lambda_c_train": 0.3,
            "lambda_c_infer": 0.0,
            "wer": 0.3,
            "accent_acc": None,
            "n_utts": 8,
        },
    ]
    wide, grid = benign_layout(benign_frame(summaries))
    assert wide["model"].tolist() == ["pretrained", "la0.7_lc0.0", "la1.0_lc0.0", "la1.0_lc0.3"]
    assert grid.header == ["model", "λA", "λC(t)", "WER λC(i)=0.0", "WER λC(i)=0.3", "accent acc.", "utterances"]
    texts = [[c.text for c in row] for row in grid.rows]
    assert texts[1] == ["la0.7_lc0.0", "0.7", "0.0", "125.00", "–", "87.5", "8"]  # a WER over 100 stays a number
    bold = [[c.text for c in row if c.bold] for row in grid.rows]
    assert bold == [[], [], ["15.00"], ["15.00", "20.00"]]  # tie for the lowest: both bold
    assert [row[0].baseline for row in grid.rows] == [False, False, True, False]  # STL decoder only


def test_benign_table_gives_each_other_tasks_accuracy_its_own_column():
    """A model trained on sex alone reports task_acc and no accent accuracy: a 'sex acc.' column, its accent cell
    '–', and the accent model's sex cell '–'. Its model id names its tasks."""
    common = {"lambda_c_train": 0.0, "lambda_c_infer": 0.0, "n_utts": 8}
    summaries = [
        {**common, "model": "la1.0_lc0.0", "lambda_a": 1.0, "wer": 0.2, "accent_acc": None},
        {**common, "model": "la0.7_lc0.0", "lambda_a": 0.7, "wer": 0.3, "accent_acc": 0.5},
        {
            **common,
            "model": "la0.7_lc0.0_sex1.0",
            "lambda_a": 0.7,
            "tasks": "sex1.0",
            "wer": 0.25,
            "accent_acc": None,
            "task_acc": {"sex": 0.75},
        },
    ]
    frame = benign_frame(summaries)
    assert frame["tasks"].tolist() == ["", "sex1.0", ""]
    wide, grid = benign_layout(frame)
    assert grid.header == ["model", "λA", "λC(t)", "WER λC(i)=0.0", "accent acc.", "sex acc.", "utterances"]
    texts = {row[0].text: [c.text for c in row[3:]] for row in grid.rows}
    assert texts == {
        "la0.7_lc0.0": ["30.00", "50.0", "–", "8"],
        "la0.7_lc0.0_sex1.0": ["25.00", "–", "75.0", "8"],
        "la1.0_lc0.0": ["20.00", "–", "–", "8"],
    }
    assert wide.columns.tolist()[-3:] == ["accent_acc", "sex_acc", "n_utts"]
    assert "each auxiliary task's accuracy" in grid.title
