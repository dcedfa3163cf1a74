"""Tiny random Stable Diffusion components, written as real local files (tests and benchmarks).

Real weights cannot be downloaded here, so the portrait studio's tests build what a
user would point it at, only tiny and random: a diffusers pipeline folder (UNet, VAE,
CLIP text encoder and a character-level CLIP tokenizer, DDIM scheduler, CLIP image
encoder with projection), an IP-Adapter weights file in the layout diffusers'
``load_ip_adapter`` reads, and LoRA files in the layout ``load_lora_weights`` reads.
Everything is safetensors and loads with ``local_files_only``.

Example:
    >>> files = build_tiny_sd(tmp_path)                      # doctest: +SKIP
    >>> sorted(files)                                        # doctest: +SKIP
    ['base', 'ip_adapter', 'lora_a', 'lora_b']
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["build_tiny_sd", "build_tiny_sdxl", "make_tiny_controlnet", "make_tiny_faceid", "make_tiny_lora"]

CROSS_DIM = 32
BLOCKS = (32, 64)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs], strict=True))


def _tokenizer_files(folder: Path) -> dict[str, int]:
    """A character-level CLIP BPE vocabulary (no merges)."""
    chars = list(_bytes_to_unicode().values())
    vocab: dict[str, int] = {}
    for c in chars:
        vocab[c] = len(vocab)
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    return vocab


def _ip_attention(unet: object, cross: int) -> dict[str, object]:
    """Random IP-Adapter key/value projections for every cross-attention layer of ``unet``, in the
    numbering diffusers' loader expects (1, 3, 5, ... in the order of the attention processors)."""
    import torch

    out: dict[str, object] = {}
    key = 1
    for name in unet.attn_processors:  # type: ignore[attr-defined]
        if name.endswith("attn1.processor"):
            continue
        if name.startswith("mid_block"):
            width = BLOCKS[-1]
        elif name.startswith("up_blocks"):
            width = list(reversed(BLOCKS))[int(name[len("up_blocks.")])]
        else:
            width = BLOCKS[int(name[len("down_blocks.")])]
        out[f"ip_adapter.{key}.to_k_ip.weight"] = torch.randn(width, cross) * 0.3
        out[f"ip_adapter.{key}.to_v_ip.weight"] = torch.randn(width, cross) * 0.3
        key += 2
    return out


def build_tiny_sd(folder: str | os.PathLike[str], seed: int = 0, size: int = 64) -> dict[str, Path]:
    """Write a tiny SD 1.5-shaped pipeline and its extras under ``folder``.

    Returns:
        ``{"base": pipeline folder, "ip_adapter": .safetensors, "lora_a": ..., "lora_b": ...}``.
    """
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vocab = _tokenizer_files(root / "tokenizer-src")
        tokenizer = CLIPTokenizer(
            str(root / "tokenizer-src" / "vocab.json"),
            str(root / "tokenizer-src" / "merges.txt"),
            model_max_length=77,
        )
        eos = vocab["<|endoftext|>"]
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(vocab), hidden_size=CROSS_DIM, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, projection_dim=CROSS_DIM,
                bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos, pad_token_id=eos,
            )
        )  # fmt: skip
        unet = UNet2DConditionModel(
            block_out_channels=BLOCKS, layers_per_block=1, sample_size=size // 2, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=CROSS_DIM, norm_num_groups=8, attention_head_dim=8,
        )  # fmt: skip
        vae = AutoencoderKL(
            block_out_channels=list(BLOCKS), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, sample_size=size,
        )  # fmt: skip
        scheduler = DDIMScheduler(
            beta_start=0.00085,
            beta_end=0.012,
            beta_schedule="scaled_linear",
            clip_sample=False,
            set_alpha_to_one=False,
        )
        image_encoder = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                patch_size=4, projection_dim=32,
            )
        )  # fmt: skip
        processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
        pipe = StableDiffusionPipeline(
            vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
            safety_checker=None, feature_extractor=processor, image_encoder=image_encoder, requires_safety_checker=False,
        )  # fmt: skip
        pipe.save_pretrained(root / "sd-tiny", safe_serialization=True)
        # IP-Adapter: image projection (4 tokens) and per cross-attention key/value projections
        ip = {
            "image_proj.proj.weight": torch.randn(CROSS_DIM * 4, 32) * 0.2,
            "image_proj.proj.bias": torch.zeros(CROSS_DIM * 4),
            "image_proj.norm.weight": torch.ones(CROSS_DIM),
            "image_proj.norm.bias": torch.zeros(CROSS_DIM),
        }
        ip.update(_ip_attention(unet, CROSS_DIM))
        (root / "ip-adapter").mkdir(exist_ok=True)
        save_file(ip, str(root / "ip-adapter" / "ip-adapter_tiny.safetensors"))
        lora_a = make_tiny_lora(pipe, root / "loras" / "style-a.safetensors", seed=seed + 1)
        lora_b = make_tiny_lora(pipe, root / "loras" / "style-b.safetensors", seed=seed + 2)
    return {
        "base": root / "sd-tiny",
        "ip_adapter": root / "ip-adapter" / "ip-adapter_tiny.safetensors",
        "lora_a": lora_a,
        "lora_b": lora_b,
    }


