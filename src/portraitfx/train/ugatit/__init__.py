"""U-GAT-IT (unpaired image translation with CAM attention and AdaLIN), with seed 000's region and mask variants."""

from portraitfx.train.ugatit.networks import AdaLIN, Discriminator, Generator, UGATITConfig
from portraitfx.train.ugatit.train import UGATITOptions, UGATITTrainer, load_generator, save_generator

__all__ = [
    "AdaLIN",
    "Discriminator",
    "Generator",
    "UGATITConfig",
    "UGATITOptions",
    "UGATITTrainer",
    "load_generator",
    "save_generator",
]
