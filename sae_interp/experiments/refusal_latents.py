"""The main job: find the refusal direction and the SAE latents aligned with it, explain and score them.

    python -m sae_interp.experiments.refusal_latents            # embedded Qwen, CPU defaults
    python -m sae_interp.experiments.refusal_latents --small    # a minute-scale run for tests
    python -m sae_interp.experiments.refusal_latents --model PATH --layers 10 13 16

Steps (each logs its time; a repeated run reuses what is done):
1. load the model (default: the embedded Qwen2.5-Coder-0.5B-Instruct, which refuses);
2. the difference-of-means refusal direction r at candidate layers (last position), with the
   held-out AUC of its projection; the layer chosen by bypass, induce and KL scores;
3. refusal rates of greedy generations on the test splits: plain, r ablated, r added;
4. an SAE at that layer (`--set latents.sae=PATH`, or trained on chat data and cached), and every
   latent ranked by the cosine of its decoder row with r (refusal/latents.csv);
5. the top latents cached over the chat corpus, explained and scored (detection and embedding by
   default) by the LLM client of `latents.client` (default: in-process Qwen2.5-Coder-0.5B);
6. `explanations/<run>/`: config.json, refusal/report.json, refusal/latents.csv, one JSON per
   latent, summary.json and the HTML browser (index.html).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import re
import sys
from pathlib import Path
from typing import Any

import torch

from sae_interp._io import atomic_write_json, read_json
from sae_interp._runfolder import RunFolderMismatch
from sae_interp.config import ConfigError, ModelConfig, check_positive, config_to_dict
from sae_interp.experiments._cli import add_config_arguments, resolve_config, setup_logging, timed_step
from sae_interp.experiments._latent_steps import (
    LatentStepsConfig,
    aligned_latents_step,
    cache_step,
    explain_step,
    sae_step,
)

__all__ = ["RefusalLatentsConfig", "main", "run"]

logger = logging.getLogger(__name__)
SCHEMA_VERSION = 1
BASE_MODEL_NOTE = (
    "This model has no chat template: it is a base model and barely refuses, so the direction measured "
    "here is the harmful-vs-harmless direction, and refusal rates near zero are expected, not a failure."
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class RefusalLatentsConfig:
    """Everything the main job needs; `--small` shrinks the counts for tests."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """The model to study (default: the embedded Qwen2.5-Coder-0.5B-Instruct, which refuses)."""
    layers: tuple[int, ...] = ()
    """Residual layers to try; empty = 7 evenly spaced layers in [0.2, 0.8) of the depth."""
    n_train: int = 16
    """Harmful and harmless train instructions each, for the difference of means."""
    n_val: int = 16
    """Further train-split instructions each, for choosing the layer (bypass/induce/KL)."""
    n_test: int = 32
    """Held-out harmful and harmless test instructions each, for AUC, scores and refusal rates."""
    max_new_tokens: int = 24
    """Greedy tokens generated per prompt for refusal rates."""
    batch_size: int = 32
    """Prompts per forward or generation batch. Greedy decoding on a CPU is bound by reading the
    weights once per step, whatever the batch: 32 rows decode at 1.3x the step time of 8 (Qwen, 2
    cores), so the 32 test prompts of a condition generate in one batch."""
    system_prompt: str | None = None
    """System prompt in the chat template; None keeps the model's default."""
    out_dir: Path = Path("explanations")
    """Parent folder of run folders."""
    run_name: str = ""
    """Run folder name; empty derives it from the model name."""
    latents: LatentStepsConfig = dataclasses.field(default_factory=LatentStepsConfig)
    """The SAE, latent-cache and explanation steps."""

    def __post_init__(self) -> None:
        for name in ("n_train", "n_val", "n_test", "max_new_tokens", "batch_size"):
            check_positive("refusal_latents", name, getattr(self, name))
        if any(layer < 0 for layer in self.layers):
            raise ConfigError(f"refusal_latents.layers={self.layers}: layers are >= 0")

    def run_dir(self) -> Path:
        name = self.run_name or re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.model.name).name) + "-refusal"
        return self.out_dir / name


