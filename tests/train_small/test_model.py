"""The OpenELM module on the reference (CPU) path: causality, initialisation, loss, FLOPs, checkpoint loading."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from train_small.configs import count_parameters, get_config
from train_small.model import OpenELM, flops_per_token, lm_loss, load_from_checkpoint


@pytest.fixture(scope="module")
def tiny() -> OpenELM:
    torch.manual_seed(0)
    return OpenELM(get_config("cpu-tiny"))


def test_forward_shapes_and_loss(tiny):
    idx = torch.randint(0, 512, (3, 17))
    logits = tiny(idx)
    assert logits.shape == (3, 17, 512) and logits.dtype == torch.float32
    logits2, loss = tiny(idx, idx)
    assert torch.equal(logits, logits2)
    assert loss.item() == pytest.approx(F.cross_entropy(logits.view(-1, 512), idx.view(-1)).item(), rel=1e-6)
    assert loss.item() == pytest.approx(math.log(512), rel=0.15)  # near-uniform at init


def test_causal(tiny):
    """Changing token t must not change the logits at positions < t."""
    idx = torch.randint(0, 512, (1, 20))
    other = idx.clone()
    other[0, 12:] = (other[0, 12:] + 7) % 512
    a, b = tiny(idx), tiny(other)
    torch.testing.assert_close(a[:, :12], b[:, :12], rtol=0, atol=0)
    assert not torch.allclose(a[:, 12:], b[:, 12:])


def test_tied_embeddings(tiny):
    with torch.no_grad():
        logits = tiny(torch.tensor([[5, 6]]))
        tiny.token_embeddings.weight[9].zero_()
        assert torch.all(tiny(torch.tensor([[5, 6]]))[..., 9] == 0)  # the output layer *is* the embedding
        tiny.token_embeddings.weight[9].copy_(torch.randn(tiny.cfg.model_dim) * tiny.cfg.model_dim**-0.5)
    assert logits.shape[-1] == tiny.token_embeddings.weight.shape[0]


def test_openelm_initialisation():
    """corenet: Linear ~ N(0, fan_in^-1/2), embedding ~ N(0, d^-1/2), residual outputs ~ N(0, d^-1/2 (2L)^-1/2)."""
    torch.manual_seed(0)
    cfg = get_config("proxy-20m", vocab_size=4096)
    m = OpenELM(cfg)
    d, L = cfg.model_dim, cfg.num_layers
    l0 = m.layers[0]
    assert l0.attn.qkv_proj.weight.std().item() == pytest.approx(d**-0.5, rel=0.03)
    assert l0.ffn.proj_1.weight.std().item() == pytest.approx(d**-0.5, rel=0.03)
    assert m.token_embeddings.weight.std().item() == pytest.approx(d**-0.5, rel=0.03)
    out_std = d**-0.5 * (2 * L) ** -0.5
    assert l0.attn.out_proj.weight.std().item() == pytest.approx(out_std, rel=0.03)
    assert m.layers[-1].ffn.proj_2.weight.std().item() == pytest.approx(out_std, rel=0.03)
    assert all(torch.all(p == 1) for n, p in m.named_parameters() if p.dim() == 1)


def test_lm_loss_z_loss():
    torch.manual_seed(1)
    logits = torch.randn(2, 5, 11) * 3
    tgt = torch.randint(0, 11, (2, 5))
    total, ce, z = lm_loss(logits, tgt, z_loss=1e-4)
    assert ce.item() == pytest.approx(F.cross_entropy(logits.view(-1, 11), tgt.view(-1)).item(), rel=1e-6)
    lse = torch.logsumexp(logits, -1)
    assert z.item() == pytest.approx((lse**2).mean().item(), rel=1e-6)
    assert total.item() == pytest.approx(ce.item() + 1e-4 * z.item(), rel=1e-6)


def test_flops_per_token_close_to_6n():
    """For OpenELM-270M at 2048 tokens: 6 * (non-embedding + output projection) plus the attention term."""
    cfg = get_config("openelm-270m")
    f = flops_per_token(cfg, 2048)
    n = count_parameters(cfg)  # tied: the embedding counted once, used once as a matmul (output layer)
    attn = 12 * sum(cfg.num_query_heads) * 64 * 2048
    norms = cfg.model_dim * (2 * cfg.num_layers + 1) + 2 * 64 * cfg.num_layers
    assert f == 6 * (n - norms) + attn
    assert 6 * n < f < 8 * n


def test_sequence_longer_than_rope_table_is_rejected(tiny):
    with pytest.raises(ValueError, match="max_seq_len"):
        tiny(torch.zeros(1, tiny.cfg.max_seq_len + 1, dtype=torch.long))


def test_load_from_checkpoint_round_trip(tmp_path, tiny):
    path = tmp_path / "m.pt"
    torch.save({"model": tiny.state_dict(), "model_config": tiny.cfg.to_dict()}, path)
    model, cfg = load_from_checkpoint(path)
    assert cfg == tiny.cfg and not model.training
    idx = torch.randint(0, 512, (2, 9))
    torch.testing.assert_close(model(idx), tiny(idx), rtol=0, atol=0)


def test_bf16_autocast_forward_backward():
    torch.manual_seed(2)
    m = OpenELM(get_config("cpu-tiny"))
    idx = torch.randint(0, 512, (2, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = m(idx)
    assert logits.dtype == torch.bfloat16
    total, ce, _ = lm_loss(logits, idx)
    total.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in m.parameters())
    assert ce.item() == pytest.approx(m(idx, idx)[1].item(), rel=0.02)
