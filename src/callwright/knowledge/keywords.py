"""From what a caller said to the terms a full-text index is asked for.

Spoken questions are long and full of function words ("um, could you tell me what
time you open on saturday"); an AND of every word matches nothing, so stores OR the
content words and let the ranker (bm25 / ts_rank) weigh them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import snowballstemmer

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)

_STOPWORDS_TEXT = """
a about above after again against all am an and any are aren't as at be because been
before being below between both but by can can't cannot could couldn't did didn't do
does doesn't doing don't down during each few for from further had hadn't has hasn't
have haven't having he her here hers herself him himself his how i i'd i'll i'm i've
if in into is isn't it it's its itself let's me more most my myself no nor not of
off on once only or other ought our ours ourselves out over own same she should
shouldn't so some such than that that's the their theirs them themselves then there
there's these they this those through to too under until up very was wasn't we were
weren't what what's when where which while who whom why with won't would wouldn't
you your yours yourself yourselves um uh er hmm okay ok yeah hi hello please tell
know like just want wanted wondering wonder get got also really thanks thank much
many
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


_PORTER = snowballstemmer.stemmer("porter")
_ENGLISH = snowballstemmer.stemmer("english")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Porter stem, as SQLite's FTS5 `porter` tokenizer indexes the word."""
    return str(_PORTER.stemWord(word))


@lru_cache(maxsize=65536)
def stem_english(word: str) -> str:
    """Snowball English stem, as PostgreSQL's `english` text search config indexes it."""
    return str(_ENGLISH.stemWord(word))


def prune_common(
    terms: list[str],
    doc_freq: dict[str, int],
    total: int,
    *,
    max_df: float = 0.01,
    cheap_postings: int = 1000,
    max_terms: int = 3,
    stemmer: Callable[[str], str] = stem,
) -> list[str]:
    """The informative terms of a query: leaving out any found in more than `max_df`
    of all chunks (and in over `cheap_postings`), and when the rest would still rank
    many rows, keeping only the `max_terms` rarest.

    A term in many chunks says little about relevance (low IDF) but costs a ranking
    pass over all of them: at 100k synthetic chunks such terms turned a 10 ms keyword
    search into 400 ms. BM25 weighs terms by IDF, so the rarest few decide the ranking
    anyway, and a query made only of common terms is left to vector search. Small
    knowledge bases are never pruned (every posting list is cheap). Terms the
    statistics do not know yet (just ingested) are kept: they cost nothing if they
    match nothing.
    """
    if total <= 0 or not terms:
        return terms
    limit = max(max_df * total, cheap_postings)
    df = {t: doc_freq.get(stemmer(t), 0) for t in terms}
    unknown = {t for t in terms if df[t] == 0}
    known = sorted((t for t in terms if 0 < df[t] <= limit), key=lambda t: df[t])
    if sum(df[t] for t in known) > cheap_postings * max_terms:
        known = known[:max_terms]  # only large indexes: small ones rank every term
    picked = set(known) | unknown
    return [t for t in terms if t in picked]


def keyword_terms(text: str, max_terms: int = 16) -> list[str]:
    """Lower-cased content words, deduplicated, in order; at most `max_terms`."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        word = match.group(0).replace("’", "'")
        if word in STOPWORDS or (len(word) < 2 and not word.isdigit()):
            continue
        word = word.split("'")[0]  # "clinic's" -> "clinic"
        if word and word not in STOPWORDS:
            seen.setdefault(word, None)
        if len(seen) >= max_terms:
            break
    return list(seen)
