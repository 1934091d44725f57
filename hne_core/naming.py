"""The one spelling of every name the workflow puts in paths, wildcards and config: λ weights, model ids, settings,
and the folders of evaluations and attacks.

Dependency-free on purpose (standard library only, nothing imported at module level): the rules import it when
Snakemake parses the workflow, before any job runs, and the jobs and the results library import the same
functions, so a path or a setting spelled by a rule is the one a job or a table reads back.

The templates take ``{wildcard}`` strings as well as values: ``attack_dir(R, "{model}", "{lci}", "{steps}")`` is the
rule's output pattern, ``attack_dir(R, "la0.7_lc0.5", "0.0", 200)`` one job's folder.
"""

from __future__ import annotations

import re

SETTING_KEYS = ("lambda_a", "lambda_c_train", "lambda_c_infer", "tasks")
ACCENT_TASK = "accent"  # the paper's auxiliary task: a model that names no tasks has this one alone, weight 1
TASK_PATTERN = r"[a-z][a-z_]*"  # a task's name: lower-case letters and underscores (its weight follows it in ids)
TASKS_PATTERN = rf"{TASK_PATTERN}[0-9.]+(?:-{TASK_PATTERN}[0-9.]+)*"
MODEL_PATTERN = rf"la[0-9.]+_lc[0-9.]+(?:_{TASKS_PATTERN})?"  # the rules' wildcard constraint
_MODEL_ID = re.compile(rf"la(?P<lambda_a>[0-9.]+)_lc(?P<lambda_c>[0-9.]+)(?:_(?P<tasks>{TASKS_PATTERN}))?")
_TASK = re.compile(rf"(?P<name>{TASK_PATTERN})(?P<weight>[0-9.]+)")


def fmt_weight(x: float | str) -> str:
    """One spelling per weight: 1 -> '1.0', 0.30 -> '0.3' (rounded to 6 digits, so YAML's 0.7 and a CSV's
    0.7000001 are the same weight). A ``{wildcard}`` passes through."""
    if isinstance(x, str) and x.startswith("{"):
        return x
    return repr(round(float(x), 6))


def task_weights(tasks) -> dict[str, float]:
    """{task: weight} in name order from a grid point's ``tasks`` (a mapping), a tasks id ('accent0.5-sex0.5') or
    nothing (None, '', a CSV's NaN): the accent alone, the paper's model. Names and weights are checked here, so
    that every spelling of a model's tasks goes through one gate."""
    if isinstance(tasks, str):
        tasks = parse_tasks_id(tasks) if tasks else None
    elif tasks is not None and not hasattr(tasks, "items"):  # NaN: a CSV cell of an accent-only setting
        tasks = None
    if not tasks:
        return {ACCENT_TASK: 1.0}
    out = {}
    for name in sorted(tasks):
        if not re.fullmatch(TASK_PATTERN, str(name)):
            raise ValueError(f"task name {name!r}: use lower-case letters and underscores only ({TASK_PATTERN})")
        weight = round(float(tasks[name]), 6)
        if not 0.0 < weight <= 1.0:
            raise ValueError(f"task {name!r}: weight {tasks[name]!r} must lie in (0, 1]")
        out[str(name)] = weight
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"task weights must sum to 1, got {out}")
    return out


def tasks_id(tasks) -> str:
    """'' for the accent alone (so that the paper's model ids and settings read as they always have), else
    'sex1.0' or 'accent0.5-sex0.5': every task and its weight w_k of Eq. 3's Σ w_k L_k, in name order."""
    weights = task_weights(tasks)
    if weights == {ACCENT_TASK: 1.0}:
        return ""
    return "-".join(f"{name}{fmt_weight(w)}" for name, w in weights.items())


def parse_tasks_id(text: str) -> dict[str, float]:
    parts = [_TASK.fullmatch(p) for p in str(text).split("-")]
    if not text or any(m is None for m in parts):
        raise ValueError(f"{text!r} is not a tasks id (<task><weight>[-<task><weight>...], e.g. accent0.5-sex0.5)")
    return {m["name"]: float(m["weight"]) for m in parts}


