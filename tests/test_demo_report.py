"""The demo's plumbing that needs no training: stage failures are named, the report renders."""


import pytest

from recipes.builtin.report import to_html, to_markdown
from recipes.builtin.run_demo import StageFailed, last_line, timed


def test_a_failing_stage_is_named_with_its_error_and_not_timed(capsys):
    timings = {}
    with timed("1 quick", timings):
        pass
    with pytest.raises(StageFailed, match=r"stage '2 broken' failed: ValueError: bad sample"):
        with timed("2 broken", timings):
            raise ValueError("bad sample rate")
    assert list(timings) == ["1 quick"]
    assert "=== 2 broken ===" in capsys.readouterr().out


def test_report_blocks_render_the_same_content_to_markdown_and_html():
    blocks = [("h", 1, "Demo report"), ("p", "PSNR **30.1 dB** on `test`"),
              ("table", ["metric", "value"], [("psnr", 30.123456), ("same", True)]),
              ("img", "grid", "figures/a.png"), ("list", ["a < b"])]
    md = to_markdown(blocks)
    assert "# Demo report" in md and "| psnr | 30.12 |" in md and "| same | yes |" in md
    assert "![grid](figures/a.png)" in md and "- a < b" in md
    page = to_html(blocks, "t")
    assert "<b>30.1 dB</b>" in page and "<code>test</code>" in page
    assert "<td>30.12</td>" in page and '<img src="figures/a.png"' in page
    assert "a &lt; b" in page  # text is escaped


def test_progress_line_is_the_latest_carriage_return_segment(tmp_path):
    log = tmp_path / "b.log"
    assert last_line(log) == ""
    log.write_text("=== 2 training ===\ntrain speech: 10%|#\rtrain speech: 20%|##\r")
    assert last_line(log) == "train speech: 20%|##"
