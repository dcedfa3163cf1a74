"""The portrait studio's models and generation schedule, on tiny random SD components built as real files."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from portraitfx.errors import (  # noqa: E402
    ChecksumError,
    ConfigError,
    InputNotFoundError,
    ModelError,
    UnsafeModelError,
)
from portraitfx.portrait import (  # noqa: E402
    Schedule,
    generate,
    load_loras,
    load_models_yaml,
    load_pipeline,
    schedule_calls,
    unload_loras,
)
from portraitfx.testing.tiny_sd import build_tiny_sd  # noqa: E402

SIZE = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"), size=SIZE)


@pytest.fixture(scope="module")
def pipe(files):
    return load_pipeline(files["base"], ip_adapter=files["ip_adapter"])


@pytest.fixture(scope="module")
def refs():
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8), rng.integers(
        0, 255, (SIZE, SIZE, 3), dtype=np.uint8
    )


def _sched(**kw) -> Schedule:
    return Schedule(**{"steps": 10, "height": SIZE, "width": SIZE, "inject_at": 0.3, "blend_at": 0.5, **kw})


def _square(image):
    m = np.zeros(image.shape[:2], np.float32)
    m[SIZE // 4 : 3 * SIZE // 4, SIZE // 4 : 3 * SIZE // 4] = 1
    return m


def test_steps_before_injection_do_not_depend_on_the_reference(pipe, refs):
    s = _sched()
    a = generate(
        pipe, "a portrait", reference=refs[0], schedule=s, seed=3, mask_fn=_square, keep_latents=True
    )
    b = generate(
        pipe, "a portrait", reference=refs[1], schedule=s, seed=3, mask_fn=_square, keep_latents=True
    )
    assert a.phases[: s.inject_step] == ["prompt"] * s.inject_step
    for i in range(s.inject_step):
        assert torch.equal(a.latents[i], b.latents[i]), i
    assert not torch.equal(a.latents[s.inject_step], b.latents[s.inject_step])  # identity in from here
    assert not np.array_equal(a.image, b.image)


def test_blended_latent_is_identity_inside_the_mask_and_prompt_outside(pipe, refs):
    s = _sched()
    k = s.blend_step
    mixed = generate(
        pipe, "a portrait", reference=refs[0], schedule=s, seed=5, mask_fn=_square, keep_latents=True
    )
    ident = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=5, mask_fn=lambda im: np.ones(im.shape[:2]), keep_latents=True)  # fmt: skip
    prompt = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=5, mask_fn=lambda im: np.zeros(im.shape[:2]), keep_latents=True)  # fmt: skip
    # the same state before the first blended step ...
    assert torch.equal(mixed.latents[k - 1], ident.latents[k - 1])
    # ... then inside the mask the identity pass, outside the prompt-only pass
    inside = torch.from_numpy(mixed.mask > 0.5)
    assert inside.any() and (~inside).any()
    assert torch.allclose(mixed.latents[k][0][:, inside], ident.latents[k][0][:, inside], atol=1e-6)
    assert torch.allclose(mixed.latents[k][0][:, ~inside], prompt.latents[k][0][:, ~inside], atol=1e-6)
    assert not torch.allclose(ident.latents[k], prompt.latents[k])
    assert mixed.preview is not None and mixed.preview.shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize(
    ("inject", "blend"), [(0.0, None), (0.3, None), (0.2, 0.4), (0.3, 0.5), (0.0, 0.0)], ids=str
)
def test_unet_evaluations_follow_the_schedule(pipe, refs, inject, blend):
    s = _sched(inject_at=inject, blend_at=blend)
    calls = []
    pipe.unet.register_forward_hook(lambda *a: calls.append(1))
    try:
        g = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=1, mask_fn=_square)
    finally:
        pipe.unet._forward_hooks.clear()
    assert g.unet_calls == len(calls) == schedule_calls(s)
    blended = 0 if blend is None else s.steps - int(round(blend * s.steps))
    assert g.unet_calls == s.steps + blended


def test_same_seed_same_image_and_guidance(pipe, refs):
    s = _sched(steps=6)
    a = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=11, mask_fn=_square)
    b = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=11, mask_fn=_square)
    c = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=12, mask_fn=_square)
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, c.image)
    # no face found: the identity pass is kept and it is said
    d = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=11, mask_fn=lambda im: None)
    assert d.notes and "no face" in d.notes[0]


def test_lora_changes_outputs_and_unloading_restores_them(files, refs):
    pipe = load_pipeline(files["base"], ip_adapter=files["ip_adapter"])
    s = _sched(steps=5)
    before = generate(
        pipe, "a portrait", reference=refs[0], schedule=s, seed=2, mask_fn=_square, keep_latents=True
    )
    names = load_loras(pipe, [(files["lora_a"], 0.8), (files["lora_b"], 0.5)])
    assert len(names) == 2
    styled = generate(
        pipe, "a portrait", reference=refs[0], schedule=s, seed=2, mask_fn=_square, keep_latents=True
    )
    assert float((styled.latents[-1] - before.latents[-1]).abs().max()) > 1e-3
    unload_loras(pipe)
    after = generate(
        pipe, "a portrait", reference=refs[0], schedule=s, seed=2, mask_fn=_square, keep_latents=True
    )
    assert torch.equal(after.latents[-1], before.latents[-1]) and np.array_equal(after.image, before.image)


def test_bad_model_files_are_clear(tmp_path, files, refs):
    with pytest.raises(InputNotFoundError, match="not found"):
        load_pipeline(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a diffusers pipeline"):
        load_pipeline(tmp_path / "empty")
    import pickle

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(pickle.dumps({"state_dict": {}}))
    with pytest.raises(UnsafeModelError):
        load_pipeline(ckpt)
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pickle.dumps({"state_dict": {}}))
    with pytest.raises(UnsafeModelError):
        load_pipeline(disguised)
    with pytest.raises(ModelError, match="IP-Adapter"):
        load_pipeline(files["base"], ip_adapter=files["lora_a"])  # a LoRA is not identity-adapter weights
    plain = load_pipeline(files["base"])
    with pytest.raises(ConfigError, match="identity adapter"):
        generate(plain, "x", reference=refs[0], schedule=_sched(steps=2))
    with pytest.raises(ModelError, match="not a LoRA"):
        load_loras(plain, [(files["ip_adapter"], 1.0)])
    # models.yaml: names, relative paths, sha256 checked
    from portraitfx.models.registry import file_sha256

    yml = tmp_path / "models.yaml"
    yml.write_text(
        f"sd: {{path: {files['base']}}}\n"
        f"ip: {{path: {files['ip_adapter']}, sha256: '{file_sha256(files['ip_adapter'])}'}}\n"
        f"bad: {{path: {files['lora_a']}, sha256: '{'0' * 64}'}}\n"
    )
    models = load_models_yaml(yml)
    assert load_pipeline("sd", ip_adapter="ip", models=models) is not None
    with pytest.raises(ChecksumError):
        load_loras(plain, [("bad", 1.0)], models=models)
    with pytest.raises(InputNotFoundError, match="known names"):
        load_pipeline("sdxl", models=models)
    yml.write_text(
        f"x: {{path: {files['lora_a']}, sha256: {'1' * 64}}}\n"
    )  # unquoted digits: YAML reads a number
    with pytest.raises(ConfigError, match="in quotes"):
        load_models_yaml(yml)


def test_schedule_settings_are_checked():
    with pytest.raises(ConfigError, match="blend_at"):
        Schedule(inject_at=0.5, blend_at=0.2)
    with pytest.raises(ConfigError, match="multiples of 8"):
        Schedule(height=100)


def test_controlnet_guides_the_layout(tmp_path, files, refs):
    from portraitfx.testing.tiny_sd import make_tiny_controlnet

    net = make_tiny_controlnet(files["base"], tmp_path / "controlnet")
    pipe = load_pipeline(files["base"], ip_adapter=files["ip_adapter"], controlnet=net)
    s = _sched(steps=4)
    layout = np.zeros((SIZE, SIZE, 3), np.uint8)
    layout[20:44, 24:40] = 255
    plain = generate(pipe, "a portrait", reference=refs[0], schedule=s, seed=1, mask_fn=_square)
    guided = generate(
        pipe, "a portrait", reference=refs[0], schedule=s, seed=1, mask_fn=_square, control=layout
    )
    off = generate(
        pipe,
        "a portrait",
        reference=refs[0],
        schedule=s,
        seed=1,
        mask_fn=_square,
        control=layout,
        control_scale=0.0,
    )
    assert not np.array_equal(guided.image, plain.image)
    assert np.array_equal(off.image, plain.image)  # scale 0: the ControlNet adds nothing
    no_net = load_pipeline(files["base"], ip_adapter=files["ip_adapter"])
    with pytest.raises(ConfigError, match="ControlNet"):
        generate(no_net, "x", reference=refs[0], schedule=s, control=layout)


def test_faceid_adapter_takes_an_identity_vector(tmp_path, files):
    from portraitfx.portrait.models import adapter_kind
    from portraitfx.testing.tiny_sd import make_tiny_faceid

    weights = make_tiny_faceid(files["base"], tmp_path / "faceid.safetensors", id_dim=128)
    pipe = load_pipeline(files["base"], ip_adapter=weights)
    assert adapter_kind(pipe) == ("faceid", 128)
    rng = np.random.default_rng(0)
    a_vec, b_vec = (rng.normal(size=128).astype(np.float32) for _ in range(2))
    s = _sched(steps=6)
    a = generate(pipe, "a portrait", reference=a_vec, schedule=s, seed=2, mask_fn=_square, keep_latents=True)
    b = generate(pipe, "a portrait", reference=b_vec, schedule=s, seed=2, mask_fn=_square, keep_latents=True)
    k = s.inject_step
    assert all(torch.equal(a.latents[i], b.latents[i]) for i in range(k))
    assert not torch.equal(a.latents[k], b.latents[k])
    with pytest.raises(ConfigError, match="identity vector"):
        generate(pipe, "x", reference=np.zeros((SIZE, SIZE, 3), np.uint8), schedule=s)
    with pytest.raises(ConfigError, match="128-d"):
        generate(pipe, "x", reference=np.zeros(512, np.float32), schedule=s)


@pytest.fixture(scope="module")
def xl(tmp_path_factory):
    from portraitfx.testing.tiny_sd import build_tiny_sdxl

    f = build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"), size=SIZE)
    return load_pipeline(f["base"], ip_adapter=f["ip_adapter"])


def test_sdxl_runs_the_same_schedule(xl, refs):
    assert type(xl).__name__ == "StableDiffusionXLPipeline"
    s = _sched(steps=8)
    k, b = s.inject_step, s.blend_step
    a = generate(xl, "a portrait", reference=refs[0], schedule=s, seed=4, mask_fn=_square, keep_latents=True)
    c = generate(xl, "a portrait", reference=refs[1], schedule=s, seed=4, mask_fn=_square, keep_latents=True)
    assert a.unet_calls == schedule_calls(s) and a.image.shape == (SIZE, SIZE, 3)
    assert all(torch.equal(a.latents[i], c.latents[i]) for i in range(k))
    assert not torch.equal(a.latents[k], c.latents[k])
    ident = generate(xl, "a portrait", reference=refs[0], schedule=s, seed=4, mask_fn=lambda im: np.ones(im.shape[:2]), keep_latents=True)  # fmt: skip
    prompt = generate(xl, "a portrait", reference=refs[0], schedule=s, seed=4, mask_fn=lambda im: np.zeros(im.shape[:2]), keep_latents=True)  # fmt: skip
    inside = torch.from_numpy(a.mask > 0.5)
    assert torch.allclose(a.latents[b][0][:, inside], ident.latents[b][0][:, inside], atol=1e-5)
    assert torch.allclose(a.latents[b][0][:, ~inside], prompt.latents[b][0][:, ~inside], atol=1e-5)
    again = generate(xl, "a portrait", reference=refs[0], schedule=s, seed=4, mask_fn=_square)
    assert np.array_equal(again.image, a.image)
