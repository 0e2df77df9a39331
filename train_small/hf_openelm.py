"""Load the public OpenELM checkpoints (Hugging Face ``apple/OpenELM-*``: ``config.json`` + safetensors) into our
:class:`~train_small.model.OpenELM`, to score our proxy against the published models' behaviour.

Nothing is downloaded: point at a folder you fetched yourself (``huggingface-cli download apple/OpenELM-270M``).
The published modules are apple/corenet's, whose names our model keeps: a checkpoint key
``transformer.layers.3.attn.qkv_proj.weight`` is our ``layers.3.attn.qkv_proj.weight``. The fused QKV projection
holds the query heads, then the key heads, then the value heads, each ``head_dim`` rows, as ours; ``proj_1`` holds
the SwiGLU gate then the up projection, as ours. The output layer is the token embedding
(``share_input_output_layers``), so there is no ``lm_head`` key. The config's per-layer head counts and FFN
multipliers must agree with the layer-wise scaling rules (:class:`~train_small.configs.OpenELMConfig` checks them);
any option our model does not implement (no q/k norm, untied head, another norm or activation) is refused with the
field named.

    python -m train_small.eval tasks --ckpt path/to/OpenELM-270M --tokenizer llama2.model --eval-dir EVAL

(``load_from_checkpoint`` recognises a folder with ``config.json`` or a ``.safetensors`` file.) The published
models were trained with the Llama-2 tokenizer, which a user supplies too.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from train_small.configs import OpenELMConfig, layerwise_multipliers

log = logging.getLogger(__name__)

__all__ = ["openelm_config_from_hf", "read_safetensors", "state_dict_from_hf", "load_openelm_hf", "is_hf_checkpoint"]

PREFIX = "transformer."
# Non-persistent buffers some exports carry (RoPE tables); they hold no weights.
_IGNORED = ("pos_embedding.", "rotary_emb.", ".inv_freq", "_cached_cos", "_cached_sin")
# Options our model implements, with the values it needs.
_REQUIRED = {"normalize_qk_projections": True, "share_input_output_layers": True, "ffn_with_glu": True,
             "normalization_layer_name": "rms_norm"}  # fmt: skip


def is_hf_checkpoint(path: str | Path) -> bool:
    """A folder with ``config.json`` and safetensors weights, or a ``.safetensors`` file."""
    p = Path(path)
    return (p.is_dir() and (p / "config.json").exists()) or p.suffix == ".safetensors"


def openelm_config_from_hf(hf: dict[str, Any], name: str = "hf-openelm", **overrides: Any) -> OpenELMConfig:
    """Our config for a Hugging Face OpenELM ``config.json`` (refusing what our model does not implement)."""
    if hf.get("model_type", "openelm") != "openelm":
        raise ValueError(f"config.json: model_type {hf.get('model_type')!r} is not an OpenELM checkpoint")
    for key, want in _REQUIRED.items():
        if key in hf and hf[key] != want:
            raise ValueError(f"config.json: {key}={hf[key]!r} is not supported (our OpenELM needs {want!r})")
    if hf.get("activation_fn_name", "swish") not in ("swish", "silu"):
        raise ValueError(f"config.json: activation_fn_name={hf['activation_fn_name']!r} (only swish/SiLU)")
    layers = int(hf["num_transformer_layers"])
    ffn = hf["ffn_multipliers"]
    ffn_pair = (float(ffn[0]), float(ffn[-1])) if isinstance(ffn, (list, tuple)) else (float(ffn), float(ffn))
    if isinstance(ffn, (list, tuple)) and len(ffn) == layers:
        derived = layerwise_multipliers(*ffn_pair, layers)
        if [round(float(x), 2) for x in ffn] != derived:
            raise ValueError(f"config.json: ffn_multipliers {list(ffn)} do not follow the layer-wise rule ({derived})")
    qkv = hf.get("qkv_multipliers", [0.5, 1.0])
    args: dict[str, Any] = dict(
        name=name,
        vocab_size=int(hf["vocab_size"]),
        model_dim=int(hf["model_dim"]),
        num_layers=layers,
        head_dim=int(hf["head_dim"]),
        num_gqa_groups=int(hf.get("num_gqa_groups", 1)),
        qkv_multipliers=(float(qkv[0]), float(qkv[-1])),
        ffn_multipliers=ffn_pair,
        ffn_dim_divisor=int(hf.get("ffn_dim_divisor", 256)),
        rope_theta=float(hf.get("rope_freq_constant", 10000)),
        max_seq_len=int(hf.get("max_context_length", 2048)),
        num_query_heads=[int(x) for x in hf.get("num_query_heads", [])],
        num_kv_heads=[int(x) for x in hf.get("num_kv_heads", [])],
    )
    args.update(overrides)
    return OpenELMConfig(**args)  # checks the per-layer lists against the rules


def read_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, a folder's ``model.safetensors``, or its sharded index."""
    from safetensors.torch import load_file

    p = Path(path)
    if p.is_file():
        return load_file(str(p))
    index = p / "model.safetensors.index.json"
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        out: dict[str, torch.Tensor] = {}
        for shard in shards:
            out.update(load_file(str(p / shard)))
        return out
    single = p / "model.safetensors"
    if not single.exists():
        raise FileNotFoundError(f"{p}: no model.safetensors or model.safetensors.index.json")
    return load_file(str(single))


