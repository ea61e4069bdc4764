"""Cutting long texts into overlapping chunks that each fit the model's window.

The model embeds at most its window (256 word pieces for all-MiniLM-L6-v2) and ignores the rest, so
without chunking a long document is found only by its start. With it, each chunk of `size` tokens
(the next starting `size - overlap` tokens on) gets its own vector; a search ranks a document by
its best chunk and says which span of the text that was.
"""

from deployments.core.types import Span


def chunk_spans(token_spans: list[Span], text_length: int, size: int, overlap: int) -> list[Span]:
    """The chunks of a text whose tokens sit at `token_spans`; one chunk (the whole text) when it fits.
    The first chunk starts at the text's start and the last ends at its end, so nothing is left out."""
    if len(token_spans) <= size:
        return [(0, text_length)]
    step = size - overlap
    spans = []
    for first in range(0, len(token_spans), step):
        window = token_spans[first : first + size]
        last_chunk = first + size >= len(token_spans)
        spans.append((0 if first == 0 else window[0][0], text_length if last_chunk else window[-1][1]))
        if last_chunk:
            break
    return spans
