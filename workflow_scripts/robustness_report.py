"""Every robustness job's outputs -> robustness_checks.{csv,md}, robustness_seeds.csv, the transfer matrices,
every table against the strongest adaptive attacker (<table>_adaptive.{csv,md}), budget_sweep.png and
transfer.png."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.atomic import write_text_atomic
from hne_core.logs import logged_to
from hne_core.results.aggregate import Setting
from hne_core.robustness.adaptive import adaptive_markdown
from hne_core.robustness.figures import budget_sweep, transfer_heatmap
from hne_core.robustness.report import (
    adaptive_cells,
    check_frame,
    checks_markdown,
    read_inputs,
    run_bootstrap,
    seed_frame,
    write_frame,
    write_outputs,
)

with logged_to(snakemake.log[0]) as log:
    i, p, o = snakemake.input, snakemake.params, snakemake.output
    got = read_inputs(
        i.attack_summaries,
        i.attack_csvs,
        i.transfer,
        i.sweep_summaries,
        i.sweep_csvs,
        i.noise,
        i.untargeted_summaries,
        i.untargeted_csvs,
        p.epsilon,
        i.seed_summaries,
        i.seed_csvs,
        i.adaptive_summaries,
        i.adaptive_csvs,
    )
    settings = [Setting.parse(s) for s in p.settings]
    frame, matrices, sweeps = check_frame(
        p.tables,
        got,
        settings,
        p.scales,
        p.steps,
        p.sweep_floor,
        p.noise_margin,
        p.bootstrap_samples,
        p.ci_level,
        p.seed,
        p.run_seed,
    )
    n_utts = len(next(iter(got.whitebox.values())))
    md = checks_markdown(
        frame,
        settings,
        p.scales,
        p.bootstrap_samples,
        p.ci_level,
        p.seed,
        n_utts,
        {"noise_draws": p.noise_draws, "sweep_floor": p.sweep_floor, "noise_margin": p.noise_margin},
    )
    paths = {
        n: (f, g)
        for n in p.matrix_tables
        for f, g in [tuple(m for m in o.matrices if m.endswith((f"/transfer_{n}.csv", f"/transfer_{n}.md")))]
    }
    write_outputs(frame, matrices, md, o.csv, o.md, paths, seed_frame(got, p.run_seed, p.steps[-1]), o.seeds)
    adaptive = adaptive_cells(p.tables, got, run_bootstrap(got, p.bootstrap_samples, p.ci_level, p.seed))
    for table in p.tables:
        csv, md_path = (
            next(f for f in o.adaptive if f.endswith(f"/{table['name']}_adaptive.{e}")) for e in ("csv", "md")
        )
        write_frame(adaptive[adaptive["table"] == table["name"]], csv)
        write_text_atomic(md_path, adaptive_markdown(table, adaptive, p.ci_level))
    budget_sweep(sweeps, p.epsilon, p.step_size, p.steps[-1], [o.sweep_png])
    transfer_heatmap(matrices, [o.transfer_png])
    log.info("%d verdict rows, %d flags", len(frame), int((frame["verdict"] == "flag").sum()))