SMALL = {
    "n_train": 4, "n_val": 4, "n_test": 4, "max_new_tokens": 8, "batch_size": 4,
    "latents.sae_train.n_tokens": 2048, "latents.sae_train.d_sae": 256, "latents.sae_train.k": 8,
    "latents.sae_train.batch_size": 256, "latents.sae_train.n_eval_rows": 2, "latents.sae_train.ctx_len": 64,
    "latents.n_latents": 2, "latents.cache_rows": 48, "latents.loader.min_examples": 2,
    "latents.loader.n_train": 4, "latents.loader.n_test": 4, "latents.loader.n_non_activating": 4,
    "latents.explain.scorers.names": ["detection", "embedding"], "latents.explain.explainer.max_tokens": 24,
    "latents.client.model": "gemma-3-270m",
}  # fmt: skip


def _prompt_sets(model: Any, cfg: RefusalLatentsConfig) -> dict[tuple[str, str], Any]:
    """Encoded prompts by (harmful|harmless, train|val|test); val is the train split after n_train."""
    from sae_interp.data import load_instructions
    from sae_interp.models import encode_chat

    counts = {
        "train": (0, cfg.n_train),
        "val": (cfg.n_train, cfg.n_train + cfg.n_val),
        "test": (0, cfg.n_test),
    }
    sets = {}
    for kind in ("harmful", "harmless"):
        splits = {split: load_instructions(kind, split=split) for split in ("train", "test")}
        for name, (lo, hi) in counts.items():
            texts = splits["test" if name == "test" else "train"][lo:hi]
            sets[kind, name] = encode_chat(model, texts, cfg.system_prompt)
    return sets


def _direction_step(model: Any, cfg: RefusalLatentsConfig, prompts: dict) -> tuple[Any, list[dict]]:
    from sae_interp.refusal.direction import (
        candidate_layers,
        fit_directions,
        last_position_resid,
        projection_auc,
    )

    layers = cfg.layers or candidate_layers(model.spec.n_layers)
    resid = {
        key: last_position_resid(model, prompts[key], layers, batch_size=cfg.batch_size)
        for key in prompts
        if key[1] in ("train", "test")
    }
    directions = fit_directions(resid["harmful", "train"], resid["harmless", "train"])
    aucs = [
        {
            "layer": layer,
            "norm": float(directions.at(layer).norm()),
            "test_projection_auc": projection_auc(
                resid["harmful", "test"][layer], resid["harmless", "test"][layer], directions.at(layer)
            ),
        }
        for layer in layers
    ]
    return directions, aucs


def _rates_step(model: Any, cfg: RefusalLatentsConfig, prompts: dict, layer: int, r: Any) -> dict[str, Any]:
    """Greedy generations and substring-judged refusal rates, with and without interventions."""
    from sae_interp.models import Ablate, AddVector, generate
    from sae_interp.refusal.metrics import refusal_rate

    conditions = {
        "harmful": ("harmful", []),
        "harmless": ("harmless", []),
        "harmful_ablated": ("harmful", [Ablate(r)]),
        "harmless_actadd": ("harmless", [AddVector(layer, r)]),
    }
    out: dict[str, Any] = {}
    for name, (kind, interventions) in conditions.items():
        texts = generate(
            model,
            prompts[kind, "test"],
            max_new_tokens=cfg.max_new_tokens,
            interventions=interventions,
            batch_size=cfg.batch_size,
        )
        out[name] = {"refusal_rate": refusal_rate(texts), "generations": texts}
    return out


def run(cfg: RefusalLatentsConfig) -> dict[str, Any]:
    """Run every step; returns the report (also written to refusal/report.json).

    The refusal part is reused when the report was made with the same refusal settings; the SAE,
    cache and explanation steps reuse their own cached results.
    """
    from sae_interp.models import load_model_from_config

    run_dir = cfg.run_dir()
    report_path = run_dir / "refusal" / "report.json"
    resolved = config_to_dict(cfg)
    refusal_settings = {k: v for k, v in resolved.items() if k != "latents"}
    if not (run_dir / "config.json").is_file():  # the explanation pipeline records its own later
        atomic_write_json(run_dir / "config.json", {"schema_version": SCHEMA_VERSION, **resolved})
    timings: dict[str, float] = {}
    with timed_step("load_model", timings):
        model = load_model_from_config(cfg.model)
    if report_path.is_file() and read_json(report_path).get("refusal_config") == refusal_settings:
        logger.info("%s has the refusal part for these settings; reusing it", report_path)
        report = read_json(report_path)
    else:
        report = _refusal_part(model, cfg, timings)
        report["refusal_config"] = refusal_settings
        atomic_write_json(report_path, report)
    report.update(_latent_part(model, cfg, report, timings))
    report["config"] = resolved
    report["timings_s"] = {**report.get("timings_s", {}), **timings}
    atomic_write_json(report_path, report)
    return report


