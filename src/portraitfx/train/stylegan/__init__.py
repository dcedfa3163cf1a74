"""StyleGAN2 toolkit: networks, safetensors checkpoints, model fusion (needs the ``train`` extra).

Example:
    >>> from portraitfx.train.stylegan import Generator, GeneratorConfig, fuse_generators
    >>> face = Generator(GeneratorConfig(resolution=64, channel_base=1024, channel_max=64))
    >>> style = Generator(face.cfg)
    >>> toon = fuse_generators(face, style, "swap:16")   # structure from face, texture from style
"""

from portraitfx.train.stylegan.checkpoint import load_generator, save_generator
from portraitfx.train.stylegan.fuse import fuse_generators, parse_schedule
from portraitfx.train.stylegan.networks import Discriminator, Generator, GeneratorConfig

__all__ = [
    "Discriminator",
    "Generator",
    "GeneratorConfig",
    "fuse_generators",
    "load_generator",
    "parse_schedule",
    "save_generator",
]
