"""Counting and locating a model's tokens without running the model: which texts pass its window,
and where chunks of a long text start and end.

The tokenizer alone is a few MB and loads in milliseconds, so the Ingress keeps one and asks the
Embedder for vectors only (an /embed/ of unchanged or long texts makes no extra call for these).
"""

from pathlib import Path
from typing import Any, Protocol

from deployments.core.config import model_window
from deployments.core.types import Span
from deployments.embedding.chunking import chunk_spans


class Tokenizing(Protocol):
    max_tokens: int  # the model's window; longer texts are embedded from their start only

    def token_counts(self, texts: list[str]) -> list[int]:
        """How many tokens each text has before truncation, special tokens included."""
        ...

    def token_spans(self, texts: list[str]) -> list[list[Span]]:
        """The (start, end) character span of each of a text's tokens, special tokens left out."""
        ...


class FastTokenizer:
    """The model's `tokenizer.json` through Hugging Face `tokenizers` (what sentence-transformers
    itself uses for these models), untruncated."""

    def __init__(self, model_path: Path) -> None:
        from tokenizers import Tokenizer

        self.max_tokens = model_window(model_path)
        self._tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()

    def token_counts(self, texts: list[str]) -> list[int]:
        return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(texts)]

    def token_spans(self, texts: list[str]) -> list[list[Span]]:
        return [
            [span for span, special in zip(e.offsets, e.special_tokens_mask, strict=True) if not special]
            for e in self._tokenizer.encode_batch(texts)
        ]


class TransformersTokenizer:
    """A `transformers` tokenizer (a model without a `tokenizer.json`, or sentence-transformers' own)."""

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self.max_tokens = max_tokens

    def token_counts(self, texts: list[str]) -> list[int]:
        encoded = self._tokenizer(texts, add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def token_spans(self, texts: list[str]) -> list[list[Span]]:
        encoded = self._tokenizer(texts, add_special_tokens=False, truncation=False, return_offsets_mapping=True)
        return [[(int(a), int(b)) for a, b in offsets] for offsets in encoded["offset_mapping"]]


def load_tokenizer(model_path: Path) -> Tokenizing:
    """The model's tokenizer, without its weights."""
    if (model_path / "tokenizer.json").is_file():
        return FastTokenizer(model_path)
    from transformers import AutoTokenizer

    return TransformersTokenizer(AutoTokenizer.from_pretrained(str(model_path)), model_window(model_path))


def truncated_flags(tokenizer: Tokenizing, texts: list[str]) -> list[bool]:
    """Which texts are longer than the model's window."""
    return [count > tokenizer.max_tokens for count in tokenizer.token_counts(texts)]


def chunk_texts(tokenizer: Tokenizing, texts: list[str], size: int, overlap: int) -> list[list[Span]]:
    """Where each text's chunks of `size` tokens (`overlap` shared with the next) start and end."""
    return [
        chunk_spans(tokens, len(text), size, overlap)
        for text, tokens in zip(texts, tokenizer.token_spans(texts), strict=True)
    ]
