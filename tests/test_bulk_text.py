"""Shortcuts of the bulk writers → the same text as the general code they stand in for."""

from __future__ import annotations

import textwrap

from hypothesis import given, settings
from hypothesis import strategies as st

from payrules.render import _cell, _csv_cells, _filled, _text_cells, _wrapped

_WORDS = st.lists(st.sampled_from(["a", "$45.00", "97140", "x" * 91, "y" * 92, "z" * 93, "denied,", "é", "",
                                   " ", "\t", "\n", "\u2028", "\u00a0", "word-with-hyphens", "(N362)"]),
                  max_size=60)


@settings(max_examples=500, deadline=None)
@given(words=_WORDS, width=st.sampled_from([100, 20, 9]))
def test_filling_at_spaces_gives_the_lines_of_textwrap(words: list[str], width: int) -> None:
    message = " ".join(words)
    filled = _filled(message, " " * 8, width)
    if filled is None:  # left to textwrap
        assert not message.isprintable() or "  " in message or message[:1] == " " or message[-1:] == " "
        return
    assert filled == tuple(textwrap.wrap(message, width=width, initial_indent=" " * 8, subsequent_indent=" " * 8,
                                         break_on_hyphens=False, break_long_words=False))


def test_a_message_with_hidden_characters_is_still_escaped_and_wrapped() -> None:
    assert _wrapped("a\nb  c") == ("        a\\nb  c",)


_CELL_TEXTS = st.lists(st.text(alphabet=st.sampled_from(['a', '1', ' ', ',', '"', '\r', '\n', '\t', '=', '+', '-', '@',
                                                         '\uff1d', 'é', '\ud800']), max_size=6),
                       min_size=1, max_size=4)


@settings(max_examples=500, deadline=None)
@given(texts=_CELL_TEXTS)
def test_cells_of_user_text_are_those_of_the_csv_module(texts: list[str]) -> None:
    assert _text_cells(*texts) == _csv_cells(*map(_cell, texts))
