# Helpers shared by all rule files (config validation, paths, target lists).
# Rules never compute paths inline; they call these.
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# the one spelling of weights, model ids, settings and result folders (dependency-free: fine at parse time)
from hne_core.naming import attack_checkpoint, attack_dir, eval_dir, fmt_weight, model_id, parse_setting
from hne_core.naming import ACCENT_TASK, MODEL_PATTERN, format_setting, task_weights, tasks_id
from hne_core.naming import setting_of as setting_key
from hne_core.naming import (  # the robustness checks' folders
    ATTACKER_PATTERN,
    adaptive_dir,
    attacker_id,
    parse_attacker,
    noise_dir,
    seed_attack_dir,
    seed_dir,
    seed_model_dir,
    sweep_dir,
    transfer_file,
    untargeted_dir,
)


def _validate_config(cfg):
    """Schema validation whose message leads with the offending key (``attack.epsilon``).

    Snakemake's own ``validate`` (run second, for the schema's defaults) reports a schema path and a
    repr of the instance; a user wants the key, so the first error is restated in those terms.
    """
    import jsonschema
    import yaml

    schema_path = workflow.source_path("schemas/config.schema.yaml")
    with open(schema_path) as fh:
        schema = yaml.safe_load(fh)
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(cfg))
    if error is not None:
        key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise WorkflowError(f"Invalid config key '{key}': {error.message}")
    validate(cfg, schema="schemas/config.schema.yaml", set_default=True)


_validate_config(config)

R = config["results_dir"].rstrip("/")
RES = config["resources_dir"].rstrip("/")
SPLITS = ["train", "dev", "test"]
DATA_SOURCE = config["data"]["source"]
# The data sources' registry and the configured source's module (dependency-free at import: fine at parse time).
from hne_core.data import sources as data_sources
from hne_core.data.errors import ConfigError

try:
    SOURCE = data_sources.get(DATA_SOURCE)
except ConfigError as exc:
    raise WorkflowError(f"Invalid config key '{exc.key}': {exc}")


def _check_experiment(cfg):
    """Cross-key rules a JSON schema cannot say: every table column must name a model of the grid, every model's
    tasks must be declared ones with weights summing to 1."""
    _check_tasks(cfg)
    grid = {model_id(p["lambda_a"], p["lambda_c"], p.get("tasks")) for p in cfg["finetune"]["grid"]}
    if len(grid) != len(cfg["finetune"]["grid"]):
        raise WorkflowError("Invalid config key 'finetune.grid': it lists a (lambda_a, lambda_c, tasks) model twice")
    names = [t["name"] for t in cfg["tables"]]
    if len(set(names)) != len(names):
        raise WorkflowError(f"Invalid config key 'tables': table names repeat: {names}")
    for t, table in enumerate(cfg["tables"]):
        for i, col in enumerate(table["columns"]):
            if model_id(col["lambda_a"], col["lambda_c_train"], col.get("tasks")) not in grid:
                raise WorkflowError(
                    f"Invalid config key 'tables.{t}.columns.{i}' ({table['name']}): model lambda_a={col['lambda_a']}, "
                    f"lambda_c_train={col['lambda_c_train']}, tasks={col.get('tasks')} is not in finetune.grid"
                )
    if cfg["attack"]["steps"] != sorted(cfg["attack"]["steps"]):
        raise WorkflowError("Invalid config key 'attack.steps': milestones must be in increasing order")
    try:  # the configured data source's own rules (hne_core.data.sources)
        SOURCE.check(cfg[DATA_SOURCE])
    except ConfigError as exc:
        raise WorkflowError(f"Invalid config key '{exc.key}': {exc}")
    for section in ("pretrain", "finetune"):
        train = cfg[section]
        if train.get("scheduler") == "constant" and train.get("warmup_steps"):
            raise WorkflowError(
                f"Invalid config key '{section}.warmup_steps': {section}.scheduler is constant, so "
                "the warm-up would be ignored; remove warmup_steps or set scheduler: warmuplr"
            )
    if cfg["tokenizer"]["source"] == "pretrained" and cfg["pretrained"]["source"] != "zenodo":
        raise WorkflowError(
            "Invalid config key 'tokenizer.source': 'pretrained' reuses a downloaded model's BPE, "
            "so pretrained.source must be zenodo"
        )


