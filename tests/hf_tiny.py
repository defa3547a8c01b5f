"""Tiny random models of the transformers tokenizer families, built in the test and saved with
`save_pretrained` (no download), for speechtok.tokenizer.hf and the k-means tokenizer."""

from __future__ import annotations

from pathlib import Path

import torch


def _speech(name: str):
    import transformers as T

    if name == "mimi":
        return T.MimiModel(T.MimiConfig(
            hidden_size=32, num_filters=8, codebook_size=64, codebook_dim=16, num_quantizers=8,
            vector_quantization_hidden_dimension=16, upsample_groups=32, num_hidden_layers=1,
            intermediate_size=32, num_attention_heads=2, num_key_value_heads=2, head_dim=16))
    if name == "encodec":
        return T.EncodecModel(T.EncodecConfig(hidden_size=16, num_filters=4, codebook_size=64,
                                              num_lstm_layers=1,
                                              target_bandwidths=[1.5, 3.0, 6.0]))
    if name == "dac":
        return T.DacModel(T.DacConfig(encoder_hidden_size=8, decoder_hidden_size=32,
                                      n_codebooks=4, codebook_size=64, codebook_dim=4,
                                      hidden_size=64))
    if name == "xcodec":
        return T.XcodecModel(T.XcodecConfig(
            codebook_size=64, target_bandwidths=[0.5, 1.0],
            acoustic_model_config={"encoder_hidden_size": 4, "decoder_hidden_size": 16,
                                   "hidden_size": 32, "n_codebooks": 2, "codebook_size": 64},
            semantic_model_config={"hidden_size": 32, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "intermediate_size": 32,
                                   "conv_dim": [32] * 7, "num_conv_pos_embeddings": 16,
                                   "num_conv_pos_embedding_groups": 4}))
    if name == "xcodec2":
        return T.Xcodec2Model(T.Xcodec2Config(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            num_key_value_heads=2, head_dim=16, encoder_hidden_size=8, quantization_dim=64,
            quantization_levels=[4, 4, 4],
            semantic_model_config={"hidden_size": 32, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "intermediate_size": 32,
                                   "output_hidden_size": 32, "conv_depthwise_kernel_size": 3}))
    raise KeyError(name)


def _image(name: str):
    import transformers as T

    small = dict(base_channels=32, channel_multiplier=[1, 2], num_res_blocks=1)
    if name == "chameleon":
        return T.ChameleonVQVAE(T.ChameleonVQVAEConfig(
            embed_dim=8, num_embeddings=64, latent_channels=32, resolution=32,
            attn_resolutions=[], **small))
    if name == "janus":
        return T.JanusVQVAE(T.JanusVQVAEConfig(
            embed_dim=8, num_embeddings=64, latent_channels=32, num_patches=16,
            projection_dim=16, image_token_embed_dim=16, **small))
    if name == "emu3":
        return T.Emu3VQVAE(T.Emu3VQVAEConfig(
            codebook_size=64, embed_dim=4, latent_channels=4, attn_resolutions=[],
            hidden_size=64, temporal_downsample_factor=4, **small))
    raise KeyError(name)


def save_tiny_multimodal(name: str, folder: Path) -> Path:
    """A tiny random Chameleon or Janus (LM + image VQ in one checkpoint), saved to `folder`."""
    import transformers as T

    torch.manual_seed(0)
    vq = _image(name).config.to_dict()
    text = dict(vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=2)
    if name == "chameleon":
        mapping = {"<image>": 199, **{f"IMGIMG{chr(65 + i)}Z": 100 + i for i in range(64)}}
        model = T.ChameleonForConditionalGeneration(T.ChameleonConfig(
            **text, vq_config=vq, vocabulary_map=mapping))
    else:
        model = T.JanusForConditionalGeneration(T.JanusConfig(
            text_config=text, vq_config=vq,
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                               num_attention_heads=2, image_size=32, patch_size=16)))
    model.eval().save_pretrained(folder)
    return folder


SPEECH_CODECS = ("mimi", "encodec", "dac", "xcodec", "xcodec2")
IMAGE_VQS = ("chameleon", "janus", "emu3")


def save_tiny(name: str, folder: Path) -> Path:
    """A tiny random model of family `name`, saved to `folder`."""
    torch.manual_seed(0)
    model = _speech(name) if name in SPEECH_CODECS else _image(name)
    model.eval().save_pretrained(folder)
    return folder


def save_tiny_hubert(folder: Path, layers: int = 3) -> Path:
    from transformers import HubertConfig, HubertModel

    torch.manual_seed(0)
    HubertModel(HubertConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                             intermediate_size=64, conv_dim=(32,) * 7,
                             num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4)
                ).eval().save_pretrained(folder)
    return folder
