# Set-up and entry points. `make demo` and `make test` each create .venv and install first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian packages: flite (the built-in speech corpus), pocketsphinx (intelligibility scoring),
# fonts (the built-in image corpus renders letters and digits in every installed face; the
# held-out families URW Gothic, Caladea and Carlito come from these packages); chromium (the
# web demo's browser test; skipped, with a note, where it cannot be installed).
DEB_PACKAGES := flite pocketsphinx pocketsphinx-en-us
DEB_COMMANDS := flite pocketsphinx_batch
FONT_PACKAGES := fonts-dejavu-core fonts-dejavu-extra fonts-liberation2 fonts-freefont-ttf \
	fonts-urw-base35 fonts-croscore fonts-crosextra-carlito fonts-crosextra-caladea \
	fonts-go fonts-inconsolata fonts-comfortaa fonts-quicksand fonts-cabin fonts-linuxlibertine \
	fonts-ebgaramond fonts-sil-gentium fonts-sil-charis fonts-sil-andika fonts-oldstandard \
	fonts-league-spartan fonts-adf-accanthis fonts-adf-gillius fonts-adf-universalis fonts-dosis \
	fonts-roboto fonts-lato fonts-open-sans fonts-cantarell fonts-texgyre fonts-firacode

.PHONY: demo demo-full test lint bench system-deps install clean-demo maskgit compare-quantizers \
	seed-spread serve compare-content

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Install the Debian packages when missing; where that is impossible (not root, no apt-get)
# say exactly what to install and stop.
system-deps:
	@missing=""; for c in $(DEB_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian packages: $(DEB_PACKAGES)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(DEB_PACKAGES) >/dev/null; \
	  else \
	    echo "missing:$$missing. Install the Debian/Ubuntu packages '$(DEB_PACKAGES)'"; \
	    echo "(e.g. sudo apt-get install $(DEB_PACKAGES)), or the same from your OS's package manager."; \
	    exit 1; \
	  fi; \
	fi
	@if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium (the web demo's browser test drives it)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "note: no chromium (sudo apt-get install chromium): the web demo's browser test"; \
	    echo "will be skipped; \`lm serve\` itself does not need it."; \
	  fi; \
	fi
	@if command -v dpkg-query >/dev/null; then \
	  fonts=""; for p in $(FONT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || fonts="$$fonts $$p"; done; \
	  if [ -n "$$fonts" ]; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	      echo "installing font packages:$$fonts"; \
	      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$fonts >/dev/null; \
	    else \
	      echo "note: font packages missing:$$fonts (sudo apt-get install$$fonts);"; \
	      echo "the image corpus will use the fonts that are installed."; \
	    fi; \
	  fi; \
	elif ! fc-list 2>/dev/null | grep -qi dejavu; then \
	  echo "note: no DejaVu fonts found; install the DejaVu, Liberation, FreeFont, URW base35,"; \
	  echo "Croscore, Carlito and Caladea fonts for the built-in image corpus."; \
	fi

demo: $(STAMP) system-deps
	$(PY) recipes/builtin/run_demo.py --out runs/demo

# Longer settings than the 20-minute demo: more data, longer tokenizers, the learned decoder and
# an LM of 5,000 steps, into runs/demo-full (not timed at these settings).
demo-full: $(STAMP) system-deps
	$(PY) recipes/builtin/run_demo.py --out runs/demo-full --num-utterances 3000 --learned-decoder \
	  --wer-utterances 100 --speech.steps 1500 --speech.eval_every 500 --image.steps 1600 \
	  --image.disc_start 1200 --image.eval_every 400 --lm.steps 5000 --lm.eval_every 1250 \
	  --lm.save_every 1250

# The web demo of the demo's bundle (after `make demo`): open http://localhost:7860/
serve: $(STAMP)
	$(PY) -m lm.cli serve --model runs/demo/bundle

test: $(STAMP) system-deps
	$(PY) -m pytest -q --durations=10 tests

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'  # the reference libraries, only for benchmarks
	$(PY) benchmarks/bench_quantizer.py
	$(PY) benchmarks/bench_speech_encoder.py
	$(PY) benchmarks/bench_image_tokenizer.py
	$(PY) benchmarks/bench_lm_train.py  # needs runs/demo/codes (make demo)
	$(PY) benchmarks/bench_lm_step.py  # the LM step by batch, precision, compile (same codes)
	$(PY) benchmarks/bench_generate.py  # uses runs/demo/bundle when present
	$(PY) benchmarks/bench_data.py  # the loader with 0/1/2 workers against the trainers
	@if [ -f runs/demo/bundle/config.json ]; then $(PY) benchmarks/bench_serve.py; \
	else echo "bench_serve.py skipped: it serves runs/demo/bundle (make demo)"; fi
	$(PY) benchmarks/bench_precision.py  # fp32 / bf16 / torch.compile step times, MFU
	$(PY) benchmarks/bench_memory.py  # peak memory on 200 vs 20,000 files (the longest)
	@if [ -f runs/maskgit/model.safetensors ]; then $(MAKE) --no-print-directory maskgit; \
	else echo "bench_maskgit skipped: run make maskgit (after make demo) first"; fi

# The glyph LM with both image tasks, causal and MaskGIT (about 6 min on 2 cores; needs make
# demo), then causal vs MaskGIT decoding: faithfulness on the held-out captions and speed.
runs/maskgit/model.safetensors: | $(STAMP)
	$(PY) -m lm.cli train --out runs/maskgit --config recipes/builtin/lm.yaml \
		--speech_codes runs/demo/codes/speech --image_codes runs/demo/codes/image \
		--task_weights '{caption_image: 1.0, maskgit_image: 1.0}' \
		--steps 2200 --eval_every 550 --save_every 550

maskgit: runs/maskgit/model.safetensors
	$(PY) benchmarks/bench_maskgit.py --bundle runs/maskgit --image-data runs/demo/data/images \
		--classifier runs/demo/glyph_classifier --json runs/maskgit/decoding.json

# Every quantizer in the glyph and photo tokenizers (about 40 min on 2 cores; needs make demo
# and recipes/photos/run.py --out runs/photos)
compare-quantizers: $(STAMP)
	$(PY) benchmarks/compare_quantizers.py --glyphs runs/demo/data/images \
		--photos runs/photos/data --out runs/quantizers

# The demo LM trained with 3 seeds on the demo's codes, each scored per caption wording and on
# the counting prompts (about 20 min on 2 cores; needs make demo); the report then shows the
# spread (rerun recipes/builtin/report.py runs/demo)
seed-spread: $(STAMP)
	$(PY) recipes/builtin/seed_spread.py --demo runs/demo --seeds 0 1 2
	$(PY) recipes/builtin/report.py runs/demo

# The speech tokenizer with and without each content objective at the demo's budget (about 15
# min on 2 cores; needs make demo's corpus): PNMI, unit agreement, speaker probe per variant
compare-content: $(STAMP)
	$(PY) benchmarks/compare_content_objectives.py --data runs/demo/data/speech \
		--out runs/content_objectives

clean-demo:
	rm -rf runs/demo
