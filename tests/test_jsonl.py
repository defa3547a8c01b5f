"""The one JSON Lines reader: blank lines skipped, a bad line named by file and line."""

import pytest

from speechtok.jsonl import jsonl_rows


def test_rows_skip_blank_lines_and_keep_line_numbers(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n\n  \n[2]\n')
    assert list(jsonl_rows(path)) == [(1, {"a": 1}), (4, [2])]
    assert list(jsonl_rows("stdin", text='"x"')) == [(1, "x")]


def test_a_bad_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match=r"m\.jsonl:2: bad metadata line"):
        list(jsonl_rows(path, what="bad metadata line"))
