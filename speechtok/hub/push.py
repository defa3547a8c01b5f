"""`push`: upload a saved tokenizer or LM bundle (with its model card) to the Hugging Face Hub.

The token is never handled here beyond redaction: huggingface_hub reads it from `HF_TOKEN` or the
saved login (`hf auth login`), sends it as a Bearer header, and nothing we print or raise carries
it (errors are re-raised with the token masked and without the original exception chained).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

# Training state and scratch never go up: optimiser checkpoints (also inside a bundle's nested
# tokenizers), TensorBoard logs, half-written `*.tmp` siblings of atomic saves.
IGNORE_PATTERNS = ["checkpoints/*", "*/checkpoints/*", "logs/*", "*/logs/*", "*.tmp", "*.tmp/*",
                   "*.partial", "*~", "__pycache__/*", "*/__pycache__/*", ".ipynb_checkpoints/*",
                   ".run.lock", "*/.run.lock"]


def _redact(text: str, token: str | None) -> str:
    return text.replace(token, "hf_***") if token else text


def push(folder: str | Path, repo: str, private: bool = False, revision: str | None = None, *,
         token: str | None = None, endpoint: str | None = None,
         write_card: Callable[[Path], object] | None = None,
         commit_message: str = "Upload with speechtok-lm") -> str:
    """Upload a saved tokenizer or LM bundle `folder` to the Hub repo `repo`; return the commit
    URL. Creates the repo (private if asked; otherwise the namespace's default visibility) and
    the `revision` branch when missing. Writes a model card first when the folder has no
    README.md (`write_card(folder)`, default: the tokenizer card); an existing README is kept.
    Checkpoints, logs and temporary files are not uploaded.

    The token comes from `token` or, as usual, from HF_TOKEN / the saved login. The endpoint is
    `endpoint`, else HF_ENDPOINT read now (huggingface_hub reads it once at import, so setting it
    later would otherwise be ignored), else the Hub."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder to push")
    if not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} has no model.safetensors: not a saved model (is "
                                "training still running, or is this the wrong folder?)")
    if not (folder / "README.md").exists():
        if write_card is not None:
            write_card(folder)
        elif json.loads((folder / "config.json").read_text()).get("kind") in ("speech",
                                                                                 "image"):
            from .model_card import write_tokenizer_card

            write_tokenizer_card(folder)
        else:
            print(f"warning: {folder} has no README.md model card", file=sys.stderr)

    from huggingface_hub import HfApi, get_token

    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or "").rstrip("/") or None
    secret = token or get_token()  # only to mask it in error messages
    api = HfApi(endpoint=endpoint, token=token)
    try:
        url = api.create_repo(repo, private=True if private else None, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo, branch=revision, exist_ok=True)
        info = api.upload_folder(folder_path=str(folder), repo_id=repo, revision=revision,
                                 ignore_patterns=list(IGNORE_PATTERNS),
                                 commit_message=commit_message)
    except Exception as err:
        # `from None`: the chained original could repeat request details; the message keeps
        # the error's type and text (status, URL, the server's reason), token masked.
        raise RuntimeError(_redact(f"push of {folder} to {repo} failed: {type(err).__name__}: "
                                   f"{err}", secret)) from None
    where = f"{url}/tree/{revision}" if revision else str(url)
    print(_redact(f"pushed {folder} to {where} (commit {info.commit_url})", secret))
    return info.commit_url

