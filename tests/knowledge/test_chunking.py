"""Chunking: sections kept apart, limits held, cuts at sentences, overlap inside a section."""

from __future__ import annotations

import itertools
import random

import pytest

from callwright.knowledge.chunking import ChunkSpec, TextChunk, chunk_document
from callwright.knowledge.parsers import Block, ParsedDocument, parse_document


def doc_of(*blocks: Block, title: str | None = None) -> ParsedDocument:
    return ParsedDocument(title=title, blocks=list(blocks), mime_type="text/plain", metadata={})


def sentences(n: int, words: int = 8, seed: int = 0) -> str:
    rng = random.Random(seed)
    vocab = ["refund", "order", "within", "days", "the", "customer", "plan", "monthly", "card"]
    return " ".join(
        " ".join(rng.choice(vocab) for _ in range(words)).capitalize() + f" s{i}." for i in range(n)
    )


def test_small_blocks_of_one_section_pack_together() -> None:
    doc = doc_of(Block("First.", ("A",)), Block("Second.", ("A",)), Block("Third.", ("A",)))
    assert chunk_document(doc) == [TextChunk(0, "First.\nSecond.\nThird.", ("A",))]


def test_sections_are_never_mixed() -> None:
    doc = doc_of(
        Block("Refunds take five days.", ("Billing", "Refunds")),
        Block("Plans are monthly.", ("Billing", "Plans")),
        Block("More about plans.", ("Billing", "Plans")),
        Block("No headings here."),
    )
    chunks = chunk_document(doc)
    assert [(c.index, c.text, c.headings) for c in chunks] == [
        (0, "Refunds take five days.", ("Billing", "Refunds")),
        (1, "Plans are monthly.\nMore about plans.", ("Billing", "Plans")),
        (2, "No headings here.", ()),
    ]


def test_long_block_splits_at_sentence_ends() -> None:
    text = sentences(30)
    spec = ChunkSpec(max_chars=200, overlap_chars=0)
    chunks = chunk_document(doc_of(Block(text, ("S",))), spec)
    assert len(chunks) > 1
    for chunk in chunks:
        assert len(chunk.text) <= 200
        assert chunk.text.endswith(".")  # every cut falls after a sentence
        assert chunk.text[0].isupper()
    # Nothing lost or reordered: without overlap the chunks rebuild the text.
    assert " ".join(c.text for c in chunks) == text


def test_sentence_split_knows_other_terminators() -> None:
    text = " ".join(
        [f"Is plan {i} free?" for i in range(20)]
        + [f"Yes, plan {i} is!" for i in range(20)]
        + ['"Quoted end." Then more.']
    )
    chunks = chunk_document(doc_of(Block(text)), ChunkSpec(max_chars=100, overlap_chars=0))
    assert all(c.text.endswith(("?", "!", '."', ".")) for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_overlong_sentence_splits_at_words_and_overlong_word_is_cut() -> None:
    long_sentence = " ".join(f"word{i}" for i in range(100)) + "."
    chunks = chunk_document(doc_of(Block(long_sentence)), ChunkSpec(max_chars=100, overlap_chars=0))
    assert all(len(c.text) <= 100 for c in chunks)
    words = {f"word{i}" for i in range(100)}
    for chunk in chunks:
        assert all(w.rstrip(".") in words for w in chunk.text.split())  # no word cut
    assert " ".join(c.text for c in chunks) == long_sentence

    giant = "".join(chr(ord("a") + i % 26) for i in range(250))
    no_overlap = ChunkSpec(max_chars=100, overlap_chars=0)
    cut = chunk_document(doc_of(Block(f"Start {giant} end.")), no_overlap)
    assert [len(c.text) for c in cut] == [5, 100, 100, 55]
    assert "".join(c.text for c in cut[1:3]) + cut[3].text[:50] == giant


def test_long_list_splits_between_items() -> None:
    items = "\n".join(f"- item number {i} with some words" for i in range(30))
    spec = ChunkSpec(max_chars=150, overlap_chars=0)
    chunks = chunk_document(doc_of(Block(items, ("List",))), spec)
    assert len(chunks) > 1
    for chunk in chunks:
        assert all(line.startswith("- item number ") for line in chunk.text.split("\n"))


def test_overlap_repeats_whole_sentences_within_a_section_only() -> None:
    spec = ChunkSpec(max_chars=200, overlap_chars=60)
    doc = doc_of(
        Block(sentences(12, words=5), ("A",)), Block(sentences(12, words=5, seed=1), ("B",))
    )
    chunks = chunk_document(doc, spec)
    a = [c for c in chunks if c.headings == ("A",)]
    b = [c for c in chunks if c.headings == ("B",)]
    assert len(a) > 1 and len(b) > 1
    for section in (a, b):
        for previous, chunk in itertools.pairwise(section):
            # The chunk opens with the last whole sentence(s) of the one before it.
            head = chunk.text.split(". ")[0] + "."
            assert previous.text.endswith(head)
            assert 0 < len(head) <= 60
    # The first chunk of section B carries nothing from section A.
    assert not any(s.strip() and s.strip() in b[0].text for s in a[-1].text.split(". ")[-2:])
    assert all(len(c.text) <= 200 for c in chunks)


def test_overlap_falls_back_to_words_when_no_sentence_fits() -> None:
    text = " ".join(f"w{i}" for i in range(120))  # one endless sentence
    chunks = chunk_document(doc_of(Block(text)), ChunkSpec(max_chars=120, overlap_chars=20))
    assert len(chunks) > 1
    for previous, chunk in itertools.pairwise(chunks):
        prev_words, words = previous.text.split(), chunk.text.split()
        shared = [w for w in words if w in prev_words]
        assert shared and len(" ".join(shared)) <= 20
        assert prev_words[-len(shared) :] == shared == words[: len(shared)]


def test_max_chars_never_exceeded_on_random_documents() -> None:
    rng = random.Random(1234)
    alphabet = "abcdefghij      .!?\n"
    for _ in range(300):
        max_chars = rng.randint(100, 400)
        spec = ChunkSpec(max_chars=max_chars, overlap_chars=rng.randint(0, max_chars - 1))
        blocks = []
        for _ in range(rng.randint(1, 8)):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 1500)))
            if rng.random() < 0.1:
                text += " " + "z" * rng.randint(100, 900)  # a "word" past the limit
            text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
            if text.strip():
                blocks.append(Block(text.strip(), (rng.choice("XYZ"),)))
        if not blocks:
            continue
        chunks = chunk_document(doc_of(*blocks), spec)
        assert chunks
        assert [c.index for c in chunks] == list(range(len(chunks)))
        for chunk in chunks:
            assert 0 < len(chunk.text) <= max_chars
            assert chunk.text == chunk.text.strip()
        # Every word of the input appears somewhere (cut words reassemble by concatenation).
        joined = "".join("".join(c.text.split()) for c in chunks)
        for block in blocks:
            for word in block.text.split():
                if len(word) <= max_chars:
                    assert word in joined
        assert chunks == chunk_document(doc_of(*blocks), spec)  # deterministic


