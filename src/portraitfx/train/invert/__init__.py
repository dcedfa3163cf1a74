"""Inversion: real photos into a StyleGAN's latent space (optimisation-based projection)."""

from portraitfx.train.invert.features import VGGFeatures, pyramid_features
from portraitfx.train.invert.project import Projection, project, psnr

__all__ = ["Projection", "VGGFeatures", "project", "psnr", "pyramid_features"]
