"""The proxy decoders on one device: OpenELM (Mehta et al. 2024, https://arxiv.org/abs/2404.14619) and MobileLLM
(Liu et al. 2024, https://arxiv.org/abs/2402.14905), built by :func:`build_model` from either config class.

OpenELM: decoder-only, pre-norm RMSNorm (eps 1e-6), no biases, RoPE (theta 10,000), grouped-query attention with
RMSNorm on queries and keys, SwiGLU FFN, tied input/output embeddings, and layer-wise scaling of heads and
FFN width (the per-layer numbers live in :class:`~train_small.configs.OpenELMConfig`). Parameter names follow
apple/corenet's ``general_gpt`` (``token_embeddings``, ``layers.i.attn.qkv_proj``, ``ffn.proj_1``...).

MobileLLM shares every block: the same decoder without q/k norm, uniform layers, RMSNorm eps 1e-5, normal(0.02)
initialisation, and optionally each block run twice in a row (``layer_repeat=2``, the paper's block-wise sharing).

``cfg.use_kernels`` picks the Triton path (fused residual-add + RMSNorm, fused q/k RMSNorm + RoPE) over the
plain PyTorch references; both compute the same function. Attention is ``F.scaled_dot_product_attention``
(flash backend on GPU in bf16, with native GQA there). With ``use_kernels`` the training loss
(``model(idx, targets, z_loss=...)``) is the fused chunked LM-head loss, which never materialises the logits and
pads the vocabulary to a multiple of 128 inside (the embedding keeps its ``V`` rows: checkpoints and the logits
returned for scoring are the same on both paths). The kernels are ``torch.library`` custom ops, so
``torch.compile(model, fullgraph=True)`` traces the kernel path without graph breaks.

The residual stream is written as "add the previous branch, then normalise": each norm receives the
pending branch output and adds it to the stream itself, which is what lets the GPU path fuse the two.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from train_small.configs import MobileLLMConfig, ModelConfig, OpenELMConfig, config_from_dict
from train_small.kernels.reference import add_rmsnorm_ref, qkv_norm_rope_ref, rope_cos_sin

__all__ = ["DecoderLM", "OpenELM", "MobileLLM", "OpenELMConfig", "MobileLLMConfig", "build_model", "lm_loss",
           "load_from_checkpoint", "flops_per_token"]


def _ops(use_kernels: bool):
    """The (add_rmsnorm, qkv_norm_rope) pair for the chosen path. The Triton modules load only when asked."""
    if not use_kernels:
        return add_rmsnorm_ref, qkv_norm_rope_ref
    from train_small.kernels.qk_norm_rope import qkv_norm_rope_triton
    from train_small.kernels.rmsnorm import add_rmsnorm_triton

    return add_rmsnorm_triton, qkv_norm_rope_triton


class RMSNorm(nn.Module):
    """Holds the weight (init 1); the computation is the functional op chosen by the config."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, i: int, qkv_op) -> None:
        super().__init__()
        self.hd, self.nq, self.nkv = cfg.head_dim, cfg.num_query_heads[i], cfg.num_kv_heads[i]
        assert self.nq % self.nkv == 0, "query heads must be a multiple of key/value heads"
        self.qkv_proj = nn.Linear(cfg.model_dim, (self.nq + 2 * self.nkv) * self.hd, bias=False)
        self.eps = cfg.norm_eps
        if cfg.qk_norm:
            self.q_norm = RMSNorm(self.hd, cfg.norm_eps)
            self.k_norm = RMSNorm(self.hd, cfg.norm_eps)
        else:
            self.q_norm = self.k_norm = None
        self.out_proj = nn.Linear(self.nq * self.hd, cfg.model_dim, bias=False)
        self._qkv = qkv_op

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
        bsz, seq, _ = x.shape
        qkv = self.qkv_proj(x).view(bsz, seq, self.nq + 2 * self.nkv, self.hd)  # (B, T, Hq + 2 Hkv, D)
        # q: (B, Hq, T, D); k, v: (B, Hkv, T, D). RMSNorm (when the family has it) + RoPE on q and k.
        wq, wk = (self.q_norm.weight, self.k_norm.weight) if self.q_norm is not None else (None, None)
        q, k, v = self._qkv(qkv, self.nq, self.nkv, wq, wk, cos, sin, self.eps, dtype)
        if self.nkv != self.nq:
            if q.is_cuda and q.dtype in (torch.bfloat16, torch.float16):
                # The flash backend reads the smaller K/V and broadcasts over the query groups.
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            else:  # other backends reject mismatched head counts: materialise the groups
                rep = self.nq // self.nkv
                k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)  # (B, Hq, T, D)
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        y = y.transpose(1, 2).reshape(bsz, seq, self.nq * self.hd)  # (B, T, Hq * D)
        return self.out_proj(y)  # (B, T, d)


