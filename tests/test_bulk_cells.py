"""The bulk writers' own ways to the bytes of the general ones: CSV cells quoted without the
`csv` module, and a line's reasons rendered once per policy by their keys."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from payrules.render import _csv_cells, _quoted_cells

_CELLS = st.lists(st.text(alphabet=st.sampled_from(['a', '1', ' ', ',', '"', '\r', '\n', '\t', '=', "'", 'é',
                                                    '\u2028', '\ud800', '\x00']), max_size=6),
                  min_size=1, max_size=5)


@settings(max_examples=800, deadline=None)
@given(cells=_CELLS)
def test_cells_are_quoted_as_the_csv_module_quotes_them(cells: list[str]) -> None:
    assert _quoted_cells(*cells) == _csv_cells(*cells)


def test_empty_cells_stay_empty_and_quotes_are_doubled() -> None:
    assert _quoted_cells("") == _csv_cells("") == ""
    assert _quoted_cells("", "") == _csv_cells("", "") == ","
    assert _quoted_cells('a "b", c', "d") == _csv_cells('a "b", c', "d") == '"a ""b"", c",d'
