"""Prompt templates for models that ship without a chat template (base models such as gemma-3-270m).

`load_model` installs PLAIN_CHAT_TEMPLATE on such a tokenizer, so every caller renders
conversations with `tokenizer.apply_chat_template` whatever the model. It is deliberately
plain text ("User: ... / Assistant:"), the form a base model has seen in web text, and it marks
the position after the instruction the same way a real template does: the text after the last
user turn ("\\nAssistant:") is the post-instruction region used by the refusal tools.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PLAIN_CHAT_TEMPLATE", "ensure_chat_template", "has_own_chat_template"]

PLAIN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n\n"
    "{% elif message['role'] == 'user' %}User: {{ message['content'] }}\n"
    "{% else %}Assistant: {{ message['content'] }}\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)


def has_own_chat_template(tokenizer: Any) -> bool:
    """True when the tokenizer carries a chat template of its own (not ours)."""
    template = getattr(tokenizer, "chat_template", None)
    return bool(template) and template != PLAIN_CHAT_TEMPLATE


def ensure_chat_template(tokenizer: Any) -> bool:
    """Give `tokenizer` the plain template when it has none.

    Returns:
        True when the tokenizer already had its own template, False when the plain one was set.
    """
    if has_own_chat_template(tokenizer):
        return True
    tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    return False
