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

SETTING_KEYS = ("lambda_a", "lambda_c_train", "lambda_c_infer")
_MODEL_ID = re.compile(r"la(?P<lambda_a>[0-9.]+)_lc(?P<lambda_c>[0-9.]+)")


def fmt_weight(x: float | str) -> str:
    """One spelling per weight: 1 -> '1.0', 0.30 -> '0.3' (rounded to 6 digits, so YAML's 0.7 and a CSV's
    0.7000001 are the same weight). A ``{wildcard}`` passes through."""
    if isinstance(x, str) and x.startswith("{"):
        return x
    return repr(round(float(x), 6))


def model_id(lambda_a: float | str, lambda_c: float | str) -> str:
    """'la0.7_lc0.5': a fine-tuned model of the grid, (λA, λC(t))."""
    return f"la{fmt_weight(lambda_a)}_lc{fmt_weight(lambda_c)}"


def parse_model_id(model: str) -> tuple[float, float]:
    """(λA, λC(t)) of a model id; anything else is a clear error."""
    match = _MODEL_ID.fullmatch(model)
    if match is None:
        raise ValueError(f"{model!r} is not a model id (la<λA>_lc<λC(t)>, e.g. la0.7_lc0.5)")
    return float(match["lambda_a"]), float(match["lambda_c"])


def setting_key(lambda_a: float, lambda_c_train: float, lambda_c_infer: float) -> tuple[float, float, float]:
    """(λA, λC(t), λC(i)) rounded as ``fmt_weight`` rounds: the key two spellings of one setting share."""
    return tuple(round(float(w), 6) for w in (lambda_a, lambda_c_train, lambda_c_infer))  # type: ignore[return-value]


def setting_of(mapping) -> tuple[float, float, float]:
    """The setting key of any mapping with ``SETTING_KEYS`` (a table column, a summary, a CSV row)."""
    return setting_key(*(mapping[k] for k in SETTING_KEYS))


def format_setting(lambda_a: float, lambda_c_train: float, lambda_c_infer: float) -> str:
    """'1.0/0.5/0.0': the spelling of config ``findings:``."""
    return "/".join(fmt_weight(w) for w in (lambda_a, lambda_c_train, lambda_c_infer))


def parse_setting(text: str) -> tuple[float, float, float]:
    """'1.0/0.5/0.0' (λA/λC(t)/λC(i)) -> its setting key; anything else is a clear error."""
    parts = str(text).split("/")
    if len(parts) != 3:
        raise ValueError(f"{text!r} is not λA/λC(t)/λC(i)")
    return setting_key(*parts)


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