def test_identical_consecutive_chunks_are_not_repeated() -> None:
    boiler = "Call us on 555 0100 for help with anything at all. " * 3
    doc = doc_of(*(Block(boiler.strip(), ("Help",)) for _ in range(3)))
    chunks = chunk_document(doc, ChunkSpec(max_chars=160, overlap_chars=0))
    assert [c.text for c in chunks] == [boiler.strip()]


def test_min_chars_drops_fragments() -> None:
    doc = doc_of(Block("Menu", ("Nav",)), Block("A real answer about refunds.", ("Refunds",)))
    chunks = chunk_document(doc, ChunkSpec(min_chars=10))
    assert [(c.index, c.text) for c in chunks] == [(0, "A real answer about refunds.")]


def test_contextual_text() -> None:
    chunk = TextChunk(0, "Pay monthly.", ("Billing", "Plans"))
    assert chunk.contextual_text("Help centre") == "Help centre > Billing > Plans\nPay monthly."
    assert chunk.contextual_text() == "Billing > Plans\nPay monthly."
    # A title that is already the first heading is not said twice.
    assert chunk.contextual_text("Billing") == "Billing > Plans\nPay monthly."
    bare = TextChunk(1, "Just text.", ())
    assert bare.contextual_text() == "Just text."
    assert bare.contextual_text("Guide") == "Guide\nJust text."


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"max_chars": 99}, "max_chars"),
        ({"max_chars": 200, "overlap_chars": 200}, "overlap_chars"),
        ({"overlap_chars": -1}, "overlap_chars"),
        ({"min_chars": 0}, "min_chars"),
        ({"max_chars": 100, "overlap_chars": 10, "min_chars": 101}, "min_chars"),
    ],
)
def test_chunk_spec_validation(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ChunkSpec(**kwargs)


def test_defaults_and_parsed_markdown_end_to_end() -> None:
    assert ChunkSpec() == ChunkSpec(max_chars=600, overlap_chars=80, min_chars=1)
    body = sentences(40)
    md = f"# Guide\n\n## Refunds\n\n{body}\n\n## Plans\n\n- Monthly\n- Yearly\n"
    doc = parse_document(md.encode(), filename="guide.md")
    chunks = chunk_document(doc)
    refunds = [c for c in chunks if c.headings == ("Guide", "Refunds")]
    assert len(refunds) > 1 and all(len(c.text) <= 600 for c in chunks)
    assert chunks[-1] == TextChunk(len(chunks) - 1, "- Monthly\n- Yearly", ("Guide", "Plans"))
    assert chunks[-1].contextual_text(doc.title) == "Guide > Plans\n- Monthly\n- Yearly"
