"""`lm serve`: a web demo of a bundle in the browser (text → images, continue speech, the speech
and image tokenizers), offline, with a JSON API; `lm serve --export-space DIR` makes the same
app a Hugging Face Space. `build_app` is the app, `Capabilities` what it does with a bundle."""

from .app import build_app, serve
from .capabilities import Capabilities

__all__ = ["Capabilities", "build_app", "serve"]
