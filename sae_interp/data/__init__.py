"""Data sets for refusal and SAE work, and their tokenisation into fixed-length rows.

Named sets (see CARDS.md): `harmful` (AdvBench, vendored), `harmless` (ShareGPT first turns),
`chat` (ShareGPT conversations, disjoint from `harmless`) and `web` (Wikipedia summaries). Text
under an unclear or copyleft licence is read from the installed package at first use, never copied
into the repository. Any function taking a `source` also takes the path of the user's own file.
"""

from sae_interp.data._files import FILE_FORMATS, Conversation, DataFileError, Document
from sae_interp.data.cards import DATA_CARDS, DataCard, cards_markdown, data_card
from sae_interp.data.registry import (
    DATASETS,
    Dataset,
    Source,
    Split,
    iter_conversations,
    iter_documents,
    iter_texts,
    load_instructions,
)
from sae_interp.data.tokens import TokenizeConfig, TokenRows, iter_token_rows, tokenize_rows

__all__ = [
    "DATASETS",
    "DATA_CARDS",
    "FILE_FORMATS",
    "Conversation",
    "DataCard",
    "DataFileError",
    "Dataset",
    "Document",
    "Source",
    "Split",
    "TokenRows",
    "TokenizeConfig",
    "cards_markdown",
    "data_card",
    "iter_conversations",
    "iter_documents",
    "iter_texts",
    "iter_token_rows",
    "load_instructions",
    "tokenize_rows",
]
