"""Stage 1 of NRDH: the graph-convolutional autoencoder (Eqs. 5-8, Table 1)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from graphhash import autoencoder
from graphhash.autoencoder import GraphAutoencoder, node_representations, reconstruction_loss, train_autoencoder
from graphhash.errors import GraphhashError
from graphhash.filters import FILTERS, GCNConv, Graph
from graphhash.graph import epoch_graphs, kipf_propagation, nrdh_propagation

BITS = 16


def small_params(**overrides) -> SimpleNamespace:
    """The ``represent`` params, shrunk so that a training run takes well under a second."""
    values = {"filter": "gcn", "batch_nodes": 10, "rho": 0.4, "p": 0.8, "hidden": 16, "alpha": 0.999,
              "beta": 0.001, "epochs": 5, "lr": 1e-3, "graphs_per_step": 1, "seed": 0, "graph": "batch"}  # fmt: skip
    return SimpleNamespace(**(values | overrides))


def weights_of(layers) -> list[np.ndarray]:
    return [layer.weight.detach().double().numpy() for layer in layers]


def dense_run(weights: list[np.ndarray], x: np.ndarray, propagation: np.ndarray) -> np.ndarray:
    """Eq. 5 layer after layer, U' X W, with ReLU after every layer but the last."""
    for i, w in enumerate(weights):
        x = propagation @ x @ w
        if i < len(weights) - 1:
            x = np.maximum(x, 0.0)
    return x


def dense_propagation(v: np.ndarray, rho: float, p: float) -> np.ndarray:
    """Eqs. 2-4 for one graph (M, D) in float64 numpy."""
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    linked = (unit @ unit.T > rho) & ~np.eye(len(v), dtype=bool)
    counts = linked.sum(axis=1, keepdims=True)
    out = linked * (1 - p) / np.maximum(counts, 1)
    out[np.diag_indices(len(v))] = np.where(counts[:, 0] > 0, p, 1.0)
    return out


# Tiny networks run on one thread: intra-op threads only add synchronisation at such sizes.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(digits):
    return train_autoencoder(digits, BITS, small_params())


