"""OpenELM configs against the public checkpoints' facts, and the proxy ladder's invariants.

Facts below are copied from public sources, not from our code:
* per-layer ``num_query_heads`` / ``num_kv_heads`` of apple/OpenELM-{270M,450M,1_1B,3B} ``config.json`` and the
  per-layer FFN widths read from those checkpoints' ``ffn.proj_2.weight`` shapes;
* the ``ffn_multipliers`` list of apple/OpenELM-1_1B's ``config.json``;
* the printed module tree of OpenELM-270M: layer 0 ``qkv_proj`` Linear(1280 -> 1152), ``out_proj`` Linear(768 -> 1280),
  12 query / 3 key-value heads, q/k RMSNorm over 64 features, Embedding(32000, 1280);
* model sizes shown for apple/OpenELM-* on the Hugging Face Hub: 272M, 457M, 1.08B, 3.04B parameters.
"""

from __future__ import annotations

import pytest
import torch

from train_small.configs import (
    CONFIGS,
    OpenELMConfig,
    count_parameters,
    get_config,
    layerwise_multipliers,
    make_divisible,
)
from train_small.model import OpenELM

PUBLISHED = {
    "openelm-270m": dict(
        q=[12, 12, 12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20],
        kv=[3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5],
        ffn=None, size=(272e6, 1e6)),
    "openelm-450m": dict(
        q=[12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20, 20, 20, 24, 24, 24, 24],
        kv=[3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6],
        ffn=[768, 1024, 1280, 1536, 1792, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096, 4352, 4608, 5120, 5376,
             5632, 5888, 6144], size=(457e6, 1e6)),
    "openelm-1.1b": dict(
        q=[16, 16, 16, 20, 20, 20, 20, 20, 20, 20, 24, 24, 24, 24, 24, 24, 24, 24, 28, 28, 28, 28, 28, 28, 32, 32,
           32, 32],
        kv=[4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8],
        ffn=[1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096, 4608, 4608, 5120, 5376,
             5632, 5888, 6144, 6400, 6656, 6912, 7168, 7424, 7680, 7936, 8192], size=(1.08e9, 0.01e9)),
    "openelm-3b": dict(
        q=[12, 12, 12, 12, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 20, 20, 20, 20, 20, 20, 20, 20,
           20, 20, 20, 20, 24, 24, 24, 24, 24, 24],
        kv=[3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6,
            6],
        ffn=[1536, 1792, 2048, 2560, 2816, 3072, 3328, 3584, 4096, 4352, 4608, 4864, 5120, 5632, 5888, 6144, 6400,
             6656, 7168, 7424, 7680, 7936, 8192, 8704, 8960, 9216, 9472, 9728, 10240, 10496, 10752, 11008, 11264,
             11776, 12032, 12288], size=(3.04e9, 0.01e9)),
}
OPENELM_1_1B_FFN_MULTIPLIERS = [0.5, 0.63, 0.76, 0.89, 1.02, 1.15, 1.28, 1.41, 1.54, 1.67, 1.8, 1.93, 2.06, 2.19,
                                2.31, 2.44, 2.57, 2.7, 2.83, 2.96, 3.09, 3.22, 3.35, 3.48, 3.61, 3.74, 3.87, 4.0]


@pytest.mark.parametrize(("v", "divisor", "expected"), [
    (1024, 256, 1024), (1100, 256, 1024), (13, 8, 16),
    (100, 256, 256),  # floor is the divisor itself
    (600, 256, 768), (300, 256, 512),  # rounding down would lose > 10%: one more divisor
])
def test_make_divisible_matches_openelm_helper(v, divisor, expected):
    assert make_divisible(v, divisor) == expected


def test_layerwise_multipliers_match_published_1_1b_config():
    assert layerwise_multipliers(0.5, 4.0, 28) == OPENELM_1_1B_FFN_MULTIPLIERS


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_public_config_per_layer_shapes(name):
    facts = PUBLISHED[name]
    cfg = get_config(name)
    assert cfg.vocab_size == 32000
    assert cfg.num_query_heads == facts["q"]
    assert cfg.num_kv_heads == facts["kv"]
    if facts["ffn"] is not None:
        assert cfg.ffn_dims == facts["ffn"]
    with torch.device("meta"):
        model = OpenELM(cfg)
    for i, layer in enumerate(model.layers):
        hd = cfg.head_dim
        assert layer.attn.qkv_proj.weight.shape == ((facts["q"][i] + 2 * facts["kv"][i]) * hd, cfg.model_dim)
        assert layer.attn.out_proj.weight.shape == (cfg.model_dim, facts["q"][i] * hd)
        if facts["ffn"] is not None:
            assert layer.ffn.proj_1.weight.shape == (2 * facts["ffn"][i], cfg.model_dim)
            assert layer.ffn.proj_2.weight.shape == (cfg.model_dim, facts["ffn"][i])


