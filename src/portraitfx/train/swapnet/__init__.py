"""The learned face swapper (seed 004, SaSwap-style): network, morphable mesh model, losses, export."""

from portraitfx.train.swapnet.morphable import MeshBasis, build_basis
from portraitfx.train.swapnet.networks import SwapNet, SwapNetConfig

__all__ = ["MeshBasis", "SwapNet", "SwapNetConfig", "build_basis"]
