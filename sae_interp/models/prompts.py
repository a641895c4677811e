"""Chat prompts as token batches: each instruction wrapped in the model's template, left-padded.

Used by every tool that feeds instructions to a model (refusal directions, refusal scores,
generation under interventions, steering), so that all of them see exactly the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from sae_interp.models.loading import LoadedModel

__all__ = ["PromptBatch", "encode_chat"]


@dataclass(frozen=True)
class PromptBatch:
    """Prompts tokenised with left padding, so position -1 is every prompt's last token."""

    input_ids: Tensor
    """[n, seq] token ids."""
    attention_mask: Tensor
    """[n, seq] 1 for real tokens, 0 for padding."""

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def rows(self, start: int, stop: int) -> PromptBatch:
        """Prompts start..stop-1, without the padding columns that none of them needs.

        The whole set is padded to its longest prompt; a batch of short prompts sliced from it
        would otherwise run (and generate after) every one of those padding columns.
        """
        mask = self.attention_mask[start:stop]
        used = mask.any(0).nonzero()
        first = int(used[0]) if len(used) else mask.shape[1]
        return PromptBatch(self.input_ids[start:stop, first:], mask[:, first:])


def encode_chat(model: LoadedModel, instructions: Sequence[str], system: str | None = None) -> PromptBatch:
    """Wrap each instruction as a user turn, append the generation prompt, and tokenise the batch.

    Base models get the plain template installed by `load_model`. The rendered template may
    already contain the BOS token as text; special tokens are then not added a second time.
    """
    tokenizer = model.tokenizer
    texts = []
    for instruction in instructions:
        messages = [{"role": "user", "content": instruction}]
        if system is not None:
            messages.insert(0, {"role": "system", "content": system})
        texts.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    bos = tokenizer.bos_token
    add_special = not (bos and all(t.startswith(bos) for t in texts))
    encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=add_special)
    return PromptBatch(encoded["input_ids"], encoded["attention_mask"])
