"""Loading a published OpenELM checkpoint (Hugging Face layout) into our model.

The test writes a checkpoint of the published layout itself: a ``config.json`` with the fields of
``apple/OpenELM-270M``'s (model_dim, num_transformer_layers, head_dim, per-layer num_query_heads / num_kv_heads,
ffn_multipliers, ...), and safetensors under the published names (``transformer.token_embeddings.weight``,
``transformer.layers.N.attn.qkv_proj.weight``, ...) in bf16 as published. Its per-layer shapes are written out
here by hand from the layer-wise rule, not taken from our code. An independent forward pass written from the
published modelling code's semantics (fused QKV = query heads, key heads, value heads; q/k RMSNorm before
rotate-half RoPE; SwiGLU ``silu(gate) * up``; logits against the embedding) must match our loaded model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

safetensors_torch = pytest.importorskip("safetensors.torch")

from train_small.hf_openelm import load_openelm_hf, openelm_config_from_hf  # noqa: E402
from train_small.model import OpenELM, load_from_checkpoint  # noqa: E402

D, L, HD, V = 64, 3, 16, 300
# qkv multipliers linspace(0.5, 1, 3) = .5/.75/1 -> make_divisible(64 m, 16 * 4) = 64 -> 4 query heads, 1 kv head;
# ffn multipliers linspace(0.5, 4, 3) = .5/2.25/4 -> make_divisible(64 m, 32) = 32 / 160 / 256.
HF_CONFIG = {
    "model_type": "openelm", "architectures": ["OpenELMForCausalLM"], "activation_fn_name": "swish",
    "model_dim": D, "num_transformer_layers": L, "head_dim": HD, "num_gqa_groups": 4,
    "qkv_multipliers": [0.5, 1.0], "ffn_multipliers": [0.5, 2.25, 4.0], "ffn_dim_divisor": 32,
    "num_query_heads": [4, 4, 4], "num_kv_heads": [1, 1, 1], "vocab_size": V, "max_context_length": 128,
    "rope_freq_constant": 10000, "rope_max_length": 4096, "normalize_qk_projections": True,
    "share_input_output_layers": True, "ffn_with_glu": True, "normalization_layer_name": "rms_norm",
    "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
}  # fmt: skip
FFN = [32, 160, 256]


def published_tensors(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def w(*shape, scale=None):
        return (torch.randn(*shape, generator=g) * (scale or shape[-1] ** -0.5)).to(torch.bfloat16)

    t = {"transformer.token_embeddings.weight": w(V, D), "transformer.norm.weight": 1 + w(D, scale=0.1)}
    for i in range(L):
        p = f"transformer.layers.{i}."
        t |= {p + "attn_norm.weight": 1 + w(D, scale=0.1), p + "attn.qkv_proj.weight": w((4 + 2 * 1) * HD, D),
              p + "attn.q_norm.weight": 1 + w(HD, scale=0.1), p + "attn.k_norm.weight": 1 + w(HD, scale=0.1),
              p + "attn.out_proj.weight": w(D, 4 * HD), p + "ffn_norm.weight": 1 + w(D, scale=0.1),
              p + "ffn.proj_1.weight": w(2 * FFN[i], D), p + "ffn.proj_2.weight": w(D, FFN[i])}  # fmt: skip
    return t


def write_checkpoint(root: Path, tensors: dict[str, torch.Tensor], config: dict | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config or HF_CONFIG))
    safetensors_torch.save_file(tensors, str(root / "model.safetensors"))
    return root


def reference_forward(t: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    """The published model's computation, written out independently, in fp32."""
    t = {k: v.float() for k, v in t.items()}

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w

    def rope(x):  # (B, H, T, hd), rotate-half, theta 10000
        pos = torch.arange(x.shape[2], dtype=torch.float32)
        inv = 10000.0 ** (-torch.arange(0, HD, 2, dtype=torch.float32) / HD)
        ang = torch.cat([torch.outer(pos, inv)] * 2, -1)
        x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
        return x * ang.cos() + torch.cat([-x2, x1], -1) * ang.sin()

    B, T = idx.shape
    h = t["transformer.token_embeddings.weight"][idx]
    for i in range(L):
        p = f"transformer.layers.{i}."
        qkv = (rms(h, t[p + "attn_norm.weight"]) @ t[p + "attn.qkv_proj.weight"].T).view(B, T, 6, HD).transpose(1, 2)
        q, k, v = qkv[:, :4], qkv[:, 4:5], qkv[:, 5:6]
        q, k = rope(rms(q, t[p + "attn.q_norm.weight"])), rope(rms(k, t[p + "attn.k_norm.weight"]))
        k, v = k.expand(B, 4, T, HD), v.expand(B, 4, T, HD)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, 4 * HD)
        h = h + att @ t[p + "attn.out_proj.weight"].T
        gate, up = (rms(h, t[p + "ffn_norm.weight"]) @ t[p + "ffn.proj_1.weight"].T).chunk(2, -1)
        h = h + (F.silu(gate) * up) @ t[p + "ffn.proj_2.weight"].T
    return rms(h, t["transformer.norm.weight"]) @ t["transformer.token_embeddings.weight"].T