def test_graph_conv_is_dense_formula():
    """The gcn layer gives U' X W for each graph, whatever propagation matrix the graph holds."""
    torch.manual_seed(0)
    layer = GCNConv(5, 3)
    x, u = torch.randn(2, 4, 5), torch.rand(2, 4, 4)
    w = layer.weight.detach().double().numpy()
    expected = np.stack([u[g].double().numpy() @ x[g].double().numpy() @ w for g in range(2)])
    got = layer(x, Graph(operator=u))
    assert got.shape == (2, 4, 3)
    np.testing.assert_allclose(got.detach().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_autoencoder_layer_shapes_follow_table_1():
    """Encoder in -> 64 -> 64 -> g, decoder mirrored back to in, weights only (no bias)."""
    model = GraphAutoencoder(2048, 32)
    assert [tuple(layer.weight.shape) for layer in model.encoder] == [(2048, 64), (64, 64), (64, 32)]
    assert [tuple(layer.weight.shape) for layer in model.decoder] == [(32, 64), (64, 64), (64, 2048)]
    assert len(list(model.parameters())) == 6


def test_autoencoder_forward_by_hand():
    """Latent and reconstruction equal the hand-computed chain: ReLU after layers 1-2 of each half, none after 3."""
    torch.manual_seed(0)
    model = GraphAutoencoder(6, 3, hidden=5, params=small_params(rho=0.1, p=0.7))
    x = torch.randn(2, 4, 6)
    u = nrdh_propagation(x, rho=0.1, p=0.7)
    graph = model.prepare(x)
    assert torch.equal(graph.operator, u)
    z, x_hat = model(x, graph)
    xs, us = x.double().numpy(), u.double().numpy()
    enc, dec = weights_of(model.encoder), weights_of(model.decoder)
    z_ref = np.stack([dense_run(enc, xs[g], us[g]) for g in range(2)])
    x_hat_ref = np.stack([dense_run(dec, z_ref[g], us[g]) for g in range(2)])
    np.testing.assert_allclose(z.detach().numpy(), z_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(x_hat.detach().numpy(), x_hat_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(model.encode(x, graph).detach().numpy(), z_ref, rtol=1e-5, atol=1e-5)
    # The example discriminates: outputs go negative (no final ReLU) and the first layer's input to ReLU does too.
    assert (z_ref < 0).any() and (x_hat_ref < 0).any()
    assert (us[0] @ xs[0] @ enc[0] < 0).any()


def test_weight_penalty_is_half_sum_of_squares():
    """L_w (Eq. 7) = 1/2 sum of squared weights over the six layers."""
    torch.manual_seed(1)
    model = GraphAutoencoder(7, 4, hidden=5)
    expected = 0.5 * sum((w**2).sum() for w in weights_of([*model.encoder, *model.decoder]))
    assert model.weight_penalty().item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("kind", ["cheby", "lanczos", "spline", "fourier"])
def test_weight_penalty_covers_every_parameter(kind):
    """With several weight matrices and a response per layer, L_w is 1/2 the sum of squares of all of them,
    the parameters Adam's weight decay acts on."""
    model = GraphAutoencoder(7, 4, hidden=5, params=small_params(filter=kind))
    arrays = [p.detach().double().numpy() for p in model.parameters()]
    assert len(arrays) > 6 or arrays[0].ndim == 3  # responses, or stacked matrices (Theta_k)
    assert model.weight_penalty().item() == pytest.approx(0.5 * sum((a**2).sum() for a in arrays), rel=1e-6)


def test_reconstruction_loss_is_mean_squared_norm_per_node():
    """L_r (Eq. 6) = mean over nodes of ||x - x_hat||^2."""
    x, x_hat = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    diff = (x - x_hat).double().numpy().reshape(-1, 5)
    expected = np.mean([(row**2).sum() for row in diff])
    assert reconstruction_loss(x, x_hat).item() == pytest.approx(expected, rel=1e-6)


def test_training_step_follows_the_full_loss_of_eq_8():
    """One training step equals an Adam step on alpha * L_r + beta * L_w written out in full."""
    params = small_params(epochs=1, batch_nodes=8, alpha=0.9, beta=0.1, lr=0.01)
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))  # one graph, so one step
    trained_model, _ = train_autoencoder(x, 3, params)

    torch.manual_seed(params.seed)
    reference = GraphAutoencoder(5, 3, params.hidden)
    optimiser = torch.optim.Adam(reference.parameters(), lr=params.lr)
    propagation = nrdh_propagation(x[None], params.rho, params.p)
    _, x_hat = reference(x[None], Graph(operator=propagation))
    squared = ((x[None] - x_hat) ** 2).sum(-1).mean()
    penalty = 0.5 * sum((layer.weight**2).sum() for layer in [*reference.encoder, *reference.decoder])
    (params.alpha * squared + params.beta * penalty).backward()
    optimiser.step()
    for got, want in zip(trained_model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_prepare_selects_filter():
    """'none' needs no graph (X W alone); 'gcn' gives U' with the params' rho and p, or Kipf's propagation;
    other names are refused."""
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(3))
    none = GraphAutoencoder(3, 2, hidden=4, params=small_params(filter="none"))
    assert none.prepare(x) == Graph()
    layer = none.encoder[0]
    torch.testing.assert_close(layer(x, none.prepare(x)), x @ layer.weight)
    for rho, p in [(0.1, 0.6), (0.5, 0.9)]:
        got = GraphAutoencoder(3, 2, hidden=4, params=small_params(filter="gcn", rho=rho, p=p)).prepare(x)
        assert torch.equal(got.operator, nrdh_propagation(x, rho=rho, p=p))
    kipf = GraphAutoencoder(3, 2, hidden=4, params=small_params(gcn_propagation="kipf", rho=0.1)).prepare(x)
    linked = (nrdh_propagation(x, rho=0.1, p=0.5) > 0).float() - torch.eye(6)
    torch.testing.assert_close(kipf.operator, kipf_propagation(linked))
    with pytest.raises(GraphhashError, match=r"^represent\.filter: unknown filter 'sparse'"):
        GraphAutoencoder(3, 2, params=small_params(filter="sparse"))


def test_training_lowers_loss_and_records_each_epoch(trained):
    """Training on digit features lowers the loss; one record per epoch with loss = alpha*rec + beta*penalty."""
    _, history = trained
    params = small_params()
    assert [record["epoch"] for record in history] == list(range(1, params.epochs + 1))
    for record in history:
        assert set(record) == {"epoch", "loss", "reconstruction", "weight_penalty"}
        expected = params.alpha * record["reconstruction"] + params.beta * record["weight_penalty"]
        assert record["loss"] == pytest.approx(expected, rel=1e-5)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]