def _check_tasks(cfg):
    """A model's tasks: declared ones (`tasks`, or the accent), weights summing to 1, none at λA = 1 (which trains
    no discriminator); a source's label map gives classes of its task only."""
    declared = {ACCENT_TASK, *cfg["tasks"]}
    places = [(f"finetune.grid.{k}", p) for k, p in enumerate(cfg["finetune"]["grid"])]
    places += [
        (f"tables.{t}.columns.{i}", c) for t, table in enumerate(cfg["tables"]) for i, c in enumerate(table["columns"])
    ]
    for key, point in places:
        if "tasks" not in point:
            continue
        try:
            weights = task_weights(point["tasks"])
        except ValueError as exc:
            raise WorkflowError(f"Invalid config key '{key}.tasks': {exc}")
        if set(weights) - declared:
            raise WorkflowError(
                f"Invalid config key '{key}.tasks': {sorted(set(weights) - declared)} not declared in `tasks` "
                f"(declared: {sorted(declared)})"
            )
        if float(point["lambda_a"]) == 1.0:
            raise WorkflowError(f"Invalid config key '{key}.tasks': λA = 1 trains no auxiliary head; drop `tasks`")
    for source in ("commonvoice", "folder"):
        for task, spec in (cfg[source].get("labels") or {}).items():
            if task not in cfg["tasks"]:
                raise WorkflowError(f"Invalid config key '{source}.labels.{task}': not a task of `tasks`")
            extra = set(spec["values"]) - set(cfg["tasks"][task]["classes"])
            if extra:
                raise WorkflowError(
                    f"Invalid config key '{source}.labels.{task}.values': {sorted(extra)} are not classes of "
                    f"tasks.{task} ({cfg['tasks'][task]['classes']})"
                )


_check_experiment(config)


RESULT_FILES = ("advtwer", "benign", "paper_comparison", "robustness_checks")  # results/tables/<name>.*: no table
# may take these
ROBUSTNESS_ENABLED = bool(config["robustness"]["enabled"])  # the checks of rules/robustness.smk
REFWER_SUFFIX = "_refwer"  # results/tables/<table>_refwer.*: each table's twin of WER against the references


def _check_results(cfg):
    """Figure 1 draws and the findings compare only what the workflow attacks (table columns) or evaluates.
    Settings are (λA, λC(t), λC(i)) keys of ``hne_core.naming``, the spelling the results library reads too."""
    setting = setting_key

    for t, table in enumerate(cfg["tables"]):
        labels = [c["label"] for c in table["columns"]]
        if table["name"] in RESULT_FILES or table["name"].endswith(REFWER_SUFFIX) or len(set(labels)) != len(labels):
            raise WorkflowError(
                f"Invalid config key 'tables.{t}' ({table['name']}): the name must not be one of "
                f"{list(RESULT_FILES)} nor end in {REFWER_SUFFIX!r}, and column labels must not "
                "repeat"
            )
    attacked = {setting(c) for table in cfg["tables"] for c in table["columns"]}
    evaluated = attacked | {
        setting(
            {
                "lambda_a": p["lambda_a"],
                "lambda_c_train": p["lambda_c"],
                "lambda_c_infer": p["lambda_c"],
                "tasks": p.get("tasks"),
            }
        )
        for p in cfg["finetune"]["grid"]
    }
    for i, series in enumerate(cfg["figure1"]["series"]):
        if setting(series) not in attacked:
            raise WorkflowError(
                f"Invalid config key 'figure1.series.{i}': {setting(series)} (λA, λC(t), λC(i)) "
                "is not a column of any table, so it is not attacked"
            )
    for i, finding in enumerate(cfg["findings"]):
        adv = finding["metric"] == "adv_twer"
        if "best" in finding and not adv:
            raise WorkflowError(f"Invalid config key 'findings.{i}.best': `best` compares AdvTWER (metric adv_twer)")
        refs = [finding["best"]] if "best" in finding else [r for pair in finding["comparisons"] for r in pair]
        missing = [r for r in refs if parse_setting(r) not in (attacked if adv else evaluated)]
        if missing:
            raise WorkflowError(
                f"Invalid config key 'findings.{i}': {missing} (λA/λC(t)/λC(i)) "
                f"{'not attacked (no table column)' if adv else 'not evaluated'}"
            )