def state_dict_from_hf(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoint keys -> our parameter names (``transformer.`` prefix dropped, RoPE buffers ignored)."""
    out: dict[str, torch.Tensor] = {}
    for key, t in tensors.items():
        if any(s in key for s in _IGNORED):
            continue
        if key == "lm_head.weight":
            raise ValueError("the checkpoint has its own lm_head: our OpenELM ties the output layer to the embedding")
        if not key.startswith(PREFIX):
            raise ValueError(f"unexpected checkpoint key {key!r} (OpenELM keys start with {PREFIX!r})")
        out[key[len(PREFIX) :]] = t
    return out


def load_openelm_hf(
    path: str | Path,
    device: str | torch.device | None = None,
    *,
    config: dict[str, Any] | None = None,
    use_kernels: bool | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Any, OpenELMConfig]:
    """Our :class:`OpenELM` with a published checkpoint's weights (in ``dtype``), in eval mode, on ``device``.

    ``path``: a folder with ``config.json`` and the safetensors weights, or a ``.safetensors`` file with
    ``config`` (the ``config.json`` contents). Missing or unexpected weights are an error naming them.
    """
    from train_small.model import OpenELM

    p = Path(path)
    if config is None:
        cfg_file = (p if p.is_dir() else p.parent) / "config.json"
        if not cfg_file.exists():
            raise FileNotFoundError(f"{cfg_file} not found: pass config= (the checkpoint's config.json contents)")
        config = json.loads(cfg_file.read_text())
    dev = torch.device(device if device is not None else "cpu")
    cfg = openelm_config_from_hf(config, name=p.name, use_kernels=dev.type == "cuda" if use_kernels is None
                                 else use_kernels)  # fmt: skip
    sd = state_dict_from_hf(read_safetensors(p))
    with torch.device("meta"):
        model = OpenELM(cfg)
    missing = sorted(set(model.state_dict()) - set(sd))
    unexpected = sorted(set(sd) - set(model.state_dict()))
    if missing or unexpected:
        raise ValueError(f"{p}: checkpoint does not match the config: missing {missing[:5]}"
                         f"{'...' if len(missing) > 5 else ''}, unexpected {unexpected[:5]}")  # fmt: skip
    model.load_state_dict({k: v.to(dtype) for k, v in sd.items()}, assign=True)
    model.reset_rope()  # the RoPE tables are buffers, not weights: compute them for the loaded model
    model.to(dev)
    model.eval()
    log.info("loaded %s: %s parameters, %d layers", p, f"{model.num_parameters():,}", cfg.num_layers)
    return model, cfg