def test_training_is_seeded(digits, trained):
    """The same seed gives identical weights; another seed gives different ones."""
    model, history = trained
    again, history_again = train_autoencoder(digits, BITS, small_params())
    other, _ = train_autoencoder(digits, BITS, small_params(seed=1, epochs=1))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
    assert history == history_again
    assert not all(torch.equal(tensor, other.state_dict()[name]) for name, tensor in model.state_dict().items())


def test_node_representations_shape_and_determinism(digits, trained):
    """Representations are (N, g), finite, and identical on a second call."""
    model, _ = trained
    first = node_representations(model, digits, small_params())
    assert first.shape == (len(digits), BITS)
    assert torch.isfinite(first).all()
    assert torch.equal(first, node_representations(model, digits, small_params()))


def test_node_representations_without_graph_encode_each_node_alone(digits, trained):
    """With filter 'none' each node's representation is the encoder applied to that node alone."""
    model, _ = trained
    got = node_representations(model, digits[:23], small_params(filter="none")).numpy()
    enc = weights_of(model.encoder)
    expected = np.stack([dense_run(enc, row[None], np.eye(1))[0] for row in digits[:23].double().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_node_representations_isolated_nodes_ignore_grouping(trained):
    """Mutually orthogonal features: every node is isolated in any graph, so 'gcn' encodes each node alone."""
    model, _ = trained
    features = torch.zeros(23, 64)
    features[torch.arange(23), torch.arange(23) * 2] = torch.linspace(1.0, 16.0, 23)  # 23 nodes: 2 graphs + 3
    got = node_representations(model, features, small_params(filter="gcn")).numpy()
    enc = weights_of(model.encoder)
    expected = np.stack([dense_run(enc, row[None], np.eye(1))[0] for row in features.double().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_node_representations_single_graph_matches_dense(digits, trained):
    """With no more nodes than batch_nodes all nodes form one graph: Z = encoder(X) under U' of Eqs. 2-4."""
    model, _ = trained
    params = small_params(batch_nodes=10, rho=0.7)  # digit cosines here lie in 0.45-0.87
    x = digits[:8].double().numpy()
    u = dense_propagation(x, params.rho, params.p)
    assert 8 < np.count_nonzero(u) < 64  # some links, not all
    expected = dense_run(weights_of(model.encoder), x, u)
    got = node_representations(model, digits[:8], params).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


FILTER_PARAMS = {"cheby_order": 3, "lanczos_steps": 4, "spectral_basis": "bspline", "spectral_knots": 6,
                 "gcn_propagation": "nrdh"}  # fmt: skip


@pytest.mark.parametrize("kind", FILTERS)
def test_every_filter_trains_and_represents_with_a_remainder_graph(digits, kind):
    """47 nodes in graphs of 10 (four graphs and a remainder of 7): two epochs give finite, falling losses and
    finite (N, g) representations, for every filter."""
    params = small_params(filter=kind, epochs=2, lr=0.01, **FILTER_PARAMS)
    model, history = train_autoencoder(digits[:47], 6, params)
    assert len(history) == 2
    assert all(np.isfinite(record[key]) for record in history for key in ("loss", "reconstruction"))
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]
    z = node_representations(model, digits[:47], params)
    assert z.shape == (47, 6)
    assert torch.isfinite(z).all()


def test_gcn_with_kipf_propagation_trains(digits):
    """The Kipf-normalised gcn runs end to end too, and differs from NRDH's U'."""
    params = small_params(epochs=1, gcn_propagation="kipf")
    model, history = train_autoencoder(digits[:30], 4, params)
    assert np.isfinite(history[0]["loss"])
    nrdh, _ = train_autoencoder(digits[:30], 4, small_params(epochs=1))
    assert not torch.equal(model.encoder[0].weight, nrdh.encoder[0].weight)


def test_fourier_remainder_graph_is_completed(digits):
    """For fourier the remainder's representations come from its graph completed with the order's first nodes,
    and only its own nodes are written; fewer nodes than one graph are refused."""
    params = small_params(filter="fourier", epochs=1)
    features = digits[:23]
    model, _ = train_autoencoder(features, 5, params)
    got = node_representations(model, features, params)
    order = torch.randperm(23, generator=torch.Generator().manual_seed(params.seed))
    (full, _), (last, own) = epoch_graphs(order, 10, complete=True)
    assert own == 3 and last.shape == (1, 10)
    with torch.no_grad():
        x = features[last]
        expected = model.encode(x, model.prepare(x))[0, :own]
        torch.testing.assert_close(got[order[20:]], expected)
        x = features[full]
        torch.testing.assert_close(got[full.reshape(-1)], model.encode(x, model.prepare(x)).reshape(-1, 5))
    with pytest.raises(GraphhashError, match=r"^represent\.batch_nodes: .* 10 nodes, but there are only 9"):
        train_autoencoder(features[:9], 5, params)


def test_fourier_loss_counts_each_node_once(digits):
    """The borrowed nodes of the completed remainder graph are not in its loss: an epoch on 13 nodes (a graph
    of 10, and the remainder of 3 completed with 7 borrowed nodes) records the mean over the 13 own nodes."""
    params = small_params(filter="fourier", epochs=1, lr=0.0, beta=0.0)  # lr 0: the weights stay put
    features = digits[:13]
    model, history = train_autoencoder(features, 5, params)
    order = torch.randperm(13, generator=torch.Generator().manual_seed(params.seed))  # the first epoch's order
    total = 0.0
    with torch.no_grad():
        for block, own in epoch_graphs(order, 10, complete=True):
            x = features[block]
            _, x_hat = model(x, model.prepare(x))
            total += ((x - x_hat)[:, :own] ** 2).sum(dim=-1).sum().item()
    assert history[0]["reconstruction"] == pytest.approx(total / 13, rel=1e-5)


def test_graph_is_prepared_once_per_block(digits, monkeypatch):
    """The weight-free graph work runs once per block of graphs per epoch, not per layer or per step."""
    calls = []
    prepare = GraphAutoencoder.prepare
    monkeypatch.setattr(GraphAutoencoder, "prepare", lambda self, x: calls.append(x.shape) or prepare(self, x))
    params = small_params(filter="spline", epochs=2, **FILTER_PARAMS)
    autoencoder.train_autoencoder(digits[:47], 4, params)
    assert calls == [(4, 10, 64), (1, 7, 64)] * 2


def brute_force_neighbours(features: torch.Tensor, k: int) -> torch.Tensor:
    """Each node's k most cosine-similar other nodes, (N, k), by a dense similarity matrix."""
    unit = features / features.norm(dim=1, keepdim=True)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2.0)
    return sims.topk(k, dim=1).indices


def test_knn_representations_encode_each_node_in_its_own_graph(digits, monkeypatch):
    """With represent.graph: knn a node's representation is row 0 of the encoder on [node, its neighbours],
    whatever chunk of graphs it is computed in."""
    monkeypatch.setattr(autoencoder, "KNN_CHUNK", 7)
    params = small_params(graph="knn", batch_nodes=5, epochs=2, graphs_per_step=4)
    features = digits[:40]
    neighbours = brute_force_neighbours(features, 4)
    model, history = train_autoencoder(features, 6, params, neighbours)
    got = node_representations(model, features, params, neighbours)
    enc = weights_of(model.encoder)
    for i in range(len(features)):
        graph = features[torch.cat([torch.tensor([i]), neighbours[i]])].double().numpy()
        expected = dense_run(enc, graph, dense_propagation(graph, params.rho, params.p))[0]
        np.testing.assert_allclose(got[i].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert len(history) == 2 and history[-1]["reconstruction"] < history[0]["reconstruction"]


def test_knn_epoch_loss_is_the_mean_over_every_graph_node(digits):
    """An epoch of kNN graphs counts each of the N graphs' M nodes (lr 0: the weights stay put)."""
    params = small_params(graph="knn", batch_nodes=4, epochs=1, lr=0.0, beta=0.0, graphs_per_step=3)
    features = digits[:11]
    neighbours = brute_force_neighbours(features, 3)
    model, history = train_autoencoder(features, 5, params, neighbours)
    with torch.no_grad():
        x = features[torch.cat([torch.arange(11)[:, None], neighbours], dim=1)]
        _, x_hat = model(x, model.prepare(x))
    assert history[0]["reconstruction"] == pytest.approx(((x - x_hat) ** 2).sum(-1).mean().item(), rel=1e-5)


def test_knn_graph_needs_neighbours(digits):
    with pytest.raises(GraphhashError, match=r"^represent\.graph: knn needs"):
        train_autoencoder(digits[:20], 4, small_params(graph="knn"))