def model_id(lambda_a: float | str, lambda_c: float | str, tasks=None) -> str:
    """'la0.7_lc0.5': a fine-tuned model of the grid, (λA, λC(t)), with its auxiliary tasks after it when they are
    not the accent alone ('la0.7_lc0.0_sex1.0')."""
    tid = "" if isinstance(lambda_a, str) and lambda_a.startswith("{") else tasks_id(tasks)
    return f"la{fmt_weight(lambda_a)}_lc{fmt_weight(lambda_c)}" + (f"_{tid}" if tid else "")


def parse_model_id(model: str) -> tuple[float, float, dict[str, float]]:
    """(λA, λC(t), {task: weight}) of a model id; anything else is a clear error."""
    match = _MODEL_ID.fullmatch(model)
    if match is None:
        raise ValueError(f"{model!r} is not a model id (la<λA>_lc<λC(t)>[_<tasks>], e.g. la0.7_lc0.5)")
    return float(match["lambda_a"]), float(match["lambda_c"]), task_weights(match["tasks"])


def setting_key(
    lambda_a: float, lambda_c_train: float, lambda_c_infer: float, tasks=None
) -> tuple[float, float, float, str]:
    """(λA, λC(t), λC(i), tasks id) with the weights rounded as ``fmt_weight`` rounds: the key two spellings of one
    setting share ('' for the accent alone: the paper's settings)."""
    weights = tuple(round(float(w), 6) for w in (lambda_a, lambda_c_train, lambda_c_infer))
    return (*weights, tasks_id(tasks))  # type: ignore[return-value]


def setting_of(mapping) -> tuple[float, float, float, str]:
    """The setting key of any mapping with ``SETTING_KEYS`` (a table column, a summary, a CSV row); ``tasks`` may be
    absent (the accent alone), a mapping (config) or a tasks id (summaries and CSVs)."""
    return setting_key(*(mapping[k] for k in SETTING_KEYS[:3]), mapping.get("tasks"))


def format_setting(lambda_a: float, lambda_c_train: float, lambda_c_infer: float, tasks=None) -> str:
    """'1.0/0.5/0.0', or '0.7/0.0/0.0/sex1.0' for a model with other tasks: the spelling of config ``findings:``."""
    tid = tasks_id(tasks)
    return "/".join(fmt_weight(w) for w in (lambda_a, lambda_c_train, lambda_c_infer)) + (f"/{tid}" if tid else "")


def parse_setting(text: str) -> tuple[float, float, float, str]:
    """'1.0/0.5/0.0' or '0.7/0.0/0.0/sex1.0' (λA/λC(t)/λC(i)[/tasks]) -> its setting key; else a clear error."""
    parts = str(text).split("/")
    if len(parts) not in (3, 4):
        raise ValueError(f"{text!r} is not λA/λC(t)/λC(i) or λA/λC(t)/λC(i)/<tasks>")
    return setting_key(*parts[:3], parts[3] if len(parts) == 4 else None)


def summary_weights(weights) -> dict:
    """What a job's summary and CSV rows say of their model, from a rule's ``weights`` param ({lambda_a, lambda_c,
    tasks?}): ``lambda_a``, ``lambda_c_train`` and, for a model with other tasks than the accent alone, ``tasks``
    (its tasks id), so that the paper's models' summaries read as they always have."""
    out = {"lambda_a": float(weights["lambda_a"]), "lambda_c_train": float(weights["lambda_c"])}
    tid = tasks_id(weights.get("tasks"))
    return {**out, "tasks": tid} if tid else out


# ------------------------------------------------------------------------------------------------ folders
def eval_dir(results: str, model: str, lci: float | str) -> str:
    """The benign evaluation of ``model`` (a model id, or 'pretrained') decoded at λC(i)."""
    return f"{results}/eval/{model}/infer{fmt_weight(lci)}"


def attack_dir(results: str, model: str, lci: float | str, steps: int | str) -> str:
    """One attack milestone of (model, λC(i)): utterances.csv, summary.json, state.npz."""
    return f"{results}/attacks/{model}/infer{fmt_weight(lci)}/pgd{steps}"


