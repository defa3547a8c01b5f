"""lm: one Hugging Face causal LM over interleaved text, speech-unit and image token streams.

So far: `lm.vocab` (MultimodalVocab: one id space, a contiguous range per modality),
`lm.pretokenize` (`lm tokenize`: media → codes once, sharded per process), `lm.formats` (the
sample formats, incl. CM3 causal-masked), `lm.mixture` (weighted dataset mixtures), `lm.data`
(codes → task samples with caption dropout → packed batches, by step), `lm.loss`
(per-modality weighted cross-entropy), `lm.packing` (packed blocks with a block-diagonal causal
mask), `lm.model` (a new Llama-style LM, or a local causal LM extended to the vocabulary) and
`lm.train` (`lm train`: accelerate loop, exact resume, the bundle). Generation arrives next.
Imports go one way: recipes → lm → speechtok.
"""
