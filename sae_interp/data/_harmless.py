"""How the `harmless` instructions are chosen from ShareGPT first user turns.

Arditi et al. contrast harmful instructions with Alpaca ones; Alpaca is not available offline, so we
take the opening request of real ShareGPT conversations instead. The rules keep prompts that look
like AdvBench goals in form (one self-contained request, one or two sentences, English, the same
word-count distribution) but not in content (no harmful keyword, no near-copy of a goal), so that a
harmful/harmless contrast measures harmfulness rather than length or style. Every step is
deterministic: candidates are ranked by a salted sha256 of their text, never by a random generator.

Change any rule => bump SELECTION_VERSION, which invalidates the cached selection.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "HARMFUL_KEYWORDS",
    "HARMLESS_PER_HARMFUL",
    "SELECTION_VERSION",
    "Candidate",
    "first_turn_candidates",
    "match_lengths",
    "normalise",
    "words",
]

logger = logging.getLogger(__name__)

SELECTION_VERSION = "harmless-v2"
HARMLESS_PER_HARMFUL = 2
"""Harmless prompts per harmful prompt of each word count (2 x 520 = 1040 when every bin fills)."""
MAX_GOAL_JACCARD = 0.5
"""A prompt whose content words overlap an AdvBench goal's this much (Jaccard) is a near-copy."""

