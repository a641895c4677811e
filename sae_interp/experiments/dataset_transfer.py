"""Are SAEs dataset dependent? Train one SAE per (data set, model) and ask how well each captures r.

    python -m sae_interp.experiments.dataset_transfer                  # Qwen, layer 13, chat vs web
    python -m sae_interp.experiments.dataset_transfer --small --models gemma-3-270m --layer 6
    python -m sae_interp.experiments.dataset_transfer --models CHAT_MODEL BASE_MODEL --n-tokens 200000

A small-scale reproduction of Kissane et al., "SAEs are highly dataset dependent" (REFERENCE 2).
Steps, each cached: (1) for every model in `models` and data set in `datasets`, train an SAE of the
same architecture and size on the same token budget with train_sae's own `run` (activation stores
and SAEs live under the user cache, keyed by their settings, and are reused when the settings
match); (2) read the refusal residuals (last position, `prompts.n_prompts` harmful and harmless
instructions) of the reference model, `models[0]`, at `layer`, and r from them; (3) evaluate every
SAE against that r: refusal fidelity, refusal sparsity and latent steering (each a SAEBench-style
JSON, reused when its eval_config matches), next to the core evaluation train_sae wrote; (4)
write `results.json`, `README.md` (tables and a plain verdict) and PNG plots to `out_dir`.

Every SAE is evaluated on the reference model's direction, as in the seed study, where the
base-model SAEs were tested on the chat model's r: so all models must share d_model. A model of
another width (gemma-3-270m next to Qwen) is refused; its SAEs could not rebuild Qwen's r.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import torch

from sae_interp._io import atomic_write_bytes, atomic_write_json, read_json, user_cache_dir
from sae_interp.config import ConfigError, DType, ModelConfig, check_choice, check_positive, config_to_dict
from sae_interp.evals import LatentSteeringConfig, RefusalActivations, RefusalPromptConfig
from sae_interp.experiments._cli import add_config_arguments, resolve_config, setup_logging, timed_step
from sae_interp.experiments.train_sae import TrainSAERunConfig

__all__ = ["DatasetTransferConfig", "main", "run"]

logger = logging.getLogger(__name__)
SCHEMA_VERSION = 1

SEED_RESULTS = {
    "source": "Kissane et al., Qwen1.5-0.5B-Chat, layer 13, 32768-latent ReLU SAEs, ~400M tokens each",
    "recon_cosine": {
        "chat/chat-model": 0.849,
        "web/chat-model": 0.596,
        "chat/base-model": 0.735,
        "web/base-model": 0.502,
    },
    "max_latent_cosine": {
        "chat/chat-model": 0.678,
        "web/chat-model": 0.411,
        "chat/base-model": 0.492,
        "web/base-model": 0.362,
    },
}
"""REFERENCE section 2: SAE training data / model the SAE was trained on."""

SMALL = {
    "train.n_tokens": 2048,
    "train.ctx_len": 32,
    "train.d_sae": 256,
    "train.k": 8,
    "train.batch_size": 128,
    "train.epochs": 2,
    "train.n_eval_rows": 2,
    "train.eval_batch_size": 2,
    "prompts.n_prompts": 8,
    "steering.n_score_prompts": 4,
    "steering.n_generate": 2,
    "steering.max_new_tokens": 4,
    "steering.n_latents": 2,
    "steering.n_together": 2,
    "steering.batch_size": 4,
    "max_k": 64,
}


def _default_train() -> TrainSAERunConfig:
    # CPU scale: 32k tokens per data set (~2-4 min of Qwen forward each), 8 passes over them.
    return TrainSAERunConfig(n_tokens=32_768, epochs=8)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DatasetTransferConfig:
    """The data x model matrix of SAEs and how each is evaluated against the refusal direction."""

    models: tuple[str, ...] = ("qwen2.5-coder-0.5b-instruct",)
    """Models to train SAEs on (same d_model). The first is the reference: r and steering use it."""
    datasets: tuple[str, ...] = ("chat", "web")
    """SAE training data sets (chat, web or a file), one SAE each per model, equal token budgets."""
    layer: int = 13
    """Residual layer L of the SAEs and of r (input of decoder layer L)."""
    dtype: DType = "auto"
    """Model dtype ("auto": float32 on CPUs without native bf16, bfloat16 on CUDA)."""
    device: str = "auto"
    """Model device."""
    train: TrainSAERunConfig = dataclasses.field(default_factory=_default_train)
    """SAE and training settings shared by every cell; its model, data, layer, out and store_dir are
    set per cell."""
    prompts: RefusalPromptConfig = dataclasses.field(default_factory=RefusalPromptConfig)
    """The instructions that define r."""
    steering: LatentSteeringConfig = dataclasses.field(default_factory=LatentSteeringConfig)
    """Latent steering sizes."""
    max_k: int = 512
    """Largest k of the sparsity curve (capped at d_sae)."""
    sae_root: str = ""
    """Folder of the trained SAEs (one per cell); empty = <user cache>/saes/dataset_transfer."""
    store_root: str = ""
    """Folder of the activation stores (one per cell); empty = train_sae's keyed user-cache folders."""
    out_dir: Path = Path("experiments/dataset_transfer")
    """Report folder: README.md, results.json, PNGs, config.json and per-cell eval JSONs."""

    def __post_init__(self) -> None:  # validate only
        check_choice("dataset_transfer", "dtype", self.dtype, DType)
        check_positive("dataset_transfer", "max_k", self.max_k)
        for name in ("models", "datasets"):
            values = getattr(self, name)
            if not values or len(set(values)) != len(values):
                raise ConfigError(f"dataset_transfer.{name}={values}: give at least one, without repeats")
        if self.layer < 0:
            raise ConfigError(f"dataset_transfer.layer must be >= 0, got {self.layer}")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)


