"""MobileLLM configs against the published models' facts, the shared decoder on the MobileLLM path, build_model.

Facts below are copied from public sources, not from our code:
* ``facebook/MobileLLM-125M`` config.json: hidden_size 576, intermediate_size 1536, num_hidden_layers 30,
  num_attention_heads 9, num_key_value_heads 3, head_dim 64, vocab_size 32000, rms_norm_eps 1e-5,
  share_embedding true, initializer_range 0.02; ``facebook/MobileLLM-125M-layer-share``: the same with
  layer_sharing true;
* ``facebook/MobileLLM-350M`` config.json: hidden_size 960, intermediate_size 2560, 32 layers, 15 / 5 heads;
* model sizes in Liu et al. 2024 (arXiv:2402.14905), Table 9: 124.6M and 345.3M parameters.
"""

from __future__ import annotations

import pytest
import torch

from train_small.configs import (
    CONFIGS,
    MobileLLMConfig,
    OpenELMConfig,
    arch_equivalent,
    config_from_dict,
    count_parameters,
    get_config,
)
from train_small.model import MobileLLM, OpenELM, build_model, flops_per_token, load_from_checkpoint

PUBLISHED = {  # name: (hidden, ffn, layers, heads, kv heads, parameters as the paper prints them)
    "mobilellm-125m": (576, 1536, 30, 9, 3, 124.6e6),
    "mobilellm-350m": (960, 2560, 32, 15, 5, 345.3e6),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_shapes_and_parameter_counts(name):
    hidden, ffn, layers, heads, kv, params = PUBLISHED[name]
    cfg = get_config(name)
    assert isinstance(cfg, MobileLLMConfig) and cfg.vocab_size == 32000 and cfg.norm_eps == 1e-5
    assert (cfg.model_dim, cfg.ffn_dim, cfg.num_layers, cfg.heads, cfg.kv_heads) == (hidden, ffn, layers, heads, kv)
    with torch.device("meta"):
        model = build_model(cfg)
    n = sum(p.numel() for p in model.parameters())
    assert n == count_parameters(cfg)
    assert params <= n < params + 0.1e6, n  # the paper truncates to one decimal (345.36M is "345.3M")
    # Llama layout of the published checkpoint, in our fused modules: q/k/v, gate/up, down.
    layer = model.layers[0]
    hd = 64
    assert layer.attn.qkv_proj.weight.shape == ((heads + 2 * kv) * hd, hidden)
    assert layer.attn.out_proj.weight.shape == (hidden, heads * hd)
    assert layer.ffn.proj_1.weight.shape == (2 * ffn, hidden)
    assert layer.ffn.proj_2.weight.shape == (hidden, ffn)
    assert layer.attn.q_norm is None and not any("q_norm" in k for k in model.state_dict())


def test_layer_share_keeps_parameters_and_doubles_compute():
    plain, shared = get_config("mobilellm-125m"), get_config("mobilellm-ls-125m")
    assert shared.layer_repeat == 2 and count_parameters(shared) == count_parameters(plain)
    emb = 2 * 6 * plain.vocab_size * plain.model_dim  # the LM head's FLOPs are not repeated
    assert flops_per_token(shared, 2048) - emb // 2 == 2 * (flops_per_token(plain, 2048) - emb // 2)


def test_block_wise_repeat_is_each_block_twice_in_a_row():
    """layer_repeat=2 computes blocks 0,0,1,1,...: equal to an unshared model of 2L layers whose layers 2i and
    2i+1 hold block i's weights (and not 0,1,...,0,1: the whole stack twice)."""
    torch.manual_seed(0)
    shared = build_model(get_config("mobilellm-tiny", layer_repeat=2))
    twice = build_model(get_config("mobilellm-tiny", num_layers=8))
    stack = build_model(get_config("mobilellm-tiny", num_layers=8))
    sd = shared.state_dict()
    for target, order in ((twice, [0, 0, 1, 1, 2, 2, 3, 3]), (stack, [0, 1, 2, 3, 0, 1, 2, 3])):
        mapped = {}
        for k in target.state_dict():
            if k.startswith("layers."):
                i, rest = k.split(".", 2)[1:]
                mapped[k] = sd[f"layers.{order[int(i)]}.{rest}"]
            else:
                mapped[k] = sd[k]
        target.load_state_dict(mapped)
    idx = torch.randint(0, 512, (2, 11))
    with torch.no_grad():
        torch.testing.assert_close(shared(idx), twice(idx), rtol=0, atol=0)
        assert not torch.allclose(shared(idx), stack(idx))


def test_mobilellm_initialisation_causality_and_tied_head():
    torch.manual_seed(1)
    model = build_model(get_config("mobilellm-20m", vocab_size=4096))
    assert isinstance(model, MobileLLM)
    for p in (model.layers[0].attn.qkv_proj.weight, model.layers[5].ffn.proj_2.weight, model.token_embeddings.weight):
        assert p.std().item() == pytest.approx(0.02, rel=0.03)
    assert all(torch.all(p == 1) for p in model.parameters() if p.dim() == 1)
    tiny = build_model(get_config("mobilellm-tiny"))
    idx = torch.randint(0, 512, (1, 16))
    other = idx.clone()
    other[0, 9:] = (other[0, 9:] + 3) % 512
    with torch.no_grad():
        a, b = tiny(idx), tiny(other)
        torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=0)
        assert not torch.allclose(a[:, 9:], b[:, 9:])
        tiny.token_embeddings.weight[7].zero_()
        assert torch.all(tiny(idx)[..., 7] == 0)  # the output layer is the embedding