def test_openelm_270m_layer0_matches_published_module_tree():
    with torch.device("meta"):
        model = OpenELM(get_config("openelm-270m"))
    attn = model.layers[0].attn
    assert model.token_embeddings.weight.shape == (32000, 1280)
    assert attn.qkv_proj.weight.shape == (1152, 1280)
    assert attn.out_proj.weight.shape == (1280, 768)
    assert (attn.nq, attn.nkv) == (12, 3)
    assert attn.q_norm.weight.shape == attn.k_norm.weight.shape == (64,)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_public_parameter_counts(name):
    published, tol = PUBLISHED[name]["size"]
    with torch.device("meta"):
        model = OpenELM(get_config(name))
    n = model.num_parameters()
    assert abs(n - published) <= tol / 2, (name, n)
    assert n == count_parameters(get_config(name))
    # No biases anywhere; the only vocab-sized tensor is the tied embedding.
    names = [k for k, _ in model.named_parameters()]
    assert not any(k.endswith("bias") for k in names)
    assert sum(p.shape[0] == 32000 for p in model.parameters()) == 1


def test_checkpoint_names_follow_openelm():
    with torch.device("meta"):
        model = OpenELM(get_config("openelm-270m"))
    keys = set(model.state_dict())
    for k in ["token_embeddings.weight", "norm.weight", "layers.0.attn.qkv_proj.weight", "layers.0.attn.q_norm.weight",
              "layers.0.attn.k_norm.weight", "layers.0.attn.out_proj.weight", "layers.0.attn_norm.weight",
              "layers.0.ffn.proj_1.weight", "layers.0.ffn.proj_2.weight", "layers.15.ffn_norm.weight"]:
        assert k in keys, k
    assert not any("rope" in k for k in keys)  # RoPE tables are derived, not stored


@pytest.mark.parametrize(("name", "lo", "hi"), [
    ("proxy-20m", 15e6, 30e6), ("proxy-60m", 45e6, 80e6), ("proxy-150m", 120e6, 180e6)])
def test_proxy_ladder_sizes_and_rules(name, lo, hi):
    cfg = get_config(name)
    n = count_parameters(cfg)
    assert lo <= n <= hi
    # Same rules as the public models: GQA groups of 4, widths grow with depth, FFN a multiple of 256.
    assert all(q == 4 * kv for q, kv in zip(cfg.num_query_heads, cfg.num_kv_heads))
    assert cfg.num_query_heads == sorted(cfg.num_query_heads) and cfg.ffn_dims == sorted(cfg.ffn_dims)
    assert cfg.num_query_heads[0] < cfg.num_query_heads[-1] and cfg.ffn_dims[0] < cfg.ffn_dims[-1]
    assert all(f % 256 == 0 for f in cfg.ffn_dims)


def test_ladder_is_ordered():
    sizes = [count_parameters(get_config(n)) for n in ["cpu-tiny", "proxy-20m", "proxy-60m", "proxy-150m",
                                                        "openelm-270m"]]
    assert sizes == sorted(sizes)


def test_config_round_trip_and_validation():
    cfg = get_config("proxy-20m", vocab_size=1000)
    again = OpenELMConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.vocab_size == 1000
    bad = cfg.to_dict()
    bad["num_query_heads"] = [4] * cfg.num_layers
    bad["num_query_heads"][-1] = 8 if cfg.num_query_heads[-1] != 8 else 12
    with pytest.raises(ValueError, match="num_query_heads"):
        OpenELMConfig.from_dict(bad)
    with pytest.raises(ValueError, match="even"):
        OpenELMConfig(head_dim=63)
    with pytest.raises(KeyError):
        get_config("gpt-7")
    assert set(CONFIGS) >= {"cpu-tiny", "proxy-20m", "proxy-60m", "proxy-150m", "openelm-270m", "openelm-3b"}
