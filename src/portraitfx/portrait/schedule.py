"""The seed's generation schedule: a custom denoising loop with identity injection and
mask-blended dual denoising.

Phases over the ``N`` steps (fractions of ``N``, every switch point an option):

1. ``prompt`` (steps before ``inject_at``): the prompt alone -- the identity adapter's
   scale is 0, so layout and style settle and nothing depends on the reference photo;
2. ``identity`` (from ``inject_at``): the identity adapter at ``ip_scale``;
3. ``blend`` (from ``blend_at``): at its first step the one-step prediction of the
   clean image (the scheduler's ``pred_original_sample``) is decoded, the face is found
   and segmented in it (``mask_fn``), and from then on each step runs the UNet twice --
   with the identity injected and without -- and the two next latents are blended by
   the face mask: the face region from the identity pass, the rest from the
   prompt-only pass, so the identity lands on the face without pulling the background
   and the costume away from the style.

``blend_at=None`` and ``inject_at=0`` give a plain IP-Adapter run (the baseline), in the
same code. Classifier-free guidance runs the unconditional and conditional halves as
one batch, so one UNet evaluation is one call.

Example:
    >>> g = generate(pipe, "a portrait of a person", reference=photo, seed=7)   # doctest: +SKIP
    >>> g.unet_calls                                                            # doctest: +SKIP
    48
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from portraitfx.errors import ConfigError

__all__ = ["Generation", "Schedule", "clean_guess", "generate", "phase_of", "schedule_calls"]

MaskFn = Callable[[np.ndarray], "np.ndarray | None"]


@dataclass(frozen=True)
class Schedule:
    """Settings of one generation.

    Attributes:
        steps: denoising steps.
        guidance: classifier-free guidance scale (1: off).
        inject_at: share of the steps run on the prompt alone before the identity comes in.
        blend_at: share of the steps after which each step runs twice and the latents are
            blended by the face mask; None: never (a plain identity-adapter run).
        ip_scale: the identity adapter's strength while it is on.
        height, width: image size (multiples of 8).
    """

    steps: int = 30
    guidance: float = 7.0
    inject_at: float = 0.2
    blend_at: float | None = 0.4
    ip_scale: float = 0.7
    height: int = 512
    width: int = 512

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ConfigError(f"steps must be at least 1, got {self.steps}")
        if not 0.0 <= self.inject_at <= 1.0:
            raise ConfigError(f"inject_at must be within [0, 1], got {self.inject_at}")
        if self.blend_at is not None and not self.inject_at <= self.blend_at <= 1.0:
            raise ConfigError(f"blend_at must be within [inject_at, 1], got {self.blend_at}")
        if self.height % 8 or self.width % 8 or self.height < 8 or self.width < 8:
            raise ConfigError(f"height and width must be multiples of 8, got {self.height}x{self.width}")
        if self.guidance < 1.0 or self.ip_scale < 0:
            raise ConfigError("guidance must be >= 1 and ip_scale >= 0")

    @property
    def inject_step(self) -> int:
        return int(round(self.inject_at * self.steps))

    @property
    def blend_step(self) -> int | None:
        return None if self.blend_at is None else int(round(self.blend_at * self.steps))


def phase_of(schedule: Schedule, step: int) -> str:
    """``"prompt"``, ``"identity"`` or ``"blend"`` for step ``step`` (0-based)."""
    b = schedule.blend_step
    if b is not None and step >= b:
        return "blend"
    return "identity" if step >= schedule.inject_step else "prompt"


def schedule_calls(schedule: Schedule) -> int:
    """UNet evaluations the schedule needs: one per step, two per blended step."""
    return sum(2 if phase_of(schedule, i) == "blend" else 1 for i in range(schedule.steps))


@dataclass
class Generation:
    """One generated image and how it was made.

    Attributes:
        image: ``H x W x 3`` uint8.
        seed: the seed.
        unet_calls: UNet evaluations made.
        phases: each step's phase.
        mask: the face mask at latent size used for blending (None without blending or face).
        preview: the decoded one-step prediction the mask was found in (uint8), if any.
        latents: the latents after each step (when asked for).
        notes: what happened on the way (e.g. no face found in the preview).
    """

    image: np.ndarray
    seed: int
    unet_calls: int = 0
    phases: list[str] = field(default_factory=list)
    mask: np.ndarray | None = None
    preview: np.ndarray | None = None
    latents: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _decode(pipe: Any, latents: Any) -> np.ndarray:
    import torch

    with torch.no_grad():
        img = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
    return ((img[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()


def clean_guess(scheduler: Any, model_output: Any, t: Any, latents: Any) -> Any:
    """The one-step prediction of the clean latents, for schedulers whose step does not return it.

    Karras-sigma schedulers (Euler family): ``x0 = x - sigma * eps``; variance-preserving
    ones (DPM-Solver++, UniPC, ...): ``x0 = (x - sqrt(1 - a) * eps) / sqrt(a)`` with ``a``
    the cumulative alpha at ``t`` (``v``-prediction models: ``x0 = sqrt(a) x - sqrt(1 - a) v``).
    """
    import torch

    kind = getattr(scheduler.config, "prediction_type", "epsilon")
    if "Euler" in type(scheduler).__name__:
        idx = int((scheduler.timesteps == t).nonzero()[0])
        sigma = scheduler.sigmas[idx].to(latents.dtype)
        if kind == "v_prediction":
            return model_output * (-sigma / (sigma**2 + 1) ** 0.5) + latents / (sigma**2 + 1)
        return latents - sigma * model_output
    a = scheduler.alphas_cumprod[int(t)].to(latents.device, latents.dtype)
    if kind == "v_prediction":
        return torch.sqrt(a) * latents - torch.sqrt(1 - a) * model_output
    return (latents - torch.sqrt(1 - a) * model_output) / torch.sqrt(a)


def _has_identity_adapter(pipe: Any) -> bool:
    return getattr(getattr(pipe, "unet", None), "encoder_hid_proj", None) is not None


def generate(
    pipe: Any,
    prompt: str,
    *,
    reference: Any = None,
    negative: str = "",
    schedule: Schedule | None = None,
    seed: int = 0,
    mask_fn: MaskFn | None = None,
    callback: Callable[[int, str, Any], None] | None = None,
    keep_latents: bool = False,
    control: np.ndarray | None = None,
    control_scale: float = 1.0,
) -> Generation:
    """Run the schedule on a Stable Diffusion 1.5-class or SDXL pipeline (see the module).

    Args:
        pipe: a diffusers ``StableDiffusionPipeline`` (identity adapter loaded for ``reference``).
        prompt, negative: the text prompts.
        reference: the reference face (PIL image or ``H x W x 3`` uint8) for an IP-Adapter on
            image features; the identity vector (1-D) for a FaceID adapter; None: prompt only.
        schedule: :class:`Schedule`.
        seed: the starting noise's seed (same seed, same settings: the same image).
        mask_fn: finds the face in the decoded preview: ``uint8 image -> H x W float mask``
            (or None when there is no face; then the blend phase keeps the identity pass).
        callback: ``callback(step, phase, latents)`` after every step.
        keep_latents: keep the latents after every step in the result.
        control: a pose or layout picture (``H x W x 3`` uint8: an OpenPose drawing, edges,
            depth ...) for the pipeline's ControlNet; ``control_scale`` its strength.
    """
    import torch
    import torch.nn.functional as F

    s = schedule or Schedule()
    if reference is not None and not _has_identity_adapter(pipe):
        raise ConfigError("a reference photo needs an identity adapter (IP-Adapter) loaded into the pipeline")
    device = pipe.device
    cfg = s.guidance > 1.0
    with torch.no_grad():
        xl = getattr(pipe, "text_encoder_2", None) is not None
        xl_cond: dict[str, Any] = {}
        if xl:  # SDXL: two text encoders, a pooled text vector and the size/crop "time ids"
            embeds, neg_embeds, pooled, neg_pooled = pipe.encode_prompt(
                prompt, device=device, num_images_per_prompt=1, do_classifier_free_guidance=cfg,
                negative_prompt=negative or None,
            )  # fmt: skip
            time_ids = pipe._get_add_time_ids(
                (s.height, s.width), (0, 0), (s.height, s.width), dtype=embeds.dtype,
                text_encoder_projection_dim=pipe.text_encoder_2.config.projection_dim,
            ).to(device)  # fmt: skip
            xl_cond = {
                "text_embeds": torch.cat([neg_pooled, pooled]) if cfg else pooled,
                "time_ids": torch.cat([time_ids, time_ids]) if cfg else time_ids,
            }
        else:
            embeds, neg_embeds = pipe.encode_prompt(prompt, device, 1, cfg, negative)
        text = torch.cat([neg_embeds, embeds]) if cfg else embeds
        from portraitfx.portrait.models import adapter_kind

        kind, id_dim = adapter_kind(pipe)
        added = None
        if kind == "faceid":
            if reference is not None and (not isinstance(reference, np.ndarray) or reference.ndim != 1):
                raise ConfigError("a FaceID adapter takes the person's identity vector, not a picture")
            vec = (
                np.zeros(id_dim or 0, np.float32) if reference is None else np.asarray(reference, np.float32)
            )
            if vec.shape != (id_dim,):
                raise ConfigError(
                    f"the FaceID adapter takes {id_dim}-d identity vectors, got {vec.shape[0]}-d"
                )
            emb = torch.from_numpy(vec)[None, None].to(device, text.dtype)
            added = {"image_embeds": [torch.cat([torch.zeros_like(emb), emb]) if cfg else emb]}
        elif reference is not None:
            from PIL import Image

            ref = Image.fromarray(reference) if isinstance(reference, np.ndarray) else reference
            image_embeds = pipe.prepare_ip_adapter_image_embeds(ref, None, device, 1, cfg)
            added = {"image_embeds": image_embeds}
        elif kind == "clip":  # adapter loaded but no reference: zero image tokens
            dim = pipe.image_encoder.config.projection_dim
            added = {"image_embeds": [torch.zeros(2 if cfg else 1, 1, dim)]}
    if xl_cond:
        added = {**xl_cond, **(added or {})}
    scheduler = pipe.scheduler
    scheduler.set_timesteps(s.steps, device=device)
    vae_scale = 2 ** (len(pipe.vae.config.block_out_channels) - 1)
    shape = (1, pipe.unet.config.in_channels, s.height // vae_scale, s.width // vae_scale)
    gen = torch.Generator().manual_seed(int(seed))
    latents = torch.randn(shape, generator=gen, dtype=text.dtype).to(device) * scheduler.init_noise_sigma
    result = Generation(image=np.zeros((s.height, s.width, 3), np.uint8), seed=int(seed))
    mask_t = None

    cond = None
    if control is not None:
        net = getattr(pipe, "controlnet", None)
        if net is None:
            raise ConfigError("a control picture needs a ControlNet loaded with the model (--controlnet)")
        import cv2

        pic = cv2.resize(np.asarray(control, np.uint8), (s.width, s.height), interpolation=cv2.INTER_AREA)
        cond = torch.from_numpy(pic.astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(device, text.dtype)
        cond = torch.cat([cond] * 2) if cfg else cond

    def eps(x: Any, t: Any, scale: float) -> Any:
        inp = torch.cat([x] * 2) if cfg else x
        inp = scheduler.scale_model_input(inp, t)
        if kind != "none":
            pipe.set_ip_adapter_scale(scale)
        extra: dict[str, Any] = {}
        if cond is not None:
            down, mid = pipe.controlnet(
                inp, t, encoder_hidden_states=text, controlnet_cond=cond, conditioning_scale=control_scale,
                return_dict=False, **({"added_cond_kwargs": xl_cond} if xl_cond else {}),
            )  # fmt: skip
            extra = {"down_block_additional_residuals": down, "mid_block_additional_residual": mid}
        out = pipe.unet(inp, t, encoder_hidden_states=text, added_cond_kwargs=added, **extra).sample
        result.unet_calls += 1
        if cfg:
            u, c = out.chunk(2)
            out = u + s.guidance * (c - u)
        return out

    strength = s.ip_scale if reference is not None else 0.0
    takes_generator = "generator" in inspect.signature(scheduler.step).parameters

    def noise_arg(g: Any) -> dict[str, Any]:
        # ancestral and SDE samplers draw noise every step: from the run's own generator
        return {"generator": g} if takes_generator else {}

    with torch.no_grad():
        for i, t in enumerate(scheduler.timesteps):
            phase = phase_of(s, i) if reference is not None else "prompt"
            result.phases.append(phase)
            if phase == "blend":
                # the identity pass on a copy of the scheduler, the prompt-only pass on the real one
                e_id = eps(latents, t, strength)
                twin = torch.Generator().set_state(gen.get_state())  # the same noise for both passes
                id_out = copy.deepcopy(scheduler).step(e_id, t, latents, **noise_arg(twin))
                if mask_t is None:
                    # the first blended step: find the face in the identity pass's clean-image guess
                    x0 = getattr(id_out, "pred_original_sample", None)
                    result.preview = _decode(
                        pipe, x0 if x0 is not None else clean_guess(scheduler, e_id, t, latents)
                    )
                    mask = mask_fn(result.preview) if mask_fn is not None else None
                    if mask is None:
                        result.notes.append("no face in the preview: the identity pass is kept everywhere")
                        mask = np.ones(result.preview.shape[:2], np.float32)
                    m = torch.from_numpy(np.asarray(mask, np.float32))[None, None]
                    mask_t = (
                        F.interpolate(m, size=shape[2:], mode="area").to(device, latents.dtype).clamp(0, 1)
                    )
                    result.mask = mask_t[0, 0].cpu().numpy()
                p_out = scheduler.step(eps(latents, t, 0.0), t, latents, **noise_arg(gen))
                latents = mask_t * id_out.prev_sample + (1 - mask_t) * p_out.prev_sample
            else:
                scale = 0.0 if phase == "prompt" else strength
                latents = scheduler.step(eps(latents, t, scale), t, latents, **noise_arg(gen)).prev_sample
            if keep_latents:
                result.latents.append(latents.detach().clone())
            if callback is not None:
                callback(i, phase, latents)
    if kind != "none":
        pipe.set_ip_adapter_scale(s.ip_scale)
    result.image = _decode(pipe, latents)
    return result