def test_build_model_dispatches_and_checkpoint_round_trips(tmp_path):
    assert type(build_model(get_config("cpu-tiny"))) is OpenELM
    m = build_model(get_config("mobilellm-tiny", layer_repeat=2))
    path = tmp_path / "m.pt"
    torch.save({"model": m.state_dict(), "model_config": m.cfg.to_dict()}, path)
    back, cfg = load_from_checkpoint(path)
    assert isinstance(back, MobileLLM) and cfg == m.cfg and cfg.layer_repeat == 2
    idx = torch.randint(0, 512, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(back(idx), m(idx), rtol=0, atol=0)
    old = get_config("cpu-tiny").to_dict()
    del old["arch"]  # checkpoints written before the MobileLLM family existed
    assert isinstance(config_from_dict(old), OpenELMConfig)
    with pytest.raises(ValueError, match="family"):
        config_from_dict({**old, "arch": "gpt2"})


def test_invalid_mobilellm_configs_are_refused():
    with pytest.raises(ValueError, match="multiple"):
        MobileLLMConfig(heads=9, kv_heads=4)
    with pytest.raises(ValueError, match="layer_repeat"):
        MobileLLMConfig(layer_repeat=3)


@pytest.mark.parametrize("openelm", ["cpu-tiny", "proxy-20m", "proxy-60m"])
def test_proxy_equivalents_match_in_size_and_are_deeper(openelm):
    """Each OpenELM proxy has a MobileLLM stand-in within 5% of its parameters, with at least twice its depth."""
    mob = arch_equivalent(openelm, "mobilellm")
    a, b = get_config(openelm), get_config(mob)
    assert abs(count_parameters(b) - count_parameters(a)) <= 0.05 * count_parameters(a)
    assert b.num_layers >= 2 * a.num_layers and b.model_dim < a.model_dim
    assert arch_equivalent(mob, "openelm") == openelm and arch_equivalent(openelm, "openelm") == openelm
    with pytest.raises(KeyError):
        arch_equivalent("openelm-3b", "mobilellm")


def test_every_named_config_builds():
    for name in CONFIGS:
        cfg = get_config(name)
        assert cfg.arch in ("openelm", "mobilellm") and cfg.name == name


def test_recipe_for_arch_swaps_only_the_model():
    from train_small.recipes import get_recipe

    base = get_recipe("proxy-20m")
    mob = base.for_arch("mobilellm")
    assert base.arch == "openelm" and mob.arch == "mobilellm" and mob.model == "mobilellm-20m"
    assert mob.lr == pytest.approx(base.lr / 4)  # the family's LR factor (no q/k norm: a quarter)
    assert {k: v for k, v in mob.to_dict().items() if k not in ("model", "lr")} == {
        k: v for k, v in base.to_dict().items() if k not in ("model", "lr")}
    assert mob.for_arch("openelm") == base and base.for_arch("openelm") is base
    tiny = get_recipe("tiny").for_arch("mobilellm")
    assert tiny.model == "mobilellm-tiny" and tiny.lr == 2.5e-3