def _digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def _sae_root(cfg: DatasetTransferConfig) -> Path:
    return Path(cfg.sae_root) if cfg.sae_root else user_cache_dir() / "saes" / "dataset_transfer"


def _model_config(cfg: DatasetTransferConfig, name: str) -> ModelConfig:
    return ModelConfig(name=name, dtype=cfg.dtype, device=cfg.device)


def cell_configs(cfg: DatasetTransferConfig) -> dict[tuple[str, str], TrainSAERunConfig]:
    """train_sae config of every (model, data set) cell; its `out` is keyed by the settings."""
    cells = {}
    for model in cfg.models:
        for data in cfg.datasets:
            name = f"{_slug(model)}-{_slug(data)}-L{cfg.layer}"
            cell = dataclasses.replace(
                cfg.train,
                model=_model_config(cfg, model),
                data=data,
                layer=cfg.layer,
                store_dir=str(Path(cfg.store_root) / name) if cfg.store_root else "",
                out=Path(),
            )
            cells[model, data] = dataclasses.replace(
                cell, out=_sae_root(cfg) / f"{name}-{_digest(config_to_dict(cell))}"
            )
    return cells


def _is_trained(cell: TrainSAERunConfig) -> bool:
    """summary.json is written last by train_sae.run: with the same config.json, the cell is done."""
    out = Path(cell.out)
    return (out / "summary.json").is_file() and read_json(out / "config.json") == config_to_dict(cell)