class FeedForward(nn.Module):
    """SwiGLU (Shazeer 2020): ``proj_2(silu(a) * b)`` with ``[a, b] = proj_1(x)``."""

    def __init__(self, cfg: ModelConfig, i: int) -> None:
        super().__init__()
        self.proj_1 = nn.Linear(cfg.model_dim, 2 * cfg.ffn_dims[i], bias=False)
        self.proj_2 = nn.Linear(cfg.ffn_dims[i], cfg.model_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.proj_1(x).chunk(2, dim=-1)  # (B, T, F) each
        return self.proj_2(F.silu(a) * b)


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig, i: int, add_norm_op, qkv_op) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.model_dim, cfg.norm_eps)
        self.attn = Attention(cfg, i, qkv_op)
        self.ffn_norm = RMSNorm(cfg.model_dim, cfg.norm_eps)
        self.ffn = FeedForward(cfg, i)
        self._add_norm = add_norm_op

    def forward(self, h, pending, cos, sin, dtype):
        """``h``: residual stream (B, T, d); ``pending``: previous branch output to add (or None);
        ``dtype``: the autocast dtype (or None): norm outputs and q/k are emitted in it, as the matmuls and
        attention that consume them would cast to it anyway."""
        x, h = self._add_norm(h, pending, self.attn_norm.weight, self.attn_norm.eps, dtype)
        a = self.attn(x, cos, sin, dtype)
        x, h = self._add_norm(h, a, self.ffn_norm.weight, self.ffn_norm.eps, dtype)
        return h, self.ffn(x)


