"""Per-utterance attack and evaluation results + the paper's numbers -> paper_comparison.md."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.atomic import write_text_atomic
from hne_core.logs import logged_to
from hne_core.results.aggregate import (
    Setting,
    fill_tasks,
    read_advtwer,
    read_attack_scores,
    read_benign_scores,
    read_summary,
    sibling,
)
from hne_core.results.compare import comparison_markdown, evaluate_findings
from hne_core.results.paper import load_paper_results

with logged_to(snakemake.log[0]) as log:
    i, p = snakemake.input, snakemake.params
    # every job's setting from its own summary; its per-utterance file lies beside it
    attack = {
        (Setting.of(s := read_summary(f)), int(s["steps"])): read_attack_scores(sibling(f, "utterances.csv", i.attacks))
        for f in i.summaries
    }
    benign = {Setting.of(read_summary(f)): read_benign_scores(sibling(f, "hypotheses.tsv", i.hyps)) for f in i.evals}
    paper = load_paper_results(i.paper)
    results = evaluate_findings(p.findings, attack, benign, p.steps, p.bootstrap_samples, p.ci_level, p.seed, paper)
    checks = seeds = None
    if i.get("robustness"):  # robustness.enabled: the checks' verdicts per setting, AdvTWER per seed
        import pandas as pd

        from hne_core.robustness.report import setting_verdicts

        checks = setting_verdicts(pd.read_csv(i.robustness[0]))
        seeds = fill_tasks(pd.read_csv(i.robustness_seeds[0]))  # '' for the accent alone, not NaN
    text = comparison_markdown(
        p.tables,
        read_advtwer(i.advtwer),
        results,
        benign,
        p.steps,
        p.bootstrap_samples,
        p.ci_level,
        p.seed,
        paper,
        checks,
        seeds,
    )
    if i.get("adaptive_summaries"):  # robustness.adaptive: the AdvTWER findings against the strongest attacker
        from hne_core.robustness.adaptive import attacker_of, findings_markdown, worst_case

        members = {
            (Setting.of(s := read_summary(f)), int(s["steps"]), attacker_of(s)): read_attack_scores(
                sibling(f, "utterances.csv", i.adaptive_csvs)
            )
            for f in i.adaptive_summaries
        }
        worst = {key: scores for key, (_, scores) in worst_case(attack, members).items()}
        adv = [f for f in p.findings if f["metric"] == "adv_twer"]
        judged = [r for r in results if r.metric == "adv_twer"]
        again = evaluate_findings(adv, worst, benign, p.steps, p.bootstrap_samples, p.ci_level, p.seed, paper)
        text += findings_markdown(judged, again)
    write_text_atomic(snakemake.output.md, text)
    for r in results:
        log.info("%s: %s (%d of %d)", r.claim, r.verdict, r.n_hold, r.n)
