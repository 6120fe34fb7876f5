"""Q-network heads against hand-computed values: dueling aggregation, noisy layers, distributional output."""

from __future__ import annotations

import torch
from torch import nn

from deepq.core.networks import NoisyLinear, QHead


def set_linear(layer: nn.Module, weight: list[list[float]], bias: list[float]) -> None:
    assert isinstance(layer, nn.Linear)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight))
        layer.bias.copy_(torch.tensor(bias))


def test_dueling_combines_value_and_mean_centred_advantage() -> None:
    head = QHead(in_dim=1, hidden=1, n_actions=2, dueling=True)
    # feature x = 1: advantage stream -> A = [1, 3]; value stream -> V = 2
    set_linear(head.advantage[0], [[1.0]], [0.0])
    set_linear(head.advantage[2], [[1.0], [3.0]], [0.0, 0.0])
    assert head.value is not None
    set_linear(head.value[0], [[1.0]], [0.0])
    set_linear(head.value[2], [[2.0]], [0.0])
    q = head(torch.ones(1, 1))
    # Q = V + A - mean(A) = 2 + [1, 3] - 2 = [1, 3]
    torch.testing.assert_close(q, torch.tensor([[1.0, 3.0]]))
    # shifting every advantage by a constant does not change Q (the split is identifiable)
    set_linear(head.advantage[2], [[1.0], [3.0]], [5.0, 5.0])
    torch.testing.assert_close(head(torch.ones(1, 1)), torch.tensor([[1.0, 3.0]]))


def test_plain_head_is_an_mlp_stream() -> None:
    head = QHead(in_dim=3, hidden=4, n_actions=2)
    x = torch.randn(5, 3)
    torch.testing.assert_close(head(x), head.advantage(x))
    assert head.value is None


def test_noisy_linear_factorised_noise() -> None:
    torch.manual_seed(0)
    layer = NoisyLinear(4, 3, sigma0=0.5)
    assert torch.allclose(layer.weight_sigma, torch.full((3, 4), 0.25))  # sigma0 / sqrt(in)
    x = torch.randn(2, 4)
    y1 = layer(x)
    layer.reset_noise()
    assert not torch.allclose(layer(x), y1), "new noise, new output"
    # the weight noise is the rank-1 outer product f(e_out) f(e_in)^T, f(e) = sign(e) sqrt(|e|)
    noise = (layer(x) - nn.functional.linear(x, layer.weight_mu, layer.bias_mu))
    expected = nn.functional.linear(x, layer.weight_sigma * torch.outer(layer.eps_out, layer.eps_in),
                                    layer.bias_sigma * layer.eps_out)
    torch.testing.assert_close(noise, expected)
    layer.eval()  # evaluation: the mean weights, no noise
    torch.testing.assert_close(layer(x), nn.functional.linear(x, layer.weight_mu, layer.bias_mu))
    layer.train()
    with torch.no_grad():
        layer.weight_sigma.zero_()
        layer.bias_sigma.zero_()
    torch.testing.assert_close(layer(x), nn.functional.linear(x, layer.weight_mu, layer.bias_mu))


def test_noise_is_reproducible_from_the_seed() -> None:
    torch.manual_seed(3)
    a = NoisyLinear(5, 2)
    torch.manual_seed(3)
    b = NoisyLinear(5, 2)
    x = torch.randn(4, 5)
    torch.testing.assert_close(a(x), b(x))


def test_distributional_head_returns_the_expected_value() -> None:
    support = torch.linspace(-2.0, 2.0, 5)
    head = QHead(in_dim=3, hidden=8, n_actions=4, dueling=True, noisy=True, atoms=5, support=support)
    x = torch.randn(6, 3)
    logp = head.log_probs(x)  # (B, A, atoms)
    assert logp.shape == (6, 4, 5)
    torch.testing.assert_close(logp.exp().sum(2), torch.ones(6, 4))
    torch.testing.assert_close(head(x), (logp.exp() * support).sum(2))


def test_rainbow_networks_for_every_body() -> None:
    import deepq
    from deepq.components import network_config
    from deepq.core.networks import QNetwork, build_network, resolve_arch

    cfg = deepq.Config(dueling=True, noisy=True, atoms=51, hidden_sizes=(32, 16))
    for shape, hidden in (((4,), 16), ((4, 84, 84), 512), ((4, 10, 10), 128)):
        net = build_network(shape, 6, network_config(cfg, resolve_arch(shape, cfg.arch)))
        assert isinstance(net, QNetwork) and net.head.advantage[0].weight_mu.shape[0] == hidden  # type: ignore[union-attr]
        x = torch.zeros((3, *shape), dtype=torch.uint8 if len(shape) == 3 else torch.float32)
        assert net(x).shape == (3, 6) and net.log_probs(x).shape == (3, 6, 51)
    plain_dueling = build_network((4,), 2, network_config(deepq.Config(dueling=True, hidden_sizes=(32, 16)), "mlp"))
    assert isinstance(plain_dueling, QNetwork) and isinstance(plain_dueling.head.advantage[0], nn.Linear)