_check_results(config)


# ---------------------------------------------------------------- data
def data_path(*parts):
    return os.path.join(R, "data", *parts)


ESPNET_FILES = ["wav.scp", "text", "utt2spk", "spk2utt", "accent", "utt2dur", "utt2num_samples"]


def _test_split_size(cfg):
    """What is known at planning time about the test split's size: (count, where it comes from, exact).

    The data stage's ``accent`` file, when it is already there, is exact; before it exists the source may bound
    the split from above from its config (``test_split_bound``: ``synthetic.utterances.test``, or
    ``commonvoice.subsample.test``: drops can only lower it). (None, ..) when nothing is known yet: the jobs
    check then (``sample_utterances``)."""
    accent = data_path("test", "accent")
    if os.path.isfile(accent):
        with open(accent, encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip()), accent, True
    bound, where = SOURCE.test_split_bound(cfg[DATA_SOURCE])
    return bound, where, False


def _check_sample_sizes(cfg):
    """attack.n_utterances and evaluation.n_utterances must not ask for more test utterances than the split
    holds: said here, before any job runs, when the counts are known (see ``_test_split_size``)."""
    held, where, exact = _test_split_size(cfg)
    if held is None:
        return
    for section in ("attack", "evaluation"):
        n = cfg[section]["n_utterances"]
        if n is not None and n > held:
            hint = (
                " (if the data stage is to rewrite that split after a config change, remove the file first)"
                if exact
                else ""
            )
            raise WorkflowError(
                f"Invalid config key '{section}.n_utterances': it asks for {n} test utterances, but the test split "
                f"holds {'only ' if exact else 'at most '}{held} ({where}){hint}"
            )


_check_sample_sizes(config)


def accent_classes():
    """Accent class names in index order, from the configured source's section (``<source>.classes``)."""
    return SOURCE.class_names(config[DATA_SOURCE])


DATA_PATHS = data_sources.Paths(data_dir=data_path(), resources_dir=RES)


def source_inputs(wildcards):
    """The prepare job's inputs, as the configured source names them (its upstream jobs' outputs, or the user's
    files read in place)."""
    return SOURCE.inputs(config[DATA_SOURCE], DATA_PATHS)


def source_params():
    """What the prepare job receives: the source's own settings and the data-wide settings it reads, and
    nothing else, so that a change reruns it only when it matters to this source."""
    return {
        "source": DATA_SOURCE,
        "settings": SOURCE.settings(config[DATA_SOURCE]),
        "data": data_sources.data_settings(SOURCE, config),
    }


# ---------------------------------------------------------------- tokenizer and pre-trained model
TOKENIZER = {"bpe": f"{R}/tokenizer/bpe.model", "tokens": f"{R}/tokenizer/tokens.txt"}
PRETRAINED_FILES = ["config.yaml", "model.pth", "bpe.model", "tokens.txt", "feats_stats.npz"]


STATS_FILES = ["feats_stats.npz", "speech_shape", "text_shape"]
EXPORT_FILES = ["config.yaml", "model.pth", "mtl_config.yaml", "mtl_model.pth"]


def pretrained_dir():
    """Where the pre-trained base lies, downloaded or trained here: the same layout either way."""
    if config["pretrained"]["source"] == "zenodo":
        return f"{RES}/pretrained/zenodo"
    return f"{R}/pretrained"


# ---------------------------------------------------------------- the λ grid
MODELS = {model_id(p["lambda_a"], p["lambda_c"], p.get("tasks")): p for p in config["finetune"]["grid"]}