def attack_checkpoint(results: str, model: str, lci: float | str, steps: int | str) -> str:
    """The in-job checkpoint of an attack milestone: beside its folder, not an output, so that a killed job's
    progress survives Snakemake's removal of incomplete outputs."""
    return f"{attack_dir(results, model, lci, steps)}.checkpoint"


def job_name(*parts: object) -> str:
    """'la0.7_lc0.5_infer0.0_pgd200': a job's log and benchmark file name from the parts of its folder."""
    return "_".join(str(p) for p in parts)


# ------------------------------------------------------------------------------------------------ robustness checks
def robustness_dir(results: str) -> str:
    """Everything the robustness checks write besides their tables and figures."""
    return f"{results}/robustness"


def transfer_file(results: str, model: str, lci: float | str) -> str:
    """The victim (model, λC(i))'s decodes of every other attacked model's final δ (its tables' columns)."""
    return f"{robustness_dir(results)}/transfer/{model}/infer{fmt_weight(lci)}/utterances.csv"


def sweep_dir(results: str, scale: float | str, model: str, lci: float | str, steps: int | str) -> str:
    """The attack of (model, λC(i)) with ε and α times ``scale`` (the budget sweep), up to milestone ``steps``."""
    return f"{robustness_dir(results)}/sweep/eps{fmt_weight(scale)}/{model}/infer{fmt_weight(lci)}/pgd{steps}"


def noise_dir(results: str, model: str, lci: float | str) -> str:
    """Random perturbations of (model, λC(i))'s final attack norms, decoded by that model."""
    return f"{robustness_dir(results)}/noise/{model}/infer{fmt_weight(lci)}"


def untargeted_dir(results: str, model: str, lci: float | str, steps: int | str) -> str:
    """The untargeted attack (ascending the loss of the references) of (model, λC(i)) up to ``steps``."""
    return f"{robustness_dir(results)}/untargeted/{model}/infer{fmt_weight(lci)}/pgd{steps}"


ATTACKER_PATTERN = r"lca[0-9.]+_mu-?[0-9.]+"  # the rules' wildcard constraint
_ATTACKER = re.compile(r"lca(?P<lambda_c>[0-9.]+)_mu(?P<mu>-?[0-9.]+)")


def attacker_id(lambda_c_attack: float | str, mu: float | str) -> str:
    """'lca1.0_mu0.0': an adaptive attacker of the robustness checks, its own λC(a) and its μ (the weight of the
    discriminator term)."""
    return f"lca{fmt_weight(lambda_c_attack)}_mu{fmt_weight(mu)}"


def parse_attacker(attacker: str) -> tuple[float, float]:
    """(λC(a), μ) of an attacker id; anything else is a clear error."""
    match = _ATTACKER.fullmatch(attacker)
    if match is None:
        raise ValueError(f"{attacker!r} is not an attacker id (lca<λC(a)>_mu<μ>, e.g. lca1.0_mu0.0)")
    return float(match["lambda_c"]), float(match["mu"])


def adaptive_dir(results: str, attacker: str, model: str, lci: float | str, steps: int | str) -> str:
    """The adaptive ``attacker``'s attack of (model, λC(i)) up to milestone ``steps`` (chained like the attack)."""
    return f"{robustness_dir(results)}/adaptive/{attacker}/{model}/infer{fmt_weight(lci)}/pgd{steps}"


def seed_dir(results: str, seed: int | str) -> str:
    """The models and attacks of one extra training seed (the training-noise check)."""
    return f"{robustness_dir(results)}/seeds/seed{seed}"


def seed_model_dir(results: str, seed: int | str, model: str) -> str:
    return f"{seed_dir(results, seed)}/models/{model}"


def seed_attack_dir(results: str, seed: int | str, model: str, lci: float | str, steps: int | str) -> str:
    return f"{seed_dir(results, seed)}/attacks/{model}/infer{fmt_weight(lci)}/pgd{steps}"


def seed_of(path: str) -> int:
    """The training seed of a file under ``seed_dir``; a clear error for any other path."""
    match = re.search(r"/seeds/seed([0-9]+)/", str(path))
    if match is None:
        raise ValueError(f"{path} lies under no seeds/seed<N>/ folder")
    return int(match[1])