def _latent_part(
    model: Any, cfg: RefusalLatentsConfig, report: dict[str, Any], timings: dict[str, float]
) -> dict[str, Any]:
    """SAE, aligned latents, cache and explanations at the SAE's layer."""
    from sae_interp.refusal.attribution import refusal_attribution
    from sae_interp.refusal.direction import fit_directions, last_position_resid
    from sae_interp.refusal.metrics import refusal_token_ids

    run_dir, steps = cfg.run_dir(), cfg.latents
    with timed_step("sae", timings):
        sae, layer, sae_path = sae_step(model, steps, report["chosen_layer"])
    with timed_step("aligned_latents", timings):
        prompts = {kind: encode_chat_train(model, cfg, kind) for kind in ("harmful", "harmless")}
        resid = {
            kind: last_position_resid(model, p, [layer], batch_size=cfg.batch_size)[layer]
            for kind, p in prompts.items()
        }
        r = fit_directions({layer: resid["harmful"]}, {layer: resid["harmless"]}).at(layer)
        attribution = refusal_attribution(
            model,
            sae,
            layer,
            prompts["harmful"],
            refusal_token_ids(model.tokenizer),
            batch_size=cfg.batch_size,
        )
        ranked = aligned_latents_step(
            sae, r, resid["harmful"], resid["harmless"], run_dir / "refusal" / "latents.csv", attribution
        )
    chosen = [a.latent for a in ranked[: steps.n_latents]]
    with timed_step("latent_cache", timings):
        cache_dir = cache_step(model, sae, layer, chosen, steps)
    with timed_step("explanations", timings):
        explained = explain_step(
            model, cache_dir, model.spec.hook_name(layer), ranked, steps, run_dir, config_to_dict(cfg)
        )
    return {
        "sae": {"path": sae_path, "layer": layer, "hookpoint": model.spec.hook_name(layer),
                "d_sae": sae.cfg.d_sae, "architecture": sae.cfg.architecture},
        "aligned_latents": [dataclasses.asdict(a) for a in ranked[: steps.n_latents]],
        "latent_cache": str(cache_dir),
        "explanations": explained,
    }  # fmt: skip


def encode_chat_train(model: Any, cfg: RefusalLatentsConfig, kind: str) -> Any:
    """The first `n_train` train-split instructions of `kind`, in the model's chat template."""
    from sae_interp.data import load_instructions
    from sae_interp.models import encode_chat

    return encode_chat(model, load_instructions(kind, split="train")[: cfg.n_train], cfg.system_prompt)


def _refusal_part(model: Any, cfg: RefusalLatentsConfig, timings: dict[str, float]) -> dict[str, Any]:
    """Direction at candidate layers, layer choice, refusal rates; writes refusal/ files."""
    from sae_interp.refusal.metrics import next_token_logprobs, refusal_scores, refusal_token_ids
    from sae_interp.refusal.selection import score_candidates, select_candidate

    run_dir = cfg.run_dir()
    with timed_step("prompts", timings):
        prompts = _prompt_sets(model, cfg)
        token_ids = refusal_token_ids(model.tokenizer)
    with timed_step("refusal_direction", timings):
        directions, aucs = _direction_step(model, cfg, prompts)
    with timed_step("direction_selection", timings):
        candidates = score_candidates(
            model,
            directions,
            prompts["harmful", "val"],
            prompts["harmless", "val"],
            token_ids,
            batch_size=cfg.batch_size,
        )
        harmful_val = refusal_scores(next_token_logprobs(model, prompts["harmful", "val"]), token_ids)
        chosen, failed = select_candidate(
            candidates, model.spec.n_layers, harmful_baseline=float(harmful_val.mean())
        )
        baseline = {
            kind: float(refusal_scores(next_token_logprobs(model, prompts[kind, "test"]), token_ids).mean())
            for kind in ("harmful", "harmless")
        }
    with timed_step("refusal_rates", timings):
        rates = _rates_step(model, cfg, prompts, chosen.layer, directions.at(chosen.layer))
    report = {
        "schema_version": SCHEMA_VERSION,
        "model": dataclasses.asdict(model.spec),
        "position": -1,
        "candidates": [{**auc, **dataclasses.asdict(c)} for auc, c in zip(aucs, candidates, strict=True)],
        "chosen_layer": chosen.layer,
        "failed_filters": list(failed),
        "harmful_val_refusal_score": float(harmful_val.mean()),
        "refusal_tokens": model.tokenizer.convert_ids_to_tokens(token_ids),
        "mean_refusal_score_test": baseline,
        "refusal_rates_test": {name: v["refusal_rate"] for name, v in rates.items()},
        "base_model_note": None if model.spec.has_chat_template else BASE_MODEL_NOTE,
        "timings_s": dict(timings),
    }
    atomic_write_json(
        run_dir / "refusal" / "generations.json", {n: v["generations"] for n, v in rates.items()}
    )
    torch.save(
        {"layers": directions.layers, "directions": directions.directions},
        run_dir / "refusal" / "directions.pt",
    )
    return report


