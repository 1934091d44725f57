# Results: the tidy AdvTWER frame, the paper's Tables 1-3 (as config declares them), the benign table, the
# comparison with the published numbers, Figure 1 and the training curves. Light jobs: one core, no GPU.


rule results_advtwer:
    input:
        attacks=attack_files("utterances.csv"),
        summaries=attack_files("summary.json"),
        evals=eval_files("summary.json", [(m, lci) for m, lci, _ in attacked_cells()]),
    output:
        csv=report(
            results_path("tables", "advtwer.csv"),
            caption="../report/advtwer.rst",
            category="Results",
            subcategory="Tables",
        ),
    log:
        f"{R}/logs/results/advtwer.log",
    benchmark:
        f"{R}/benchmarks/results/advtwer.tsv"
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["results"]["mem_mb"],
        runtime=config["results"]["runtime"],
    params:
        bootstrap_samples=config["results"]["bootstrap_samples"],
        ci_level=config["results"]["ci_level"],
        seed=config["seed"],
    script:
        "../workflow_scripts/results_advtwer.py"


rule results_table:
    input:
        advtwer=results_path("tables", "advtwer.csv"),
    output:
        csv=report(
            results_path("tables", "{table}.csv"),
            caption="../report/table.rst",
            category="Results",
            subcategory="Tables",
        ),
        md=results_path("tables", "{table}.md"),
        tex=results_path("tables", "{table}.tex"),
        html=report(
            results_path("tables", "{table}.html"),
            caption="../report/table.rst",
            category="Results",
            subcategory="Tables",
        ),
        # the twin: the same columns, WER against the references under attack (lower is more robust)
        refwer_csv=report(
            results_path("tables", f"{{table}}{REFWER_SUFFIX}.csv"),
            caption="../report/refwer_table.rst",
            category="Results",
            subcategory="Tables",
        ),
        refwer_md=results_path("tables", f"{{table}}{REFWER_SUFFIX}.md"),
        refwer_tex=results_path("tables", f"{{table}}{REFWER_SUFFIX}.tex"),
        refwer_html=report(
            results_path("tables", f"{{table}}{REFWER_SUFFIX}.html"),
            caption="../report/refwer_table.rst",
            category="Results",
            subcategory="Tables",
        ),
    log:
        f"{R}/logs/results/table_{{table}}.log",
    benchmark:
        f"{R}/benchmarks/results/table_{{table}}.tsv"
    wildcard_constraints:
        table="|".join(TABLE_NAMES),
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["results"]["mem_mb"],
        runtime=config["results"]["runtime"],
    params:
        table=lambda wc: next(t for t in config["tables"] if t["name"] == wc.table),
        steps=MILESTONES,
    script:
        "../workflow_scripts/results_table.py"


rule results_benign:
    input:
        evals=eval_files("summary.json"),
        base=f"{R}/eval/pretrained/infer0.0/summary.json",
    output:
        csv=report(
            results_path("tables", "benign.csv"),
            caption="../report/benign.rst",
            category="Results",
            subcategory="Tables",
        ),
        md=results_path("tables", "benign.md"),
        tex=results_path("tables", "benign.tex"),
        html=report(
            results_path("tables", "benign.html"),
            caption="../report/benign.rst",
            category="Results",
            subcategory="Tables",
        ),
    log:
        f"{R}/logs/results/benign.log",
    benchmark:
        f"{R}/benchmarks/results/benign.tsv"
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["results"]["mem_mb"],
        runtime=config["results"]["runtime"],
    script:
        "../workflow_scripts/results_benign.py"


rule results_comparison:
    input:
        advtwer=results_path("tables", "advtwer.csv"),
        attacks=attack_files("utterances.csv"),
        summaries=attack_files("summary.json"),
        hyps=eval_files("hypotheses.tsv"),
        evals=eval_files("summary.json"),
        paper=PAPER_RESULTS,
        # the robustness checks' verdicts, when they run (rules/robustness.smk)
        robustness=[results_path("tables", "robustness_checks.csv")] if ROBUSTNESS_ENABLED else [],
        robustness_seeds=[results_path("tables", "robustness_seeds.csv")] if ROBUSTNESS_ENABLED else [],
        adaptive_summaries=adaptive_files("summary.json"),
        adaptive_csvs=adaptive_files("utterances.csv"),
    output:
        md=report(
            results_path("tables", "paper_comparison.md"),
            caption="../report/comparison.rst",
            category="Results",
            subcategory="Comparison with the paper",
        ),
    log:
        f"{R}/logs/results/paper_comparison.log",
    benchmark:
        f"{R}/benchmarks/results/paper_comparison.tsv"
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["results"]["mem_mb"],
        runtime=config["results"]["runtime"],
    params:
        tables=config["tables"],
        findings=config["findings"],
        steps=MILESTONES,
        bootstrap_samples=config["results"]["bootstrap_samples"],
        ci_level=config["results"]["ci_level"],
        seed=config["seed"],
    script:
        "../workflow_scripts/results_comparison.py"


rule results_figure1:
    input:
        advtwer=results_path("tables", "advtwer.csv"),
        paper=PAPER_RESULTS,
    output:
        png=report(
            results_path("figures", "figure1.png"),
            caption="../report/figure1.rst",
            category="Results",
            subcategory="Figures",
        ),
        pdf=results_path("figures", "figure1.pdf"),
    log:
        f"{R}/logs/results/figure1.log",
    benchmark:
        f"{R}/benchmarks/results/figure1.tsv"
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["results"]["mem_mb"],
        runtime=config["results"]["runtime"],
    params:
        series=config["figure1"]["series"],
        overlay_paper=config["figure1"]["overlay_paper"],
        steps=MILESTONES,
    script:
        "../workflow_scripts/results_figure1.py"


rule results_training_curves:
    input:
        curves=expand(f"{R}/models/{{model}}/train_curve.csv", model=sorted(MODELS)),
    output:
        png=report(
            results_path("figures", "training_curves.png"),
            caption="../report/training_curves.rst",
            category="Results",
            subcategory="Figures",
        ),
    log:
        f"{R}/logs/results/training_curves.log",
    benchmark:
        f"{R}/benchmarks/results/training_curves.tsv"
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["results"]["mem_mb"],
        runtime=config["results"]["runtime"],
    script:
        "../workflow_scripts/results_training_curves.py"
