"""Metrics of tokenizers and generated media: codebook use and bitrate (`codebook`), unit-phone
agreement (`phones`), PSNR and SSIM (`image`), intelligibility by speech recognition (`wer`)."""

from .codebook import Bitrate, bitrate, codebook_usage, entropy_bits, perplexity
from .image import psnr, ssim
from .phones import cluster_purity, frame_phone_labels, phone_purity, pnmi

__all__ = ["Bitrate", "bitrate", "cluster_purity", "codebook_usage", "entropy_bits",
           "frame_phone_labels", "perplexity", "phone_purity", "pnmi", "psnr", "ssim"]