def _summary(report: dict[str, Any]) -> str:
    lines = [f"{'layer':>5} {'|r|':>8} {'test AUC':>9} {'bypass':>8} {'induce':>8} {'KL':>7}"]
    lines += [
        f"{c['layer']:>5} {c['norm']:>8.2f} {c['test_projection_auc']:>9.3f} {c['bypass']:>8.2f} "
        f"{c['induce']:>8.2f} {c['kl']:>7.3f}"
        for c in report["candidates"]
    ]
    failed = report["failed_filters"]
    note = f" (no layer passed every filter; the chosen one fails: {', '.join(failed)})" if failed else ""
    if "kl" in failed and "effective" not in failed:
        note += (
            f"; KL relaxed: the least-KL direction whose ablation lowers the harmful validation "
            f"refusal score ({report['harmful_val_refusal_score']:.2f}) by at least 1"
        )
    lines.append(f"chosen layer: {report['chosen_layer']}{note}")
    scores = report["mean_refusal_score_test"]
    lines.append(
        f"mean refusal score (log-odds), harmful {scores['harmful']:.2f} vs harmless {scores['harmless']:.2f}"
    )
    lines.append(
        "refusal rates (test): " + ", ".join(f"{k} {v:.0%}" for k, v in report["refusal_rates_test"].items())
    )
    if report["base_model_note"]:
        lines.append(report["base_model_note"])
    sae = report["sae"]
    lines.append(f"SAE: {sae['architecture']} d_sae={sae['d_sae']} at {sae['hookpoint']} ({sae['path']})")
    lines.append(
        "top aligned latents (decoder cosine with r, mean activation diff harmful - harmless, "
        "refusal-score attribution):"
    )
    lines += [
        f"  {a['latent']:>6} {a['cosine']:>7.3f} {a['mean_diff']:>8.3f} {a['attribution']:>9.3g}"
        for a in report["aligned_latents"]
    ]
    ex = report["explanations"]
    lines.append(
        f"explanations: {ex['done']} new, {ex['reused']} reused, {ex['failed']} failed, "
        f"{len(ex['too_few_examples'])} with too few examples"
    )
    lines.append("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["timings_s"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.experiments.refusal_latents",
        description="Find the refusal direction and the SAE latents aligned with it.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--model", help="embedded model name, local HF folder or .gguf")
    parser.add_argument("--layers", type=int, nargs="+", help="residual layers to try")
    parser.add_argument("--out-dir", type=Path, help="parent folder of run folders")
    parser.add_argument("--run-name", help="run folder name")
    parser.add_argument("--small", action="store_true", help="tiny counts, for tests")
    add_config_arguments(parser, "RefusalLatentsConfig")
    args = parser.parse_args(argv)
    setup_logging()
    flags = {"model": "model.name", "layers": "layers", "out_dir": "out_dir", "run_name": "run_name"}
    small = [f"{k}={v}" for k, v in SMALL.items()] if args.small else []
    cfg = resolve_config(parser, RefusalLatentsConfig, args, flags, small)
    try:
        report = run(cfg)
    except RunFolderMismatch as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(_summary(report))
    print(f"report: {cfg.run_dir() / 'refusal' / 'report.json'}")
    print(f"browse: {cfg.run_dir() / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
