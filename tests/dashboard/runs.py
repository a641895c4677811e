"""Constructed run folders for the dashboard tests, written through the same models the pipeline uses."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson

from sae_interp.results import (
    ExampleOut,
    ExplanationOut,
    LatentResult,
    LatentStatistics,
    RefusalAlignment,
    ScoreOut,
    latent_item_path,
    latent_key,
)

EVIL = "<script>alert(1)</script>"
EVIL_EXPLANATION = f'{EVIL} quotes " and & ampersands <img src=x onerror=alert(2)>'
SCORES = {  # latent -> {scorer: score}; None is an undefined score
    ("model.layers.13", 7): {"detection": 0.9, "fuzzing": 0.7},
    ("model.layers.13", 42): {"detection": 0.3, "fuzzing": None},
    ("model.layers.6", 3): {"detection": 0.6},
}
EXPLANATIONS = {
    ("model.layers.13", 7): "refusal openers such as I cannot",
    ("model.layers.13", 42): EVIL_EXPLANATION,
    ("model.layers.6", 3): "code blocks in markdown",
}
REPORT = {
    "schema_version": 1,
    "chosen_layer": 13,
    "position": -1,
    "refusal_rates": {"baseline": 0.94, "ablated": 0.06, "actadd": 0.88},
    "candidates": [{"layer": 12, "bypass": 0.1}, {"layer": 13, "bypass": 0.05, "note": "<b>chosen</b>"}],
}


def example(tokens: list[str], activations: list[float], *, quantile: int | None = 1) -> ExampleOut:
    kind = "activating" if quantile is not None else "random"
    return ExampleOut(tokens=tokens, activations=activations, kind=kind, quantile=quantile, row=0, start=3)


def latent_result(
    hookpoint: str, latent: int, explanation: str, scores: dict[str, float | None]
) -> LatentResult:
    """A small but complete latent file; its tokens hold the script payload, whitespace and entities."""
    tokens = [" I", " cannot", "\n", " ", EVIL, "&amp;", '"', "\t"]
    acts = [0.0, 2.5, 0.5, 0.0, 1.25, 0.0, 0.1, 0.0]
    return LatentResult(
        key=latent_key(hookpoint, latent),
        hookpoint=hookpoint,
        latent=latent,
        explanation=ExplanationOut(
            text=explanation, explainer="default", prompt_version="v3", raw=explanation
        ),
        scores={
            name: ScoreOut(
                scorer=name,
                prompt_version="s1",
                score=value,
                metrics={"accuracy": value, "auc": 0.5},
                by_quantile={"1": {"recall": 0.8}, "non_activating": {"recall": 0.25}},
            )
            for name, value in scores.items()
        },
        statistics=LatentStatistics(
            count=12, frequency=0.0004, max=2.5, mean=1.1, hist=[5, 4, 3], hist_edges=[0.0, 1.0, 2.0, 3.0]
        ),
        train=[example(tokens, acts), example(tokens[:4], acts[:4], quantile=2)],
        test=[example(tokens, acts)],
        non_activating=[example(tokens, [0.0] * len(tokens), quantile=None)],
        refusal=RefusalAlignment(cosine=0.5 - latent / 100, mean_diff=0.3, rank=latent)
        if hookpoint == "model.layers.13"
        else None,
    )


def write_latents(run: Path, results: list[LatentResult]) -> None:
    for r in results:
        path = run / latent_item_path(r.key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps(r.model_dump()))


def write_run(run: Path) -> list[LatentResult]:
    """The three latents of SCORES plus every optional file of a run folder."""
    results = [latent_result(hp, n, EXPLANATIONS[hp, n], scores) for (hp, n), scores in SCORES.items()]
    write_latents(run, results)
    (run / "summary.json").write_bytes(
        orjson.dumps({"schema_version": 1, "counts": {"done": 3, "failed": 1}})
    )
    (run / "config.json").write_bytes(orjson.dumps({"schema_version": 1, "model": "qwen", "note": EVIL}))
    (run / "failures.jsonl").write_bytes(
        orjson.dumps({"key": "model.layers.13/99", "stage": "explain", "error": f"ValueError: {EVIL}"})
        + b"\n"
    )
    (run / "refusal").mkdir()
    (run / "refusal" / "report.json").write_bytes(orjson.dumps(REPORT))
    with (run / "refusal" / "latents.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["hookpoint", "latent", "cosine", "mean_diff", "rank"])
        writer.writerow(["model.layers.13", 7, 0.43, 0.3, 1])
        writer.writerow(["model.layers.13", 1234, 0.2, 0.1, 2])  # aligned but not explained: no page
    return results