def model_weights(model):
    """(λA, λC(t)) of a model id of the grid, and its tasks {name: weight} where they are not the accent alone (so
    that the paper's models' params read as they always have); an id outside the grid is a clear error."""
    if model not in MODELS:
        raise WorkflowError(f"model {model!r} is not in finetune.grid ({sorted(MODELS)})")
    p = MODELS[model]
    out = {"lambda_a": float(p["lambda_a"]), "lambda_c": float(p["lambda_c"])}
    if tasks_id(p.get("tasks")):
        out["tasks"] = task_weights(p["tasks"])
    return out


def model_tasks(model):
    """{task: weight} a model trains (the accent alone for the paper's models; none at λA = 1)."""
    w = model_weights(model)
    return {} if w["lambda_a"] == 1.0 else task_weights(w.get("tasks"))


def task_spec(model):
    """The model's tasks as its recipe's ``model_conf.tasks`` takes them, {task: {classes, weight}}, or None for
    the accent alone (the paper's model, whose recipe keeps ``num_accents`` only)."""
    tasks = model_tasks(model)
    if not tasks or tasks == {ACCENT_TASK: 1.0}:
        return None
    return {t: {"classes": len(task_classes(t)), "weight": w} for t, w in tasks.items()}


def task_classes(task):
    """Class names of an auxiliary task in index order: the source's accent classes, or `tasks.<task>.classes`."""
    return accent_classes() if task == ACCENT_TASK else list(config["tasks"][task]["classes"])


def task_label_file(split, task):
    """The label file of ``task`` in a split's data directory: ``accent`` is one of the ESPnet files; other
    tasks get ``labels_<task>`` (rule task_labels), written only when a model trains them."""
    return data_path(split, ACCENT_TASK if task == ACCENT_TASK else f"labels_{task}")


def task_label_files(split, model):
    """The label files a model's training (train, dev) or evaluation (test) reads beyond the ESPnet files."""
    return [task_label_file(split, t) for t in model_tasks(model) if t != ACCENT_TASK]


def setting_text(model, lci):
    """'0.7/0.0/0.0' or '0.7/0.0/0.0/sex1.0': an attacked (model, λC(i)) pair as config ``findings:`` spell it."""
    w = model_weights(model)
    return format_setting(w["lambda_a"], w["lambda_c"], lci, w.get("tasks"))


def setting_of_pair(model, lci):
    """The setting key (hne_core.naming) of an attacked (model, λC(i)) pair."""
    w = model_weights(model)
    return setting_key({"lambda_a": w["lambda_a"], "lambda_c_train": w["lambda_c"], "lambda_c_infer": lci, **w})


def table_pairs():
    """(model, λC(i)) pairs that the tables show: the attacked pairs (the paper's 16)."""
    return sorted(
        {
            (model_id(c["lambda_a"], c["lambda_c_train"], c.get("tasks")), fmt_weight(c["lambda_c_infer"]))
            for table in config["tables"]
            for c in table["columns"]
        }
    )


MILESTONES = [int(s) for s in config["attack"]["steps"]]


def previous_milestone(steps):
    """The milestone chained before ``steps`` (None for the first); one not in attack.steps is a clear error."""
    steps = int(steps)
    if steps not in MILESTONES:
        raise WorkflowError(f"PGD milestone {steps} is not in attack.steps {MILESTONES}")
    i = MILESTONES.index(steps)
    return MILESTONES[i - 1] if i else None


def chained_from(state_dir):
    """An input function of a chained attack rule: the previous milestone's ``state.npz`` in the folder
    ``state_dir(wildcards, milestone)``, nothing for the first milestone."""

    def previous_state(wildcards):
        prev = previous_milestone(wildcards.steps)
        return {} if prev is None else {"prev_state": f"{state_dir(wildcards, prev)}/state.npz"}

    return previous_state


# the δ state of the milestone before this one for the same (model, λC(i)): the chained attacks
previous_milestone_state = chained_from(lambda wc, k: attack_dir(R, wc.model, wc.lci, k))