def _train_cells(cfg: DatasetTransferConfig, reference: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """Train every cell not yet trained; returns train_sae's summary per cell."""
    from sae_interp.experiments.train_sae import run as train_one
    from sae_interp.models import load_model_from_config

    cells = cell_configs(cfg)
    for model_name in cfg.models:
        todo = [cell for (m, _), cell in cells.items() if m == model_name and not _is_trained(cell)]
        if not todo:
            continue
        model = reference if model_name == cfg.models[0] else load_model_from_config(todo[0].model)
        if model.spec.d_model != reference.spec.d_model:
            raise ValueError(
                f"{model_name} has d_model {model.spec.d_model} but the reference {cfg.models[0]} has "
                f"{reference.spec.d_model}: its SAEs cannot rebuild the reference's refusal direction "
                "(CONVENTIONS 1); give models of one family and width"
            )
        for cell in todo:
            logger.info("training the SAE of %s on %s -> %s", model_name, cell.data, cell.out)
            train_one(cell, model)
    return {key: read_json(Path(cell.out) / "summary.json") for key, cell in cells.items()}


def _refusal_activations(cfg: DatasetTransferConfig, model: Any) -> RefusalActivations:
    """The reference model's last-position residuals, cached next to the SAEs (a few hundred kB)."""
    from sae_interp.evals import collect_refusal_activations

    key = {"model": model.spec.name, "provenance": model.spec.provenance, "layer": cfg.layer}
    path = _sae_root(cfg) / f"refusal-acts-{_digest({**key, **config_to_dict(cfg.prompts)})}.pt"
    if path.is_file():
        saved = torch.load(path)
        return RefusalActivations(cfg.layer, saved["harmful"], saved["harmless"])
    acts = collect_refusal_activations(model, cfg.layer, cfg.prompts)
    buffer = io.BytesIO()
    torch.save({"harmful": acts.harmful, "harmless": acts.harmless}, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    return acts


def _evaluate_cell(
    cfg: DatasetTransferConfig, model: Any, acts: RefusalActivations, prompts: Any, cell: TrainSAERunConfig
) -> dict[str, dict[str, Any]]:
    """The three refusal evaluations of one SAE (reused when their eval_config matches) and its core eval."""
    from sae_interp.evals import (
        EVAL_TYPE_ID_LATENT_STEERING,
        EVAL_TYPE_ID_REFUSAL_FIDELITY,
        EVAL_TYPE_ID_REFUSAL_SPARSITY,
        evaluate_latent_steering,
        evaluate_refusal_fidelity,
        evaluate_refusal_sparsity,
        saebench_record,
        write_eval_record,
    )
    from sae_interp.sae.io import load_sae

    sae_path = Path(cell.out) / "sae"
    sae = load_sae(sae_path)
    common = {
        "model_name": model.spec.name,
        "layer": cfg.layer,
        "sae_trained_on_model": cell.model.name,
        "sae_trained_on_data": cell.data,
        "prompts": config_to_dict(cfg.prompts),
        "sae_id": str(sae_path),
    }
    evals = {
        EVAL_TYPE_ID_REFUSAL_FIDELITY: ({}, lambda: evaluate_refusal_fidelity(sae, acts)),
        EVAL_TYPE_ID_REFUSAL_SPARSITY: (
            {"max_k": cfg.max_k},
            lambda: evaluate_refusal_sparsity(sae, acts, max_k=cfg.max_k),
        ),
        EVAL_TYPE_ID_LATENT_STEERING: (
            {"steering": config_to_dict(cfg.steering)},
            lambda: evaluate_latent_steering(model, sae, acts.r, cfg.steering, prompts=prompts),
        ),
    }
    folder = cfg.out_dir / "cells" / f"{_slug(cell.model.name)}-{_slug(cell.data)}"
    records = {}
    for eval_type, (extra, evaluate) in evals.items():
        path, eval_config = folder / f"{eval_type}.json", {**common, **extra}
        if path.is_file() and read_json(path)["eval_config"] == eval_config:
            records[eval_type] = read_json(path)
            continue
        result = evaluate()
        records[eval_type] = saebench_record(
            eval_type, eval_config, result.metrics, result.details, sae, sae_id=str(sae_path)
        )
        write_eval_record(path, records[eval_type])
    # The core eval stays beside the SAE: its per-latent details are large, results.json keeps its metrics.
    records["core"] = read_json(Path(cell.out) / "core_eval_results.json")
    return records


def _cell_row(
    model: str, data: str, records: dict[str, dict[str, Any]], summary: dict[str, Any]
) -> dict[str, Any]:
    """The numbers of one cell that go into results.json and the tables."""
    fidelity = records["refusal_fidelity"]["eval_result_metrics"]
    core = records["core"]["eval_result_metrics"]
    sparsity = records["refusal_sparsity"]["eval_result_details"]
    return {
        "model": model,
        "data": data,
        "sae": records["refusal_fidelity"]["sae_lens_id"],
        "core_eval_file": str(
            Path(records["refusal_fidelity"]["sae_lens_id"]).parent / "core_eval_results.json"
        ),
        "recon_cosine": fidelity["reconstruction"]["recon_cosine"],
        "recon_relative_mse": fidelity["reconstruction"]["recon_relative_mse"],
        "recon_norm_ratio": fidelity["reconstruction"]["recon_norm_ratio"],
        "max_latent_cosine": fidelity["single_latent"]["max_decoder_cosine"],
        "max_latent": fidelity["single_latent"]["max_decoder_cosine_latent"],
        "sparsity": {"ks": [d["k"] for d in sparsity], "relative_mse": [d["relative_mse"] for d in sparsity]},
        "sparsity_summary": records["refusal_sparsity"]["eval_result_metrics"]["summary"],
        "core": {
            "l0": core["sparsity"]["l0"],
            "fvu": core["reconstruction_quality"]["fvu"],
            "ce_loss_score": core["model_performance_preservation"]["ce_loss_score"],
            "dead_fraction": core["misc_metrics"]["dead_fraction"],
        },
        "steering": records["latent_steering"]["eval_result_metrics"],
        "train": {
            "tokens": summary["store_tokens"],
            "steps": summary["train_steps"],
            "timings_s": summary["timings"],
        },
    }


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _matrix_table(results: dict[str, Any], key: str) -> list[str]:
    """Rows: SAE training data; columns: the model the SAE was trained on."""
    cells = {(c["data"], c["model"]): c[key] for c in results["cells"]}
    models = list(dict.fromkeys(c["model"] for c in results["cells"]))
    datasets = list(dict.fromkeys(c["data"] for c in results["cells"]))
    lines = ["| SAE data \\ SAE model | " + " | ".join(models) + " |", "|---" * (len(models) + 1) + "|"]
    lines += [f"| {d} | " + " | ".join(_fmt(cells.get((d, m))) for m in models) + " |" for d in datasets]
    return lines


def _cells_table(results: dict[str, Any]) -> list[str]:
    header = (
        "| SAE model | data | recon cos | rel. MSE | norm ratio | max latent cos | rel. MSE k=1 | "
        "min k < 0.1 | L0 | FVU | CE score | dead | refusal score: none / r / best latent / top together |"
    )
    lines = [header, "|---" * 13 + "|"]
    for c in results["cells"]:
        score = c["steering"]["refusal_score"]
        steer = " / ".join(
            _fmt(score.get(k))
            for k in ("baseline", "ablate_r", "ablate_best_single_latent", "ablate_top_together")
        )
        core = c["core"]
        lines.append(
            f"| {c['model']} | {c['data']} | {_fmt(c['recon_cosine'])} | {_fmt(c['recon_relative_mse'])} | "
            f"{_fmt(c['recon_norm_ratio'])} | {_fmt(c['max_latent_cosine'])} (#{c['max_latent']}) | "
            f"{_fmt(c['sparsity']['relative_mse'][0])} | {c['sparsity_summary']['min_k_below_0.1']} | "
            f"{core['l0']:.1f} | {_fmt(core['fvu'])} | {_fmt(core['ce_loss_score'])} | "
            f"{core['dead_fraction']:.1%} | {steer} |"
        )
    return lines


def _compare(label: str, chat: float, web: float) -> str:
    word = "higher" if chat > web else "lower" if chat < web else "equal"
    return f"{label} {chat:.3f} (chat) vs {web:.3f} (web): chat {word}"


_VERDICTS = {
    2: ("better than", "the same ordering as"),
    1: ("neither clearly better nor worse than", "a mixed ordering vs"),
    0: ("worse than", "the opposite ordering to"),
}
"""Chat-vs-web wording by how many of (recon cosine, max single-latent cosine) the chat-data SAE wins."""


def _verdict(results: dict[str, Any]) -> list[str]:
    """Plain sentences: does the chat-data SAE capture r better than the web-data one, vs the seed."""
    by_key = {(c["model"], c["data"]): c for c in results["cells"]}
    models = list(dict.fromkeys(c["model"] for c in results["cells"]))
    seed, train = results["seed"], results["config"]["train"]
    lines = []
    for model in models:
        chat, web = by_key.get((model, "chat")), by_key.get((model, "web"))
        if chat is None or web is None:
            lines.append(f"{model}: no chat/web pair of SAEs, so no chat-vs-web verdict.")
            continue
        wins = [chat[key] > web[key] for key in ("recon_cosine", "max_latent_cosine")]
        answer, order = _VERDICTS[sum(wins)]
        lines.append(
            f"SAEs trained on {model}: the chat-data SAE captures r {answer} the web-data SAE here ("
            + "; ".join(
                (
                    _compare("recon cosine", chat["recon_cosine"], web["recon_cosine"]),
                    _compare("max single-latent cosine", chat["max_latent_cosine"], web["max_latent_cosine"]),
                )
            )
            + f"): {order} the seed."
        )
    lines.append(
        f"Seed ({seed['source']}): recon cosine {seed['recon_cosine']['chat/chat-model']} (chat) vs "
        f"{seed['recon_cosine']['web/chat-model']} (web), max single-latent cosine "
        f"{seed['max_latent_cosine']['chat/chat-model']} vs {seed['max_latent_cosine']['web/chat-model']}. "
        f"Our SAEs have {train['d_sae']} latents and saw {train['n_tokens']} tokens x {train['epochs']} "
        "epochs each, thousands of times less data than the seed's: absolute values are not comparable, "
        "only the ordering is."
    )
    return lines


def _plot_sparsity(out: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in results["cells"]:
        ax.plot(
            c["sparsity"]["ks"],
            c["sparsity"]["relative_mse"],
            marker="o",
            label=f"{c['data']} / {c['model']}",
        )
    ax.set(
        xscale="log",
        xlabel="k latents (top |mean activation difference|)",
        ylabel="relative MSE of r rebuilt",
    )
    ax.set_title(f"Rebuilding r at layer {results['layer']} from k decoder rows")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sparsity_curves.png", dpi=120)
    plt.close(fig)


def _plot_fidelity(out: Path, results: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = results["cells"]
    labels = [f"{c['data']}\n{Path(c['model']).name}" for c in cells]
    x = torch.arange(len(cells)).float()
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(cells)), 4))
    ax.bar(x - 0.2, [c["recon_cosine"] for c in cells], 0.4, label="recon cosine with r")
    ax.bar(x + 0.2, [c["max_latent_cosine"] for c in cells], 0.4, label="max single-latent cosine")
    seed = results["seed"]
    for value, style in ((seed["recon_cosine"], "--"), (seed["max_latent_cosine"], ":")):
        for name in ("chat/chat-model", "web/chat-model"):
            ax.axhline(value[name], color="grey", linestyle=style, linewidth=0.8)
    ax.set_xticks(x.tolist(), labels, fontsize=8)
    ax.set(ylim=(0, 1), ylabel="cosine", title="SAE data x model (grey: seed chat/web on chat model)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "fidelity.png", dpi=120)
    plt.close(fig)


def write_report(out: Path, results: dict[str, Any]) -> list[str]:
    """README.md and the two PNGs of a finished study; returns the verdict lines."""
    verdict = _verdict(results)
    train = results["config"]["train"]
    lines = [
        "# SAEs are dataset dependent: refusal direction at small scale",
        "",
        f"Reference model {results['reference_model']}, layer {results['layer']}, last position, "
        f"{results['config']['prompts']['n_prompts']} harmful vs harmless prompts "
        f"(|r| = {results['r_norm']:.3g}). "
        f"Each SAE: {train['arch']}, d_sae {train['d_sae']}, k {train['k']}, "
        f"{results['cells'][0]['train']['tokens']} stored tokens x {train['epochs']} epochs. "
        "Written by `python -m sae_interp.experiments.dataset_transfer`; config in `config.json`, numbers in "
        "`results.json`, SAEBench-style refusal evaluations per SAE in `cells/` (core evaluations stay "
        "beside each SAE in the user cache: see `core_eval_file` in results.json).",
        "",
        "## Verdict",
        "",
        *[f"- {line}" for line in verdict],
        "",
        "## Refusal reconstruction cosine (rows: SAE training data; columns: model the SAE was trained on)",
        "",
        *_matrix_table(results, "recon_cosine"),
        "",
        "## Max single-latent decoder cosine with r",
        "",
        *_matrix_table(results, "max_latent_cosine"),
        "",
        "## Per SAE",
        "",
        *_cells_table(results),
        "",
        "Refusal scores are mean log-odds of a refusal-starting next token on held-out harmful prompts, with "
        "nothing ablated / r ablated / the single latent whose ablation lowers it most / the top latents "
        "(by decoder cosine with r) ablated together. Plots: `fidelity.png`, `sparsity_curves.png`.",
        "",
        f"Timings (s): {results['timings_s']}",
        "",
    ]
    atomic_write_bytes(out / "README.md", "\n".join(lines).encode())
    _plot_sparsity(out, results)
    _plot_fidelity(out, results)
    return verdict


def run(cfg: DatasetTransferConfig) -> dict[str, Any]:
    """Train (or reuse) every cell's SAE, evaluate each against r, write the report; returns results."""
    from sae_interp.evals import steering_prompts
    from sae_interp.models import load_model_from_config

    timings: dict[str, float] = {}
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(cfg.out_dir / "config.json", {"schema_version": SCHEMA_VERSION, **config_to_dict(cfg)})
    with timed_step("load_reference_model", timings):
        reference = load_model_from_config(_model_config(cfg, cfg.models[0]))
    with timed_step("train_saes", timings):
        summaries = _train_cells(cfg, reference)
    with timed_step("refusal_activations", timings):
        acts = _refusal_activations(cfg, reference)
        prompts = steering_prompts(reference, cfg.steering)
    cells = []
    with timed_step("refusal_evals", timings):
        for (model, data), cell in cell_configs(cfg).items():
            records = _evaluate_cell(cfg, reference, acts, prompts, cell)
            cells.append(_cell_row(model, data, records, summaries[model, data]))
    results = {
        "schema_version": SCHEMA_VERSION,
        "config": config_to_dict(cfg),
        "reference_model": reference.spec.name,
        "layer": cfg.layer,
        "r_norm": float(acts.r.norm()),
        "cells": cells,
        "seed": SEED_RESULTS,
        "timings_s": timings,
    }
    results["verdict"] = write_report(cfg.out_dir, results)
    atomic_write_json(cfg.out_dir / "results.json", results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.experiments.dataset_transfer",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--models", nargs="+", help="models (same d_model); the first is the reference")
    parser.add_argument("--datasets", nargs="+", help="SAE training data sets")
    parser.add_argument("--layer", type=int, help="residual layer L (input of decoder layer L)")
    parser.add_argument("--n-tokens", type=int, help="training tokens per SAE (equal for every cell)")
    parser.add_argument("--d-sae", type=int, help="latents per SAE")
    parser.add_argument("--out-dir", type=Path, help="report folder")
    parser.add_argument("--small", action="store_true", help="tiny sizes, for tests")
    add_config_arguments(parser, "DatasetTransferConfig")
    args = parser.parse_args(argv)
    setup_logging()
    flags = {"models": "models", "datasets": "datasets", "layer": "layer", "out_dir": "out_dir"}
    flags |= {"n_tokens": "train.n_tokens", "d_sae": "train.d_sae"}
    small = [f"{k}={json.dumps(v)}" for k, v in SMALL.items()] if args.small else []
    cfg = resolve_config(parser, DatasetTransferConfig, args, flags, small)
    results = run(cfg)
    print("\n".join(results["verdict"]))
    print(f"report: {cfg.out_dir / 'README.md'}  results: {cfg.out_dir / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