class DecoderLM(nn.Module):
    """The decoder both families share; subclasses differ only in their initialisation."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        add_norm_op, qkv_op = _ops(cfg.use_kernels)
        self._add_norm = add_norm_op
        self._fused_loss = None
        if cfg.use_kernels:  # the chunked LM-head loss of the training forward (no (B, T, V) logits)
            from train_small.kernels.fused_linear_ce import linear_cross_entropy

            self._fused_loss = linear_cross_entropy
        self.token_embeddings = nn.Embedding(cfg.vocab_size, cfg.model_dim)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i, add_norm_op, qkv_op) for i in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.model_dim, cfg.norm_eps)
        cos, sin = rope_cos_sin(cfg.max_seq_len, cfg.head_dim, cfg.rope_theta)
        self.register_buffer("rope_cos", cos, persistent=False)  # (T_max, D/2) fp32
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        self._init_weights()
        if not self.rope_cos.is_meta:
            self.reset_rope()

    def reset_rope(self) -> None:
        """Recompute the RoPE tables (non-persistent buffers) on the embedding's device, e.g. after a model built
        on the meta device received its weights with ``load_state_dict(assign=True)``."""
        cfg = self.cfg
        dev = self.token_embeddings.weight.device
        self.rope_cos, self.rope_sin = rope_cos_sin(cfg.max_seq_len, cfg.head_dim, cfg.rope_theta, device=dev)

    def _init_weights(self) -> None:
        raise NotImplementedError

    def num_parameters(self, include_embedding: bool = True) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n if include_embedding else n - self.token_embeddings.weight.numel()

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None, z_loss: float | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """``idx (B, T)`` token ids -> logits ``(B, T, V)``; with ``targets (B, T)`` also the mean CE loss.

        With ``z_loss`` as well (training): ``(total, ce, z)`` of :func:`lm_loss` and no logits; on the kernel
        path this is the fused chunked LM-head loss, which never holds the ``(B, T, V)`` logits.
        """
        bsz, seq = idx.shape
        if seq > self.cfg.max_seq_len:
            raise ValueError(f"sequence length {seq} exceeds max_seq_len {self.cfg.max_seq_len}")
        cos, sin = self.rope_cos[:seq], self.rope_sin[:seq]
        dev = idx.device.type
        dtype = torch.get_autocast_dtype(dev) if torch.is_autocast_enabled(dev) else None
        h = self.token_embeddings(idx)  # (B, T, d), fp32 residual stream
        pending = None
        for layer in self.layers:
            for _ in range(self.cfg.layer_repeat):  # MobileLLM-LS: immediate block-wise repeat
                h, pending = layer(h, pending, cos, sin, dtype)
        x, _ = self._add_norm(h, pending, self.norm.weight, self.norm.eps, dtype)
        if targets is not None and z_loss is not None:
            if self._fused_loss is not None:
                return self._fused_loss(x, self.token_embeddings.weight, targets, z_loss)
            return lm_loss(F.linear(x, self.token_embeddings.weight), targets, z_loss)
        logits = F.linear(x, self.token_embeddings.weight)  # tied output layer: (B, T, V)
        if targets is None:
            return logits
        return logits, F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.reshape(-1))


class OpenELM(DecoderLM):
    @torch.no_grad()
    def _init_weights(self) -> None:
        """OpenELM's initialisation (corenet ``GeneralGPTModel.reset_parameters``).

        Linear weights ~ N(0, in_features^-1/2); embeddings ~ N(0, model_dim^-1/2); norm weights 1; the
        residual-branch outputs (``out_proj``, ``ffn.proj_2``) ~ N(0, model_dim^-1/2 * (2L)^-1/2) (OPT scaling).
        """
        cfg = self.cfg
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=m.in_features**-0.5)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=m.embedding_dim**-0.5)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)
        out_std = cfg.model_dim**-0.5 * (2 * cfg.num_layers) ** -0.5
        for layer in self.layers:
            nn.init.normal_(layer.attn.out_proj.weight, std=out_std)
            nn.init.normal_(layer.ffn.proj_2.weight, std=out_std)


class MobileLLM(DecoderLM):
    @torch.no_grad()
    def _init_weights(self) -> None:
        """Every linear and embedding weight ~ N(0, init_std) (0.02, the published configs' ``initializer_range``,
        as Hugging Face's Llama initialises), norm weights 1."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=self.cfg.init_std)
            elif isinstance(m, RMSNorm):
                nn.init.ones_(m.weight)


_FAMILIES: dict[str, type[DecoderLM]] = {"openelm": OpenELM, "mobilellm": MobileLLM}


def build_model(cfg: ModelConfig) -> DecoderLM:
    """The model of ``cfg``'s family (:class:`OpenELM` or :class:`MobileLLM`), initialised on the current device."""
    if cfg.arch not in _FAMILIES:
        raise ValueError(f"unknown model family {cfg.arch!r}; known: {sorted(_FAMILIES)}")
    return _FAMILIES[cfg.arch](cfg)


def lm_loss(
    logits: torch.Tensor, targets: torch.Tensor, z_loss: float = 1e-4
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cross-entropy plus the PaLM z-loss ``z_loss * mean(logsumexp(logits)^2)`` (Chowdhery et al. 2022).

    Computed in fp32. Returns ``(total, ce, z)``, each a scalar tensor (``z`` unscaled by the coefficient).
    """
    flat = logits.float().view(-1, logits.size(-1))  # (B*T, V)
    tgt = targets.reshape(-1)
    lse = torch.logsumexp(flat, dim=-1)  # (B*T,)
    ce = (lse - flat.gather(1, tgt[:, None]).squeeze(1)).mean()
    z = lse.pow(2).mean()
    return ce + z_loss * z, ce, z


def flops_per_token(cfg: ModelConfig, seq_len: int) -> int:
    """Training FLOPs per token: ``6 * N_matmul + 12 * sum_l(Hq_l * head_dim) * seq_len``.

    ``N_matmul`` counts the weights used in matrix multiplies: all linear layers (each as often as its block
    runs: twice with ``layer_repeat=2``) plus the tied output projection ``V * d`` (the input embedding is a
    lookup). The attention term is PaLM's (Chowdhery et al. 2022, appendix B), not halved for the causal mask,
    as in nanoGPT/PaLM MFU conventions.
    """
    linear = ("qkv_proj", "out_proj", "proj_1", "proj_2")
    per_layer = [sum(math.prod(cfg.layer_shapes(i)[k]) for k in linear) for i in range(cfg.num_layers)]
    n_matmul = cfg.layer_repeat * sum(per_layer) + cfg.vocab_size * cfg.model_dim
    attn = cfg.layer_repeat * sum(q * cfg.head_dim for q in cfg.num_query_heads)
    return 6 * n_matmul + 12 * attn * seq_len


def load_from_checkpoint(
    path: str | Path, device: str | torch.device | None = None, use_kernels: bool | None = None
) -> tuple[DecoderLM, ModelConfig]:
    """Rebuild a model from a trainer checkpoint (``torch.load(weights_only=True)``), or a published OpenELM
    checkpoint (a folder with ``config.json`` + safetensors: :mod:`train_small.hf_openelm`); in eval mode.

    ``use_kernels`` overrides the saved flag; by default kernels are used only if saved *and* ``device`` is CUDA.
    """
    from train_small.hf_openelm import is_hf_checkpoint, load_openelm_hf

    if is_hf_checkpoint(path):  # a published OpenELM (Hugging Face config.json + safetensors)
        return load_openelm_hf(path, device, use_kernels=use_kernels)
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    cfg = config_from_dict(state["model_config"])
    dev = torch.device(device if device is not None else "cpu")
    cfg.use_kernels = (cfg.use_kernels and dev.type == "cuda") if use_kernels is None else use_kernels
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model.to(dev)
    model.eval()
    return model, cfg