def evaluation_pairs():
    """(model, λC(i)) pairs to evaluate: every table column, and every grid model at λC(i) = λC(t)."""
    return sorted({(m, fmt_weight(p["lambda_c"])) for m, p in MODELS.items()} | set(table_pairs()))


# ---------------------------------------------------------------- attack settings
def attack_settings(**overrides):
    """The fields of ``hne_core.attack.job.AttackSettings`` from config (``attack``, ``decoding``,
    ``data.text_case``): one ``params:`` value for every attacking job, so a changed setting reruns them all;
    ``overrides`` for jobs that attack otherwise (the budget sweep's ε and α)."""
    a = config["attack"]
    settings = {
        "eps": a["epsilon"],
        "step_size": a["step_size"],
        "clip": a["clip"],
        "engine": a["engine"],
        "batch_size": a["batch_size"],
        "batch_samples": a["batch_samples"],
        "autocast": a["autocast"],
        "checkpoint_every": a["checkpoint_every"],
        "on_nan": a["on_nan"],
        "target_length": a["target_length"],
        "label_smoothing": a["label_smoothing"],
        "text_case": config["data"]["text_case"],
        "decoding": config["decoding"]["mode"],
        "decoding_batch_size": config["decoding"]["batch_size"],
    }
    return {**settings, **overrides}


# ---------------------------------------------------------------- job resources and trainer settings
RESOURCE_KEYS = ("threads", "gpu", "cpus_per_gpu", "mem_mb", "runtime")


def trainer_settings(section):
    """A training section's trainer settings, for ``params:``. The job's resources (and the fine-tuning grid)
    are left out, so that a changed runtime, memory or GPU count, or one λ added to the grid, reruns no
    training job that already finished."""
    return {k: v for k, v in config[section].items() if k not in (*RESOURCE_KEYS, "grid")}


def job_resources(section):
    """``resources:`` of a job from its config section: memory, runtime (minutes) and GPUs; ``cpus_per_gpu``
    only when the job asks for a GPU (the SLURM executor then submits ``--gpus=N --cpus-per-gpu=C`` instead
    of ``--cpus-per-task=threads``). gpu 0 requests no GPU anywhere."""
    cfg = config[section]
    res = {"mem_mb": cfg["mem_mb"], "runtime": cfg["runtime"], "gpu": cfg["gpu"]}
    if cfg["gpu"] > 0:
        res["cpus_per_gpu"] = cfg["cpus_per_gpu"]
    return res


# ---------------------------------------------------------------- folders handed to scripts
def input_dir(key, up=1):
    """The folder ``up`` levels above a rule's named input, derived from the input itself so that a rule's
    folders and files cannot disagree (and no path is hard-coded twice)."""
    return lambda wildcards, input: _up(input[key], up)


def output_dir(key, up=1):
    return lambda wildcards, output: _up(output[key], up)


def _up(files, up):
    path = files if isinstance(files, str) else files[0]
    for _ in range(up):
        path = os.path.dirname(path)
    return path


# ---------------------------------------------------------------- results
TABLE_NAMES = [t["name"] for t in config["tables"]]
TABLE_FORMATS = ["csv", "md", "tex", "html"]  # html: the paper's colours, shown as is in the report
PAPER_RESULTS = workflow.source_path("../hne_core/results/paper_results.csv")


def results_path(kind, name):
    """``tables/<name>`` or ``figures/<name>`` under the results folder."""
    return f"{R}/{kind}/{name}"


def attacked_cells():
    """Every attacked (model, λC(i), milestone), in one order shared by a rule's inputs and its params."""
    return [(m, lci, steps) for m, lci in table_pairs() for steps in MILESTONES]


def attack_files(name):
    return [f"{attack_dir(R, m, lci, steps)}/{name}" for m, lci, steps in attacked_cells()]


def eval_files(name, pairs=None):
    """``name`` of the evaluation of each (model, λC(i)) pair (default: every evaluated pair)."""
    return [f"{eval_dir(R, m, lci)}/{name}" for m, lci in (evaluation_pairs() if pairs is None else pairs)]


