"""lm: one Hugging Face causal LM over interleaved text, speech-unit and image token streams.

Flat, a file per concern: `vocab` (one id space, a contiguous range per modality; several codes
a position depth-first, a hierarchy's grids one after the other, each level its own ids),
`pretokenize` (`lm tokenize`: media → codes once, sharded per process), `formats` (the sample
formats, incl. CM3 causal-masked and MaskGIT), `mixture` (weighted task mixtures), `data` (codes
→ task samples with caption dropout → packed batches, by step), `packing` (block-diagonal
causal masks, bidirectional spans), `loss` (per-modality weighted cross-entropy), `model` (a new
Llama-style LM, or a local causal LM extended to the vocabulary), `train` (`lm train`: the
shared loop, the bundle), `generate` (the modality mask, classifier-free guidance), `maskgit`
(parallel decoding of an image), `pipelines` (TextToImage, SpeechContinuation), `durations`,
`evaluate` (held-out NLL per unit), `spoken_benchmark` (`lm benchmark`: pairwise likelihood
tests, sWUGGY / sBLIMP / StoryCloze), `classifier_score`, `model_card`, `cli`; the subpackage
`serve` is the web demo (`lm serve`).
Imports go one way: recipes → lm → speechtok.
"""
