"""`lm serve --export-space DIR`: the web demo as a Hugging Face Space (Docker SDK).

DIR gets `app.py` (starts the same app on port 7860), this toolkit's `lm/` and `speechtok/`
source, `requirements.txt`, a `Dockerfile` and a `README.md` whose front matter makes it a
Space. The bundle is either copied into `DIR/bundle/` or, with `space_bundle=REPO`, downloaded
by the Space when it starts (the bundle pushed with `lm push`). Push DIR with
`hf upload --repo-type space USER/NAME DIR`.
"""

from __future__ import annotations

import re
import shutil
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "speechtok-lm"
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "checkpoints", "logs", "*.tfevents*")

APP = '''"""Hugging Face Space entry point, written by `lm serve --export-space`.

Serves the speechtok-lm web demo of a bundle: the folder `bundle/` beside this file, or the
Hub repo named by the LM_BUNDLE variable (a bundle uploaded with `lm push`)."""

import os
from pathlib import Path

from lm.serve import serve

HERE = Path(__file__).resolve().parent
bundle = os.environ.get("LM_BUNDLE", {bundle!r})
if not (HERE / bundle).is_dir() and not Path(bundle).is_dir():
    from huggingface_hub import snapshot_download

    bundle = snapshot_download(bundle)  # a Hub repo id
elif (HERE / bundle).is_dir():
    bundle = str(HERE / bundle)

if __name__ == "__main__":
    serve(bundle, host=os.environ.get("HOST", "0.0.0.0"), port=int(os.environ.get("PORT", 7860)),
          max_upload_seconds=float(os.environ.get("MAX_UPLOAD_SECONDS", 60)))
'''

DOCKERFILE = """FROM python:3.11-slim
# build-essential: pesq (a dependency of the toolkit's metrics) builds from source
RUN apt-get update && apt-get install -y --no-install-recommends build-essential \\
    && rm -rf /var/lib/apt/lists/*
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user PATH=/home/user/.local/bin:$PATH
WORKDIR /home/user/app
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt
COPY --chown=user . .
EXPOSE 7860
CMD ["python", "app.py"]
"""

README = """---
title: {title}
emoji: 🗣️
colorFrom: indigo
colorTo: gray
sdk: docker
app_port: 7860
pinned: false{models}
---

# {title}

The speechtok-lm web demo of the bundle `{bundle}`: text → images, continue a speech prompt,
the speech tokenizer (units and resynthesis) and the image tokenizer (codes and
reconstruction). Written by `lm serve --export-space`; run it locally with `python app.py`.
"""


def requirements() -> list[str]:
    """The toolkit's own dependencies (no extras), CPU torch first: a Space without a GPU
    would otherwise download the CUDA build."""
    try:
        wanted = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError as err:
        raise RuntimeError(f"{DISTRIBUTION} is not installed (pip install -e .): its "
                           "dependency list is the Space's requirements.txt") from err
    core = [r for r in wanted if "extra ==" not in r]
    return ["--extra-index-url https://download.pytorch.org/whl/cpu", *core]


def export_space(bundle: str | Path, out: str | Path, space_bundle: str | None = None,
                 title: str | None = None) -> Path:
    """Write the Space folder `out` for `bundle` (copied in), or for the Hub repo
    `space_bundle` (downloaded by the Space when it starts). Returns `out`."""
    import lm
    import speechtok

    bundle, out = Path(bundle), Path(out)
    if not (bundle / "config.json").exists():
        raise FileNotFoundError(f"{bundle} is not an LM bundle (no config.json); `lm train` "
                                "writes one")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty: choose a new folder")
    if space_bundle is not None and not re.fullmatch(r"[\w.-]+/[\w.-]+", space_bundle):
        raise ValueError(f"--space-bundle must be a Hub repo id like user/name, got "
                         f"{space_bundle!r}")
    out.mkdir(parents=True, exist_ok=True)
    for package in (lm, speechtok):
        src = Path(package.__file__).parent
        shutil.copytree(src, out / src.name, ignore=SKIP)
    if space_bundle is None:
        shutil.copytree(bundle, out / "bundle", ignore=SKIP)
    (out / "app.py").write_text(APP.format(bundle=space_bundle or "bundle"))
    (out / "requirements.txt").write_text("\n".join(requirements()) + "\n")
    (out / "Dockerfile").write_text(DOCKERFILE)
    name = title or f"{bundle.resolve().name} demo"
    models = f"\nmodels:\n- {space_bundle}" if space_bundle else ""  # links the Space to it
    (out / "README.md").write_text(README.format(title=name, models=models,
                                                 bundle=space_bundle or bundle.resolve().name))
    return out
