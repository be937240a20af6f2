"""Text normalisation shared by the scorers and the label-set check, so both agree on what 'the same' means."""

from __future__ import annotations

import re
import string

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalise(text: str, *, case_sensitive: bool = False, punctuation: bool = False, articles: bool = False) -> str:
    """Lower-case, punctuation to spaces, optionally drop English articles, collapse white space."""
    if not case_sensitive:
        text = text.lower()
    if not punctuation:
        text = _PUNCT.sub(" ", text)
    if articles:
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())
