"""Print where an embedded model's files are, preparing them first: for servers that read them.

    python -m sae_interp.models gguf gemma-3-270m       # the assembled GGUF (llama.cpp)
    python -m sae_interp.models hf qwen2.5-coder-0.5b   # the converted HF folder (vLLM, transformers)

Only the path goes to stdout, so `--model "$(python -m sae_interp.models gguf gemma)"` works in a
shell script; progress and errors go to stderr.
"""

from __future__ import annotations

import argparse
import sys

from sae_interp.models.embedded import (
    EMBEDDED_MODELS,
    EmbeddedModelError,
    ensure_converted,
    ensure_gguf,
    resolve_embedded,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sae_interp.models", description="Print where an embedded model's files are."
    )
    parser.add_argument("form", choices=["gguf", "hf"], help="the GGUF file or the converted HF folder")
    parser.add_argument("model", help=f"an embedded model or alias: {', '.join(EMBEDDED_MODELS)}")
    args = parser.parse_args(argv)
    model = resolve_embedded(args.model)
    if model is None:
        parser.error(f"{args.model!r} is not an embedded model; choose one of {', '.join(EMBEDDED_MODELS)}")
    try:
        path = ensure_gguf(model) if args.form == "gguf" else ensure_converted(model)
    except EmbeddedModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
