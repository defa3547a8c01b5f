"""lm: one Hugging Face causal LM over interleaved text, speech-unit and image token streams.

Only the package skeleton exists so far: vocab, data, loss, model, train and generate arrive
with the multimodal LM issues. Imports go one way: recipes → lm → speechtok.
"""