def results_outputs():
    return [
        results_path("tables", "advtwer.csv"),
        *(results_path("tables", f"{n}.{ext}") for n in TABLE_NAMES for ext in TABLE_FORMATS),
        *(results_path("tables", f"{n}{REFWER_SUFFIX}.{ext}") for n in TABLE_NAMES for ext in TABLE_FORMATS),
        *(results_path("tables", f"benign.{ext}") for ext in TABLE_FORMATS),
        results_path("tables", "paper_comparison.md"),
        results_path("figures", "figure1.png"),
        results_path("figures", "figure1.pdf"),
        results_path("figures", "training_curves.png"),
    ]


# ---------------------------------------------------------------- targets
def get_final_output():
    """Everything `snakemake` builds by default; later stages add their aggregates here."""
    return [
        *expand(data_path("{split}", "{f}"), split=SPLITS, f=ESPNET_FILES),
        data_path("report.md"),
        TOKENIZER["bpe"],
        TOKENIZER["tokens"],
        f"{R}/tokenizer/coverage.json",
        *expand(f"{R}/models/{{model}}/train_curve.png", model=sorted(MODELS)),
        *eval_files("summary.json"),
        f"{eval_dir(R, 'pretrained', 0.0)}/summary.json",
        *attack_files("summary.json"),
        *results_outputs(),
        *listen_outputs(),  # rules/listen.smk
        *(robustness_outputs() if ROBUSTNESS_ENABLED else []),  # rules/robustness.smk
    ]


# ---------------------------------------------------------------- robustness (rules/robustness.smk)

ROB = config["robustness"]
LAST = MILESTONES[-1]


def _robustness_settings():
    """(model, λC(i)) pairs given the sweep, noise and untargeted checks: robustness.settings, every one a table
    column, or every table column."""
    pairs = {setting_of_pair(m, i): (m, i) for m, i in table_pairs()}
    if ROB["settings"] is None:
        return sorted(pairs.values())
    chosen = []
    for k, text in enumerate(ROB["settings"]):
        if parse_setting(text) not in pairs:
            raise WorkflowError(
                f"Invalid config key 'robustness.settings.{k}': {text} (λA/λC(t)/λC(i)) is not a "
                "column of any table, so it is not attacked"
            )
        chosen.append(pairs[parse_setting(text)])
    return sorted(chosen)


ROBUSTNESS_PAIRS = _robustness_settings()
# the sweep's multipliers that need a job: ×1 is the attack itself
SWEEP_SCALES = [fmt_weight(s) for s in ROB["epsilon_scales"] if abs(float(s) - 1.0) > 1e-9]


def _seed_pairs():
    """(model, λC(i)) of robustness.seed_settings (table columns), retrained with every robustness.seeds."""
    if config["seed"] in ROB["seeds"]:
        raise WorkflowError(f"Invalid config key 'robustness.seeds': {config['seed']} is the run's own `seed`")
    columns = {setting_of_pair(m, i): (m, i) for m, i in table_pairs()}
    out = []
    for k, text in enumerate(ROB["seed_settings"]):
        if parse_setting(text) not in columns:
            raise WorkflowError(f"Invalid config key 'robustness.seed_settings.{k}': {text} is not a table column")
        out.append(columns[parse_setting(text)])
    return sorted(out) if ROB["seeds"] else []


SEED_PAIRS = _seed_pairs()


def _table_pair_sets():
    return [
        {
            (model_id(c["lambda_a"], c["lambda_c_train"], c.get("tasks")), fmt_weight(c["lambda_c_infer"]))
            for c in t["columns"]
        }
        for t in config["tables"]
    ]


def transfer_victims():
    """Every table column sharing a table with another column."""
    return sorted({p for cols in _table_pair_sets() if len(cols) > 1 for p in cols})


def transfer_sources(wildcards):
    """The final state (and summary, for its setting) of every other column of the victim's tables."""
    victim = (wildcards.model, fmt_weight(wildcards.lci))
    sources = sorted({p for cols in _table_pair_sets() if victim in cols for p in cols} - {victim})
    return {
        "states": [f"{attack_dir(R, m, l, LAST)}/state.npz" for m, l in sources],
        "summaries": [f"{attack_dir(R, m, l, LAST)}/summary.json" for m, l in sources],
    }


