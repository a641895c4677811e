"""The named data sets: sizes, splits, selection rules, disjointness and the ShareGPT cache."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest

from sae_interp.data import (
    DATA_CARDS,
    DATASETS,
    _sharegpt,
    cards_markdown,
    data_card,
    iter_conversations,
    iter_documents,
    iter_texts,
    load_instructions,
)

CARDS_MD = Path(__file__).parents[2] / "sae_interp" / "data" / "CARDS.md"
# Written here, independently of the selection code, so a regression there cannot hide.
OBVIOUS_HARM = re.compile(r"\b(bomb|kill|hack|steal|weapon|drug|poison|suicide|malware|explosive)s?\b", re.I)


@pytest.fixture(scope="session")
def harmful() -> list[str]:
    return load_instructions("harmful")


@pytest.fixture(scope="session")
def harmless() -> list[str]:
    """Builds the default user cache on first use (several seconds), then reads it."""
    return load_instructions("harmless")


@pytest.fixture(scope="session")
def chat(harmless: list[str]) -> list[list[dict[str, str]]]:
    return list(iter_conversations("chat"))


def _norm(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def test_every_set_has_its_promised_size(harmful, harmless, chat) -> None:
    web = list(iter_texts("web"))
    assert len(harmful) == 520
    assert len(harmless) >= 520
    assert len(chat) >= 10_000
    assert len(web) >= 9_000
    actual = {"harmful": len(harmful), "harmless": len(harmless), "chat": len(chat), "web": len(web)}
    assert actual == {name: card.size for name, card in DATA_CARDS.items()}


def test_registry_and_cards_agree_and_cards_md_is_current() -> None:
    assert set(DATASETS) == set(DATA_CARDS) == {"harmful", "harmless", "chat", "web"}
    assert all(DATASETS[name].card is data_card(name) for name in DATASETS)
    assert CARDS_MD.read_text(encoding="utf-8") == cards_markdown(), (
        "regenerate: python -m sae_interp.data cards"
    )
    with pytest.raises(KeyError, match="known: \\['chat', 'harmful', 'harmless', 'web'\\]"):
        data_card("harmfull")


@pytest.mark.parametrize("name", ["harmful", "harmless"])
def test_splits_partition_the_set_with_the_card_sizes(name: str, harmless) -> None:
    everything = load_instructions(name, split="all")
    train, test = load_instructions(name, split="train"), load_instructions(name, split="test")
    assert len(test) == data_card(name).n_test == round(0.2 * len(everything))
    assert not set(train) & set(test)
    assert sorted(train + test) == sorted(everything)
    assert load_instructions(name, split="test") == test  # same call, same answer


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()


def test_splits_are_identical_in_a_fresh_process(harmless) -> None:
    code = (
        "import hashlib; from sae_interp.data import load_instructions as L\n"
        "for n in ('harmful', 'harmless'):\n"
        "    print(hashlib.sha256('\\n'.join(L(n, split='test')).encode()).hexdigest())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [_digest(load_instructions(n, split="test")) for n in ("harmful", "harmless")]


def test_harmless_selection_rules(harmful, harmless) -> None:
    harmful_lengths = Counter(len(goal.split()) for goal in harmful)
    harmless_lengths = Counter(len(prompt.split()) for prompt in harmless)
    # Length-matched: two harmless prompts per harmful goal of each word count.
    assert harmless_lengths == Counter({n: 2 * count for n, count in harmful_lengths.items()})
    # Stored in a pseudo-random order, not by length, so a prefix is a fair sample.
    mean = sum(harmless_lengths.elements()) / len(harmless)
    assert abs(sum(len(p.split()) for p in harmless[:200]) / 200 - mean) < 1.0
    assert len({_norm(p) for p in harmless}) == len(harmless)
    assert not {_norm(p) for p in harmless} & {_norm(g) for g in harmful}
    for prompt in harmless:
        assert prompt == prompt.strip() and "\n" not in prompt and prompt.isascii()
        assert not OBVIOUS_HARM.search(prompt), prompt
        assert len([s for s in re.split(r"(?<=[.!?])\s+", prompt) if s]) <= 2, prompt


def test_chat_is_well_formed_and_disjoint_from_harmless(harmless, chat) -> None:
    harmless_keys = {_norm(p) for p in harmless}
    for messages in chat:
        roles = [m["role"] for m in messages]
        assert len(roles) >= 2
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)
        assert all(m["content"] and m["content"] == m["content"].strip() for m in messages)
        assert not any(m["role"] == "user" and _norm(m["content"]) in harmless_keys for m in messages)


def test_web_texts_are_non_empty_and_in_a_fixed_order() -> None:
    first = list(iter_texts("web"))
    assert all(isinstance(t, str) and t.strip() for t in first)
    assert first[:50] == list(iter_texts("web"))[:50]


def test_wrong_kind_unknown_name_and_bad_split_fail_clearly() -> None:
    with pytest.raises(TypeError, match="harmful holds plain texts, not conversations"):
        next(iter_conversations("harmful"))
    with pytest.raises(TypeError, match="chat holds conversations, not texts"):
        load_instructions("chat")
    with pytest.raises(FileNotFoundError, match="'harmfull' is neither a data set name"):
        iter_documents("harmfull")
    with pytest.raises(ValueError, match="split='dev'; expected one of"):
        load_instructions("harmful", split="dev")  # type: ignore[arg-type]  # the point of the test


def test_sharegpt_cache_is_built_once_then_read(monkeypatch, tmp_path, harmless) -> None:
    monkeypatch.setenv("SAE_INTERP_CACHE", str(tmp_path))
    start = time.perf_counter()
    fresh = load_instructions("harmless")
    build_s = time.perf_counter() - start
    folder = _sharegpt.cache_dir()
    assert folder.parent == tmp_path / "data" and folder.is_dir()
    assert not list(folder.parent.glob(".tmp-*")), "no temporary folder left behind"
    assert fresh == harmless  # same selection wherever the cache lives
    meta = orjson.loads((folder / "meta.json").read_bytes())
    assert meta["harmless"] == len(harmless) and meta["records"] > 17_000

    # A cached load reads the file: edit it and the edit comes back, without re-extraction.
    payload = orjson.loads((folder / "harmless.json").read_bytes())
    payload["prompts"] = payload["prompts"][:3]
    (folder / "harmless.json").write_bytes(orjson.dumps(payload))
    start = time.perf_counter()
    assert load_instructions("harmless") == harmless[:3]
    assert time.perf_counter() - start < max(1.0, build_s / 5)

    monkeypatch.setattr(_sharegpt, "SELECTION_VERSION", "harmless-v999")
    assert _sharegpt.cache_dir() != folder  # a new selection version never reuses the old folder
