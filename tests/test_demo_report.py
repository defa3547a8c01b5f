"""The demo's plumbing that needs no training: stage failures are named, the report renders."""


import pytest

from recipes.builtin.report import to_html, to_markdown
from recipes.builtin.run_demo import last_line
from recipes.common import StageFailed, Timer


def test_a_failing_stage_is_named_with_its_error_and_not_timed(capsys):
    timer = Timer(name_failures=True)
    with timer("1 quick"):
        pass
    with pytest.raises(StageFailed, match=r"stage '2 broken' failed: ValueError: bad sample"):
        with timer("2 broken"):
            raise ValueError("bad sample rate")
    assert list(timer.seconds) == ["1 quick"]
    with pytest.raises(ValueError, match="bad"):  # a recipe's timer lets errors through as is
        with Timer()("3 plain"):
            raise ValueError("bad")
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


def test_content_section_shows_what_the_run_measured(tmp_path):
    import json

    from recipes.builtin.report_content import content_blocks, content_metric_rows

    assert content_blocks(tmp_path, tmp_path, "figures") == []  # nothing measured, no section
    tok, gen = tmp_path / "speech_tokenizer", tmp_path / "generation"
    tok.mkdir()
    gen.mkdir()
    (tok / "train_curve.json").write_text(json.dumps(
        [{"step": s, "train/phone": 3.0 / s, "train/agreement": 0.1 * s} for s in (1, 2, 3)]))
    (tok / "eval_test.json").write_text(json.dumps({"pnmi": 0.8, "phone_purity": 0.7}))
    (tok / "speaker_probe.json").write_text(json.dumps(
        {"speaker_probe_histogram": 0.6, "speaker_probe_embedding": 0.4,
         "speaker_probe_chance": 0.3}))
    (gen / "spoken_benchmark.json").write_text(json.dumps(
        {"numbers": {"accuracy": 0.61, "ci95": [0.51, 0.7], "pairs": 100, "chance": 0.5}}))
    md = to_markdown(content_blocks(tmp_path, tmp_path, "figures"))
    assert "| phones (held-out flite voice) | PNMI | 0.8 |" in md
    assert "| right vs wrong next number | 0.61 | 0.510–0.700 | 100 | 0.5 |" in md
    assert "![content objectives](figures/content_curves.png)" in md
    assert (tmp_path / "content_curves.png").stat().st_size > 0
    assert ("spoken-LM benchmark", "right vs wrong next number", 0.61) in \
        content_metric_rows(tmp_path)


def test_seed_spread_shows_this_run_and_says_whether_the_commits_match():
    from recipes.builtin.report import seed_spread_blocks

    spread = {"seeds": [{"seed": 0, "figures": {"faithfulness_seen": 0.7}},
                        {"seed": 1, "figures": {"faithfulness_seen": 0.9}}],
              "summary": {"faithfulness_seen": {"lowest": 0.7, "highest": 0.9, "spread": 0.2}},
              "commit": "abc123"}
    images = {"test_accuracy_by_wording": {"seen": {"accuracy": 0.8}}}
    blocks = seed_spread_blocks(spread, images, {"commit": "abc123"})
    assert "at this run's commit (abc123)" in blocks[1][1]
    assert blocks[2][2][-1] == ("this run", 0.8) and blocks[2][2][2] == ("lowest", 0.7)
    other = seed_spread_blocks(spread, images, {"commit": "def456"})[1][1]
    assert "at commit abc123 (this run: def456)" in other


def test_the_bundle_gets_the_tokenizer_files_written_after_the_lm(tmp_path):
    from recipes.builtin.run_demo import codes_ready, refresh_bundle_tokenizers

    for name in ("speech_tokenizer", "image_tokenizer"):
        (tmp_path / name / "checkpoints").mkdir(parents=True)
        (tmp_path / name / "config.json").write_text("{}")
        (tmp_path / "bundle" / name).mkdir(parents=True)
    (tmp_path / "speech_tokenizer" / "vocoder").mkdir()
    (tmp_path / "speech_tokenizer" / "vocoder" / "model.safetensors").write_text("w")
    refresh_bundle_tokenizers(tmp_path)
    assert (tmp_path / "bundle/speech_tokenizer/vocoder/model.safetensors").read_text() == "w"
    assert not (tmp_path / "bundle/speech_tokenizer/checkpoints").exists()
    assert not codes_ready(tmp_path)
    for kind in ("speech", "image"):
        (tmp_path / "codes" / kind).mkdir(parents=True)
        (tmp_path / "codes" / kind / "pretokenized.json").write_text("{}")
    assert codes_ready(tmp_path)
