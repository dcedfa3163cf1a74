"""The learned hair route (seed 001): paired data by iterative reconstruction through a StyleGAN
generator, and the image-to-image hair models trained on it.

* :mod:`~portraitfx.train.hairnet.reconstruct`: the reconstruction itself;
* :mod:`~portraitfx.train.hairnet.pairs`: crude edits, pair folders, latent interpolation;
* :mod:`~portraitfx.train.hairnet.glean`: the GLEAN-like model and the pix2pixHD baseline;
* :mod:`~portraitfx.train.hairnet.trainer`: training, saving, resuming, ONNX export.
"""

from portraitfx.train.hairnet.glean import HairGLEAN, HairNetConfig, Pix2PixHD, build_hairnet, count_flops
from portraitfx.train.hairnet.pairs import (
    HairPairJob,
    interpolate_pairs,
    make_pair,
    template_edit,
    write_hair_pairs,
)
from portraitfx.train.hairnet.reconstruct import Reconstruction, ReconstructOptions, reconstruct
from portraitfx.train.hairnet.trainer import (
    HairNetTrainer,
    HairTrainOptions,
    export_hairnet,
    load_hair_pairs,
    load_hairnet,
    save_hairnet,
)

__all__ = [
    "HairGLEAN",
    "HairNetConfig",
    "HairNetTrainer",
    "HairPairJob",
    "HairTrainOptions",
    "Pix2PixHD",
    "ReconstructOptions",
    "Reconstruction",
    "build_hairnet",
    "count_flops",
    "export_hairnet",
    "interpolate_pairs",
    "load_hair_pairs",
    "load_hairnet",
    "make_pair",
    "reconstruct",
    "save_hairnet",
    "template_edit",
    "write_hair_pairs",
]