def test_published_layout_loads_and_computes_the_published_function(tmp_path):
    tensors = published_tensors()
    root = write_checkpoint(tmp_path / "OpenELM-tiny", tensors)
    model, cfg = load_openelm_hf(root)
    assert isinstance(model, OpenELM) and not model.training
    assert cfg.num_query_heads == [4, 4, 4] and cfg.num_kv_heads == [1, 1, 1] and cfg.ffn_dims == FFN
    assert cfg.vocab_size == V and cfg.max_seq_len == 128 and cfg.rope_theta == 10000
    sd = model.state_dict()
    assert len(sd) == len(tensors)
    for k, v in tensors.items():
        assert torch.equal(sd[k.removeprefix("transformer.")], v.float()), k
    idx = torch.randint(0, V, (2, 21), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), reference_forward(tensors, idx), rtol=1e-4, atol=1e-4)
    # the trainer/eval entry point recognises the folder
    again, _ = load_from_checkpoint(root)
    with torch.no_grad():
        torch.testing.assert_close(again(idx), model(idx), rtol=0, atol=0)


def test_sharded_checkpoint_loads(tmp_path):
    tensors = published_tensors(3)
    root = tmp_path / "sharded"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(HF_CONFIG))
    keys = sorted(tensors)
    parts = {"model-00001-of-00002.safetensors": keys[::2], "model-00002-of-00002.safetensors": keys[1::2]}
    for name, ks in parts.items():
        safetensors_torch.save_file({k: tensors[k] for k in ks}, str(root / name))
    index = {"weight_map": {k: name for name, ks in parts.items() for k in ks}}
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    model, _ = load_openelm_hf(root)
    assert torch.equal(model.layers[2].ffn.proj_2.weight, tensors["transformer.layers.2.ffn.proj_2.weight"].float())


def test_mismatches_are_refused_with_the_reason(tmp_path):
    tensors = published_tensors()
    missing = dict(tensors)
    del missing["transformer.layers.1.attn.k_norm.weight"]
    with pytest.raises(ValueError, match="missing.*layers.1.attn.k_norm"):
        load_openelm_hf(write_checkpoint(tmp_path / "a", missing))
    with pytest.raises(ValueError, match="lm_head"):
        load_openelm_hf(write_checkpoint(tmp_path / "b", {**tensors, "lm_head.weight": tensors[
            "transformer.token_embeddings.weight"].clone()}))  # fmt: skip
    with pytest.raises(ValueError, match="normalize_qk_projections"):
        openelm_config_from_hf({**HF_CONFIG, "normalize_qk_projections": False})
    with pytest.raises(ValueError, match="num_query_heads"):
        openelm_config_from_hf({**HF_CONFIG, "num_query_heads": [4, 4, 8]})
    with pytest.raises(ValueError, match="ffn_multipliers"):
        openelm_config_from_hf({**HF_CONFIG, "ffn_multipliers": [0.5, 2.0, 4.0]})
    wrong_shape = {**tensors, "transformer.layers.0.ffn.proj_2.weight": torch.zeros(D, 64, dtype=torch.bfloat16)}
    with pytest.raises(RuntimeError, match="proj_2"):
        load_openelm_hf(write_checkpoint(tmp_path / "c", wrong_shape))


def test_openelm_270m_config_maps_to_our_270m():
    """The fields of apple/OpenELM-270M's config.json give exactly our openelm-270m shapes."""
    from train_small.configs import count_parameters, get_config

    hf = {**HF_CONFIG, "model_dim": 1280, "num_transformer_layers": 16, "head_dim": 64, "ffn_dim_divisor": 256,
          "ffn_multipliers": [0.5, 0.73, 0.97, 1.2, 1.43, 1.67, 1.9, 2.13, 2.37, 2.6, 2.83, 3.07, 3.3, 3.53, 3.77, 4.0],
          "num_query_heads": [12] * 5 + [16] * 7 + [20] * 4, "num_kv_heads": [3] * 5 + [4] * 7 + [5] * 4,
          "vocab_size": 32000, "max_context_length": 2048}  # fmt: skip
    cfg = openelm_config_from_hf(hf)
    ours = get_config("openelm-270m")
    assert (cfg.num_query_heads, cfg.num_kv_heads, cfg.ffn_dims) == (ours.num_query_heads, ours.num_kv_heads,
                                                                    ours.ffn_dims)  # fmt: skip
    assert count_parameters(cfg) == count_parameters(ours) == 271_527_168
