"""AI portrait studio (seed 002): Stable Diffusion portraits of a person from one photo,
with face-identity injection and mask-blended dual denoising.

* :mod:`~portraitfx.portrait.models`: the models, from local files only;
* :mod:`~portraitfx.portrait.schedule`: the generation schedule (custom denoising loop).
"""

from portraitfx.portrait.models import load_loras, load_models_yaml, load_pipeline, unload_loras
from portraitfx.portrait.schedule import Generation, Schedule, generate, schedule_calls

__all__ = [
    "Generation",
    "Schedule",
    "generate",
    "load_loras",
    "load_models_yaml",
    "load_pipeline",
    "schedule_calls",
    "unload_loras",
]