def make_tiny_lora(pipe: object, path: str | os.PathLike[str], *, rank: int = 4, seed: int = 0) -> Path:
    """A random LoRA for ``pipe``'s UNet attention projections, saved as diffusers LoRA safetensors."""
    import torch
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = pipe.unet  # type: ignore[attr-defined]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet.add_adapter(
            LoraConfig(
                r=rank,
                lora_alpha=rank,
                target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                init_lora_weights=False,
            ),
            adapter_name="tmp",
        )
        state = get_peft_model_state_dict(unet, adapter_name="tmp")
        state = {k: v * 3.0 for k, v in state.items()}  # strong enough to see
    unet.delete_adapters("tmp")
    StableDiffusionPipeline.save_lora_weights(
        str(out.parent), unet_lora_layers=state, weight_name=out.name, safe_serialization=True
    )
    return out


def make_tiny_controlnet(
    base: str | os.PathLike[str], path: str | os.PathLike[str], *, seed: int = 0
) -> Path:
    """A random ControlNet for the tiny pipeline at ``base`` (built from its UNet), saved as a diffusers folder."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(
        Path(base) / "unet", local_files_only=True, use_safetensors=True
    )
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=(8, 16))
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        for p in net.parameters():  # from_unet zero-initialises the outputs: give them something to say
            p.add_(torch.randn_like(p) * 0.05)
    out = Path(path)
    net.save_pretrained(out, safe_serialization=True)
    return out


def make_tiny_faceid(
    base: str | os.PathLike[str], path: str | os.PathLike[str], *, id_dim: int = 128, seed: int = 0
) -> Path:
    """Random IP-Adapter FaceID weights (identity vectors of ``id_dim``) for the tiny pipeline at ``base``."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_pretrained(
        Path(base) / "unet", local_files_only=True, use_safetensors=True
    )
    hidden = 2 * id_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        sd = {
            "image_proj.proj.0.weight": torch.randn(hidden, id_dim) * 0.2,
            "image_proj.proj.0.bias": torch.zeros(hidden),
            "image_proj.proj.2.weight": torch.randn(CROSS_DIM * 4, hidden) * 0.2,
            "image_proj.proj.2.bias": torch.zeros(CROSS_DIM * 4),
            "image_proj.norm.weight": torch.ones(CROSS_DIM),
            "image_proj.norm.bias": torch.zeros(CROSS_DIM),
        }
        sd.update(_ip_attention(unet, CROSS_DIM))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(sd, str(out))
    return out


def build_tiny_sdxl(folder: str | os.PathLike[str], seed: int = 0, size: int = 64) -> dict[str, Path]:
    """A tiny SDXL-shaped pipeline (two text encoders, text-time conditioning) and IP-Adapter weights for it."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from safetensors.torch import save_file
    from transformers import (
        CLIPImageProcessor,
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    cross = 64
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vocab = _tokenizer_files(root / "tokenizer-src")
        files = (str(root / "tokenizer-src" / "vocab.json"), str(root / "tokenizer-src" / "merges.txt"))
        tok, tok2 = CLIPTokenizer(*files, model_max_length=77), CLIPTokenizer(*files, model_max_length=77)
        eos = vocab["<|endoftext|>"]

        def text_config() -> CLIPTextConfig:
            return CLIPTextConfig(
                vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos, pad_token_id=eos,
            )  # fmt: skip

        unet = UNet2DConditionModel(
            block_out_channels=BLOCKS, layers_per_block=1, sample_size=size // 2, in_channels=4, out_channels=4,
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, transformer_layers_per_block=(1, 1), projection_class_embeddings_input_dim=80,
            cross_attention_dim=cross, norm_num_groups=8,
        )  # fmt: skip
        vae = AutoencoderKL(
            block_out_channels=list(BLOCKS), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8,
            down_block_types=["DownEncoderBlock2D"] * 2, up_block_types=["UpDecoderBlock2D"] * 2, sample_size=size,
        )  # fmt: skip
        vision = CLIPVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
            patch_size=4, projection_dim=32,
        )  # fmt: skip
        pipe = StableDiffusionXLPipeline(
            vae=vae, text_encoder=CLIPTextModel(text_config()), text_encoder_2=CLIPTextModelWithProjection(text_config()),
            tokenizer=tok, tokenizer_2=tok2, unet=unet,
            scheduler=EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear"),
            image_encoder=CLIPVisionModelWithProjection(vision),
            feature_extractor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        )  # fmt: skip
        pipe.save_pretrained(root / "sdxl-tiny", safe_serialization=True)
        ip = {
            "image_proj.proj.weight": torch.randn(cross * 4, 32) * 0.2,
            "image_proj.proj.bias": torch.zeros(cross * 4),
            "image_proj.norm.weight": torch.ones(cross),
            "image_proj.norm.bias": torch.zeros(cross),
        }
        ip.update(_ip_attention(unet, cross))
        (root / "ip-adapter").mkdir(exist_ok=True)
        save_file(ip, str(root / "ip-adapter" / "ip-adapter_sdxl_tiny.safetensors"))
    return {
        "base": root / "sdxl-tiny",
        "ip_adapter": root / "ip-adapter" / "ip-adapter_sdxl_tiny.safetensors",
    }
