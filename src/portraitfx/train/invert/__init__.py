"""Inversion: real photos into a StyleGAN's latent space (optimisation-based projection, a trainable encoder)."""

from portraitfx.train.invert.encoder import Encoder, EncoderOptions, EncoderTrainer, encode, load_encoder
from portraitfx.train.invert.features import VGGFeatures, pyramid_features
from portraitfx.train.invert.project import Projection, project, psnr

__all__ = [
    "Encoder",
    "EncoderOptions",
    "EncoderTrainer",
    "Projection",
    "VGGFeatures",
    "encode",
    "load_encoder",
    "project",
    "psnr",
    "pyramid_features",
]