def adaptive_family(model, lci):
    """The adaptive attackers of (model, λC(i)) (robustness.adaptive): every λC(a) other than λC(i) that the
    model's heads allow (CTC for λC(a) > 0, the decoder for λC(a) < 1) with μ = 0, and every μ ≠ 0 at λC(a) = λC(i)
    when the model has an accent discriminator."""
    weights, family = model_weights(model), ROB["adaptive"]
    lct, lci = float(weights["lambda_c"]), float(lci)
    members = [
        attacker_id(a, 0.0)
        for a in family["lambda_c_attack"]
        if fmt_weight(a) != fmt_weight(lci) and (float(a) == 0.0 or lct > 0.0) and (float(a) == 1.0 or lct < 1.0)
    ]
    if ACCENT_TASK in model_tasks(model):  # μ weighs the accent head's loss
        members += [attacker_id(lci, mu) for mu in family["mu"] if float(mu) != 0.0]
    return sorted(set(members))


ADAPTIVE_JOBS = [(a, m, l) for m, l in ROBUSTNESS_PAIRS for a in adaptive_family(m, l)]


def adaptive_files(name):
    """``name`` of every adaptive attack job at every milestone (none unless robustness.enabled)."""
    jobs = ADAPTIVE_JOBS if ROBUSTNESS_ENABLED else []
    return [f"{adaptive_dir(R, a, m, l, k)}/{name}" for a, m, l in jobs for k in MILESTONES]


previous_adaptive_state = chained_from(lambda wc, k: adaptive_dir(R, wc.attacker, wc.model, wc.lci, k))
previous_untargeted_state = chained_from(lambda wc, k: untargeted_dir(R, wc.model, wc.lci, k))


def robustness_tables():
    return [t["name"] for t in config["tables"] if len(t["columns"]) > 1]


def robustness_outputs():
    """The checks' final outputs (get_final_output adds them when robustness.enabled)."""
    return [
        results_path("tables", "robustness_checks.csv"),
        results_path("tables", "robustness_checks.md"),
        results_path("tables", "robustness_seeds.csv"),
        results_path("figures", "budget_sweep.png"),
        results_path("figures", "transfer.png"),
        *(results_path("tables", f"transfer_{n}.{ext}") for n in robustness_tables() for ext in ("csv", "md")),
        *(results_path("tables", f"{t['name']}_adaptive.{ext}") for t in config["tables"] for ext in ("csv", "md")),
    ]


# ---------------------------------------------------------------- listening (rules/listen.smk)
PERCEPTUAL_TABLE = "perceptual"  # results/tables/perceptual.*: the medians; no config table may take the name
PERCEPTUAL_UTTERANCES = "perceptual_utterances"  # results/tables/perceptual_utterances.csv: every scored utterance
LISTEN_PAGE = f"{R}/listen/index.html"


def _check_listen(cfg):
    """The perceptual table's files share results/tables/ with the config's tables: their names must differ."""
    for t, table in enumerate(cfg["tables"]):
        if table["name"] in (PERCEPTUAL_TABLE, PERCEPTUAL_UTTERANCES):
            raise WorkflowError(
                f"Invalid config key 'tables.{t}' ({table['name']}): the name is taken by the perceptual table "
                f"({PERCEPTUAL_TABLE}, {PERCEPTUAL_UTTERANCES})"
            )


_check_listen(config)


def last_milestone_files(name):
    """``name`` of every attacked (model, λC(i)) at the last milestone: what the listening page plays."""
    return [f"{attack_dir(R, m, lci, MILESTONES[-1])}/{name}" for m, lci in table_pairs()]


def listen_outputs():
    """The perceptual table, its per-utterance scores and the listening page (get_final_output adds them)."""
    return [
        *(results_path("tables", f"{PERCEPTUAL_TABLE}.{ext}") for ext in TABLE_FORMATS),
        results_path("tables", f"{PERCEPTUAL_UTTERANCES}.csv"),
        LISTEN_PAGE,
    ]