_SALT = "sae_interp/harmless/v1"
_WORD = re.compile(r"[a-z0-9']+")
# Words that carry no topic: left out of the near-copy comparison so that sharing "write a ... how"
# with a goal does not count as closeness.
_FUNCTION_WORDS = frozenset(
    _WORD.findall(
        "a an the to of for in on at by with and or but is are be was were it that as from about "
        "into how what why when where which who can could would should will do does did please me "
        "my you your i we our write give make create explain tell describe list some"
    )
)
# At least one of these must appear: a cheap English check on top of the ASCII-only rule.
_ENGLISH_MARKERS = frozenset(
    _WORD.findall("the a an to of for in on with and is are what how why can you i my me your do does about")
)
HARMFUL_KEYWORDS = re.compile(
    r"\b(bombs?|explosives?|weapons?|firearms?|guns?|kill\w*|murder\w*|suicid\w*|self-harm|poison\w*"
    r"|drugs?|hack\w*|steal\w*|stole|theft|fraud\w*|scam\w*|counterfeit\w*|launder\w*|terror\w*"
    r"|malware|viruse?s?|ransomware|exploit\w*|phish\w*|attack\w*|violen\w*|assault\w*|abus\w*"
    r"|racis\w*|hate\w*|harass\w*|stalk\w*|cheat\w*|illegal\w*|crim\w*|smuggl\w*|traffick\w*"
    r"|kidnap\w*|tortur\w*|bull(y|ies|ying)|manipulat\w*|blackmail\w*|extort\w*|pira(te|cy)\w*"
    r"|jailbreak\w*|nsfw|sex\w*|porn\w*|nude|misinformation|disinformation|propaganda|overdose"
    r"|cocaine|heroin|meth|evad\w*|evasion|bypass\w*|spy(ing)?|vandal\w*|arson|shoot\w*|stab\w*"
    r"|riot\w*|extremis\w*|genocide|slurs?|defam\w*|harm\w*|dangerous|deadly|death|die|gambl\w*)\b",
    re.IGNORECASE,
)
"""Obvious harm words (as whole words): a prompt containing any of them is not used as harmless."""
# Prompts that set up a game or role, or point at text the reader cannot see, are not one
# self-contained request like an AdvBench goal.
_NOT_SELF_CONTAINED = re.compile(
    r"\b(act as|pretend|ignore|i want you|from now on|i will|i'll|i am going to|i'm going to"
    r"|let's play|lets play|role ?play|you are|above|below|following|continue|previous|same|these|this)\b",
    re.IGNORECASE,
)
# URLs, code, markup, and the "1 / 1" page counter that the ShareGPT browser extension appended.
_CODE_OR_MARKUP = re.compile(r"https?:|www\.|[{}<>=;\[\]`|\\#@*_~^$]|\d+ ?/ ?\d+$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """One first user turn that passed every content rule."""

    record_id: str
    """ShareGPT record id (conversation id and part, e.g. "QWJhYvA_0")."""
    text: str
    """The prompt, stripped."""
    n_words: int
    """Whitespace-separated words: the unit of length matching."""


def words(text: str) -> list[str]:
    """Lower-case word tokens used for deduplication and overlap."""
    return _WORD.findall(text.lower())


def normalise(text: str) -> str:
    """Deduplication key: case, punctuation and spacing removed."""
    return " ".join(words(text))


def _rejection(text: str, goal_words: list[frozenset[str]]) -> str | None:
    """Why `text` cannot be a harmless prompt, or None when it can."""
    if "\n" in text or not text.isascii():
        return "multi-line or non-ASCII"
    if _CODE_OR_MARKUP.search(text):
        return "code, markup or page counter"
    if len([part for part in _SENTENCE_END.split(text) if part]) > 2 or text.endswith(":"):
        return "more than two sentences"
    tokens = words(text)
    if not _ENGLISH_MARKERS.intersection(tokens):
        return "not English"
    if _NOT_SELF_CONTAINED.search(text):
        return "not self-contained"
    if HARMFUL_KEYWORDS.search(text):
        return "harmful keyword"
    content = frozenset(tokens) - _FUNCTION_WORDS
    if content and any(len(content & goal) / len(content | goal) >= MAX_GOAL_JACCARD for goal in goal_words):
        return "near-copy of a harmful goal"
    return None


def first_turn_candidates(
    records: Iterable[tuple[str, str]], harmful: list[str], *, min_words: int, max_words: int
) -> list[Candidate]:
    """Filter (record id, first user turn) pairs down to usable, deduplicated prompts.

    Args:
        records: ShareGPT first-part records as (id, first human turn); the caller keeps only
            parts "_0", whose first turn opens the conversation.
        harmful: the harmful goals, for the near-copy rule.
        min_words: shortest accepted prompt, in words (the shortest harmful goal).
        max_words: longest accepted prompt, in words (the longest harmful goal).

    Returns:
        Candidates in input order, the first of each normalised text kept.
    """
    goal_words = [frozenset(words(goal)) - _FUNCTION_WORDS for goal in harmful]
    seen: set[str] = set()
    kept: list[Candidate] = []
    reasons: Counter[str] = Counter()
    for record_id, raw in records:
        text = raw.strip()
        n_words = len(text.split())
        reason = "length" if not min_words <= n_words <= max_words else _rejection(text, goal_words)
        key = normalise(text)
        if reason is None and key in seen:
            reason = "duplicate"
        if reason is not None:
            reasons[reason] += 1
            continue
        seen.add(key)
        kept.append(Candidate(record_id=record_id, text=text, n_words=n_words))
    logger.info("harmless candidates: %d kept; rejected %s", len(kept), dict(reasons.most_common()))
    return kept


def _rank(text: str) -> str:
    """Deterministic, machine-independent pseudo-random order."""
    return hashlib.sha256(f"{_SALT}\0{text}".encode()).hexdigest()


def match_lengths(candidates: list[Candidate], harmful: list[str]) -> list[Candidate]:
    """Take HARMLESS_PER_HARMFUL candidates per harmful goal of each word count.

    Returns:
        The chosen candidates in rank order, so that any prefix (callers often take the first n)
        is a fair sample of every length; a word count with too few candidates contributes all
        it has (logged as a warning).
    """
    wanted = Counter(len(goal.split()) for goal in harmful)
    by_length: defaultdict[int, list[Candidate]] = defaultdict(list)
    for cand in candidates:
        by_length[cand.n_words].append(cand)
    chosen: list[Candidate] = []
    for n_words in sorted(wanted):
        pool = sorted(by_length[n_words], key=lambda c: _rank(c.text))
        quota = HARMLESS_PER_HARMFUL * wanted[n_words]
        if len(pool) < quota:
            logger.warning("only %d harmless prompts of %d words (wanted %d)", len(pool), n_words, quota)
        chosen.extend(pool[:quota])
    return sorted(chosen, key=lambda c: _rank(c.text))
