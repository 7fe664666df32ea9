"""Stage 1 of NRDH: the graph-convolutional autoencoder (Eqs. 5-8, Table 1)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphhash.errors import GraphhashError
from graphhash.graphs.batch import epoch_graphs, kipf_propagation, nrdh_propagation
from graphhash.graphs.filters import FILTERS, Graph
from graphhash.graphs.filters.gcn import GCNConv
from graphhash.nrdh import autoencoder
from graphhash.nrdh.autoencoder import (
    GraphAutoencoder,
    Graphs,
    RepresentationLearner,
    node_representations,
    reconstruction_loss,
)

BITS = 16
# 200 digits in batch graphs of 10 nodes, one graph per step: an epoch is 20 Adam steps.
EPOCH = 20


def small_represent(**overrides) -> RepresentationLearner:
    """Stage 1's learner, shrunk so that a training run takes well under a second: 5 epochs of the digits; a
    filter's options as a keyword named after it (``cheby={"order": 2}``), gcn's p 0.8 unless given."""
    values = {"hidden": 16, "alpha": 0.999, "beta": 0.001, "steps": 5 * EPOCH, "lr": 1e-3, "graphs_per_step": 1,
              "seed": 0}  # fmt: skip
    options = {"gcn": {"p": 0.8}} | {name: overrides.pop(name) for name in list(overrides) if name in FILTERS}
    return RepresentationLearner(options, **(values | overrides))


def small_graph(**overrides) -> Graphs:
    """The paper's batch graphs: 10 random nodes, rho 0.4."""
    return Graphs(**({"kind": "batch", "nodes": 10, "rho": 0.4} | overrides))


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


@pytest.fixture
def frozen(monkeypatch) -> list[int]:
    """Adam steps that change nothing (the weights stay at their initial values); counts them."""
    calls: list[int] = []
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *args, **kwargs: calls.append(1))
    return calls


# Tiny networks run on one thread: intra-op threads only add synchronisation at such sizes.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(digits):
    return small_represent().fit(digits, BITS, "gcn", small_graph())


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
    """With the default params: encoder in -> 64 -> 64 -> g, decoder mirrored back to in, weights only (no bias)."""
    model = RepresentationLearner().build(2048, 32, "gcn", small_graph())
    assert [tuple(layer.weight.shape) for layer in model.encoder] == [(2048, 64), (64, 64), (64, 32)]
    assert [tuple(layer.weight.shape) for layer in model.decoder] == [(32, 64), (64, 64), (64, 2048)]
    assert len(list(model.parameters())) == 6


def test_autoencoder_takes_any_layer_factory():
    """GraphAutoencoder builds its six layers from ``layer(a, b)`` over in -> hidden -> hidden -> bits and back."""
    built = []

    def layer(a: int, b: int) -> GCNConv:
        built.append((a, b))
        return GCNConv(a, b, propagation="kipf")

    model = GraphAutoencoder(9, 2, layer, hidden=4, rho=0.25)
    assert built == [(9, 4), (4, 4), (4, 2), (2, 4), (4, 4), (4, 9)]
    x = torch.randn(1, 6, 9, generator=torch.Generator().manual_seed(8))
    linked = (nrdh_propagation(x, rho=0.25, p=0.5) > 0).float() - torch.eye(6)  # Eq. 3 with the model's rho
    torch.testing.assert_close(model.prepare(x).operator, kipf_propagation(linked))


def test_build_autoencoder_passes_the_filters_hyperparameters():
    """represent.<filter> reaches every one of the six layers: cheby's order sets each Theta's terms."""
    model = small_represent(hidden=5, cheby={"order": 2}).build(7, 3, "cheby", small_graph())
    assert [tuple(layer.weight.shape) for layer in [*model.encoder, *model.decoder]] == [
        (2, 7, 5), (2, 5, 5), (2, 5, 3), (2, 3, 5), (2, 5, 5), (2, 5, 7)]  # fmt: skip
    fourier = small_represent(hidden=5).build(7, 3, "fourier", small_graph(nodes=6))
    assert all(layer.response.shape == (6,) for layer in [*fourier.encoder, *fourier.decoder])


def test_autoencoder_forward_by_hand():
    """Latent and reconstruction equal the hand-computed chain: ReLU after layers 1-2 of each half, none after 3."""
    torch.manual_seed(0)
    model = small_represent(hidden=5, gcn={"p": 0.7}).build(6, 3, "gcn", small_graph(rho=0.1))
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


# Table 1 with in 7, hidden 5, g = 4: the six (in, out) pairs hold 35 + 25 + 20 + 20 + 25 + 35 = 160 weights.
WEIGHTS_PER_MATRIX = 160
# Per filter: (weight matrices per layer, response coefficients per layer), from each filter's formula:
# cheby K = 3 Theta_k; lanczos W_0, W_1, W_2 and 6 B-spline coefficients; spline W and 6; fourier W and M = 10.
PARAMETERS = {"gcn": (1, 0), "none": (1, 0), "cheby": (3, 0), "lanczos": (3, 6), "spline": (1, 6), "fourier": (1, 10)}


@pytest.mark.parametrize("kind", sorted(PARAMETERS))
def test_weight_penalty_is_half_sum_of_squares_of_every_parameter(kind):
    """L_w (Eq. 7) with every weight set to 0.5 and every response coefficient to -2 is the closed form
    1/2 (0.25 * weights + 4 * coefficients), the counts taken from the layers' shapes in Table 1."""
    assert set(PARAMETERS) == set(FILTERS)
    model = small_represent(hidden=5, cheby={"order": 3}).build(7, 4, kind, small_graph(nodes=10))
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.fill_(-2.0 if name.endswith("response") else 0.5)
    matrices, coefficients = PARAMETERS[kind]
    expected = 0.5 * (0.5**2 * matrices * WEIGHTS_PER_MATRIX + 2.0**2 * 6 * coefficients)
    assert model.weight_penalty().item() == pytest.approx(expected, rel=1e-6)


def test_reconstruction_loss_is_mean_squared_norm_per_node():
    """L_r (Eq. 6) = mean over nodes of ||x - x_hat||^2."""
    x, x_hat = torch.randn(3, 4, 5), torch.randn(3, 4, 5)
    diff = (x - x_hat).double().numpy().reshape(-1, 5)
    expected = np.mean([(row**2).sum() for row in diff])
    assert reconstruction_loss(x, x_hat).item() == pytest.approx(expected, rel=1e-6)


def explicit_penalty(model: GraphAutoencoder) -> torch.Tensor:
    """1/2 sum ||W||^2 over each layer's weight and response (when it has one), written out layer by layer."""
    total = torch.zeros(())
    for layer in [*model.encoder, *model.decoder]:
        total = total + 0.5 * (layer.weight**2).sum()
        if hasattr(layer, "response"):
            total = total + 0.5 * (layer.response**2).sum()
    return total


@pytest.mark.parametrize("kind", ["gcn", "lanczos"])
def test_training_step_follows_the_full_loss_of_eq_8(kind):
    """One training step (Adam with weight decay beta on alpha * L_r) equals a plain Adam step on
    alpha * L_r + beta * L_w, with L_w written out over every layer's weights and response."""
    represent = small_represent(steps=1, alpha=0.9, beta=0.1, lr=0.01, lanczos={"steps": 4})
    graph = small_graph(nodes=8)
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(4))  # one graph, so one step per epoch
    trained_model, history = represent.fit(x, 3, kind, graph)
    assert len(history) == 1

    torch.manual_seed(represent.seed)
    reference = represent.build(5, 3, kind, graph)
    optimiser = torch.optim.Adam(reference.parameters(), lr=represent.lr)  # no weight decay
    _, x_hat = reference(x[None], reference.prepare(x[None]))  # the loss does not depend on the node order
    squared = ((x[None] - x_hat) ** 2).sum(-1).mean()
    (represent.alpha * squared + represent.beta * explicit_penalty(reference)).backward()
    optimiser.step()
    for got, want in zip(trained_model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_prepare_follows_the_filter():
    """'none' needs no graph (X W alone); 'gcn' gives U' with the graph's rho and gcn.p, or Kipf's propagation."""
    x = torch.randn(2, 6, 3, generator=torch.Generator().manual_seed(3))
    none = small_represent(hidden=4).build(3, 2, "none", small_graph())
    assert none.prepare(x) == Graph()
    layer = none.encoder[0]
    torch.testing.assert_close(layer(x, none.prepare(x)), x @ layer.weight)
    for rho, p in [(0.1, 0.6), (0.5, 0.9)]:
        model = small_represent(hidden=4, gcn={"p": p}).build(3, 2, "gcn", small_graph(rho=rho))
        assert torch.equal(model.prepare(x).operator, nrdh_propagation(x, rho=rho, p=p))
    represent = small_represent(hidden=4, gcn={"propagation": "kipf"})
    kipf = represent.build(3, 2, "gcn", small_graph(rho=0.1)).prepare(x)
    linked = (nrdh_propagation(x, rho=0.1, p=0.5) > 0).float() - torch.eye(6)
    torch.testing.assert_close(kipf.operator, kipf_propagation(linked))


def test_training_lowers_loss_and_records_each_epoch(trained):
    """Training on digit features lowers the loss; one record per epoch (5 epochs of 20 steps for 100 steps),
    with loss = alpha * rec + beta * penalty."""
    _, history = trained
    represent = small_represent()
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5]
    assert [record["step"] for record in history] == [20, 40, 60, 80, 100]
    assert [record["steps"] for record in history] == [EPOCH] * 5
    for record in history:
        assert set(record) == {"epoch", "step", "steps", "loss", "reconstruction", "weight_penalty"}
        expected = represent.alpha * record["reconstruction"] + represent.beta * record["weight_penalty"]
        assert record["loss"] == pytest.approx(expected, rel=1e-5)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]


def test_training_is_seeded(digits, trained):
    """The same params give identical weights and history; another seed gives different weights."""
    model, history = trained
    again, history_again = small_represent().fit(digits, BITS, "gcn", small_graph())
    other, _ = small_represent(seed=1, steps=EPOCH).fit(digits, BITS, "gcn", small_graph())
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
    assert history == history_again
    assert not all(torch.equal(tensor, other.state_dict()[name]) for name, tensor in model.state_dict().items())


@pytest.mark.parametrize(("graphs_per_step", "per_epoch"), [(1, 5), (2, 3)])
@pytest.mark.parametrize("epochs", [1, 3])
def test_training_runs_whole_epochs_when_steps_divide(digits, adam_steps, graphs_per_step, per_epoch, epochs):
    """47 nodes in graphs of 10 are 5 graphs an epoch: 5 steps of one graph, or 3 of two (2 + 2 + 1). With
    steps = k epochs' worth the history has k records, the last at step = steps, and Adam stepped that often."""
    represent = small_represent(steps=epochs * per_epoch, graphs_per_step=graphs_per_step, hidden=8)
    _, history = represent.fit(digits[:47], 4, "gcn", small_graph())
    assert len(history) == epochs
    assert [record["steps"] for record in history] == [per_epoch] * epochs
    assert [record["step"] for record in history] == [per_epoch * (e + 1) for e in range(epochs)]
    assert history[-1]["step"] == represent.steps == len(adam_steps)


@pytest.mark.parametrize(("graphs_per_step", "steps", "per_record"), [(1, 12, [5, 5, 2]), (2, 7, [3, 3, 1]),
                                                                     (1, 3, [3]), (3, 5, [3, 2])])  # fmt: skip
def test_training_stops_mid_epoch_where_the_steps_run_out(digits, adam_steps, graphs_per_step, steps, per_record):
    """With steps not a multiple of an epoch's steps, the last epoch is partial: Adam steps exactly ``steps``
    times in all, and the records count the steps of each epoch and the running total. (Three graphs a step:
    the block of 4 full graphs takes 2 steps, the remainder graph a third.)"""
    represent = small_represent(steps=steps, graphs_per_step=graphs_per_step, hidden=8)
    _, history = represent.fit(digits[:47], 4, "gcn", small_graph())
    assert len(adam_steps) == steps
    assert [record["steps"] for record in history] == per_record
    assert [record["step"] for record in history] == list(np.cumsum(per_record))
    assert [record["epoch"] for record in history] == list(range(1, len(per_record) + 1))


def test_partial_epoch_records_the_loss_of_the_graphs_it_stepped_on(digits, frozen):
    """Weights frozen: the partial third epoch (2 of its 5 graphs) records the mean reconstruction over the nodes
    of the first two graphs of its shuffle, the third permutation drawn from a generator seeded with the seed."""
    represent = small_represent(steps=12, beta=0.0, hidden=8)
    features = digits[:47]
    model, history = represent.fit(features, 4, "gcn", small_graph())
    assert len(frozen) == 12 and history[-1]["steps"] == 2
    generator = torch.Generator().manual_seed(represent.seed)
    orders = [torch.randperm(47, generator=generator) for _ in range(3)]
    with torch.no_grad():
        for epoch, (order, graphs) in enumerate(zip(orders, [5, 5, 2], strict=True)):
            errors = []
            for g in range(graphs):
                x = features[order[10 * g : 10 * g + 10]][None]
                _, x_hat = model(x, model.prepare(x))
                errors.append(((x - x_hat) ** 2).sum(dim=-1).reshape(-1))
            expected = torch.cat(errors).double().mean().item()
            assert history[epoch]["reconstruction"] == pytest.approx(expected, rel=1e-5)


def test_partial_epoch_prepares_only_the_blocks_it_uses(digits, monkeypatch):
    """A last epoch that stops within its first block of graphs prepares no further block."""
    calls = []
    prepare = GraphAutoencoder.prepare
    monkeypatch.setattr(GraphAutoencoder, "prepare", lambda self, x: calls.append(x.shape) or prepare(self, x))
    represent = small_represent(steps=5 + 2, hidden=8)  # one epoch of 5 graphs (4 + the remainder), then 2 steps
    represent.fit(digits[:47], 4, "gcn", small_graph())
    assert calls == [(4, 10, 64), (1, 7, 64), (4, 10, 64)]


@pytest.mark.parametrize("kind", ["gcn", "spline"])
def test_same_params_give_identical_weights(digits, kind):
    """Two runs with the same params, a partial last epoch included, end with bit-identical weights."""
    represent = small_represent(steps=13, graphs_per_step=2, hidden=8, lr=0.01)
    first, history = represent.fit(digits[:47], 4, kind, small_graph())
    second, history_again = represent.fit(digits[:47], 4, kind, small_graph())
    assert first.state_dict().keys() == second.state_dict().keys()
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name
    assert history == history_again


def test_non_finite_loss_stops_training_naming_the_stage_and_epoch(digits, adam_steps):
    """A feature so large that its squared error overflows float32 makes the first epoch's loss non-finite:
    training stops there, with one line naming the represent stage and epoch 1."""
    features = digits[:47].clone()
    features[3, 5] = 1e30
    with pytest.raises(GraphhashError, match=r"^represent: .*\b(inf|nan)\b.* epoch 1\b") as info:
        small_represent(steps=50, hidden=8).fit(features, 4, "gcn", small_graph())
    assert "\n" not in str(info.value)
    assert len(adam_steps) == 5  # one epoch, not the 50 steps asked for


def test_node_representations_shape_and_determinism(digits, trained):
    """Representations are (N, g), finite, and identical on a second call."""
    model, _ = trained
    first = node_representations(model, digits, small_graph(), seed=0)
    assert first.shape == (len(digits), BITS)
    assert torch.isfinite(first).all()
    assert torch.equal(first, node_representations(model, digits, small_graph(), seed=0))


def test_node_representations_without_graph_encode_each_node_alone(digits):
    """With filter 'none' each node's representation is the encoder applied to that node alone."""
    torch.manual_seed(6)
    model = small_represent().build(64, BITS, "none", small_graph())
    got = node_representations(model, digits[:23], small_graph(), seed=0).numpy()
    enc = weights_of(model.encoder)
    expected = np.stack([dense_run(enc, row[None], np.eye(1))[0] for row in digits[:23].double().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_node_representations_isolated_nodes_ignore_grouping(trained):
    """Mutually orthogonal features: every node is isolated in any graph, so 'gcn' encodes each node alone."""
    model, _ = trained
    features = torch.zeros(23, 64)
    features[torch.arange(23), torch.arange(23) * 2] = torch.linspace(1.0, 16.0, 23)  # 23 nodes: 2 graphs + 3
    got = node_representations(model, features, small_graph(), seed=0).numpy()
    enc = weights_of(model.encoder)
    expected = np.stack([dense_run(enc, row[None], np.eye(1))[0] for row in features.double().numpy()])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_node_representations_single_graph_matches_dense(digits, trained):
    """With no more nodes than graph.nodes all nodes form one graph: Z = encoder(X) under U' of Eqs. 2-4."""
    graph = small_graph(nodes=10, rho=0.7)  # digit cosines here lie in 0.45-0.87
    model = small_represent().build(64, BITS, "gcn", graph)  # the trained weights, rho 0.7
    model.load_state_dict(trained[0].state_dict())
    x = digits[:8].double().numpy()
    u = dense_propagation(x, graph.rho, 0.8)
    assert 8 < np.count_nonzero(u) < 64  # some links, not all
    expected = dense_run(weights_of(model.encoder), x, u)
    got = node_representations(model, digits[:8], graph, seed=0).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


FILTER_OPTIONS = {"cheby": {"order": 3}, "lanczos": {"steps": 4}, "spline": {"basis": "bspline", "knots": 6}}


@pytest.mark.parametrize("kind", list(FILTERS))
def test_every_filter_trains_and_represents_with_a_remainder_graph(digits, kind):
    """47 nodes in graphs of 10 (four graphs and a remainder of 7): two epochs (10 steps) give finite, falling
    losses and finite (N, g) representations, for every filter."""
    represent = small_represent(steps=10, lr=0.01, **FILTER_OPTIONS)
    model, history = represent.fit(digits[:47], 6, kind, small_graph())
    assert len(history) == 2
    assert all(np.isfinite(record[key]) for record in history for key in ("loss", "reconstruction"))
    assert history[-1]["reconstruction"] < history[0]["reconstruction"]
    z = node_representations(model, digits[:47], small_graph(), seed=0)
    assert z.shape == (47, 6)
    assert torch.isfinite(z).all()


def test_gcn_with_kipf_propagation_trains(digits):
    """The Kipf-normalised gcn runs end to end too, and differs from NRDH's U'."""
    kipf = small_represent(steps=3, gcn={"propagation": "kipf"})  # 30 nodes: one epoch of 3 graphs
    model, history = kipf.fit(digits[:30], 4, "gcn", small_graph())
    assert np.isfinite(history[0]["loss"])
    nrdh, _ = small_represent(steps=3).fit(digits[:30], 4, "gcn", small_graph())
    assert not torch.equal(model.encoder[0].weight, nrdh.encoder[0].weight)


def test_fourier_remainder_graph_is_completed(digits):
    """For fourier the remainder's representations come from its graph completed with the order's first nodes,
    and only its own nodes are written; fewer nodes than one graph are refused."""
    represent = small_represent(steps=3)  # 23 nodes: one epoch of 3 graphs
    features = digits[:23]
    model, _ = represent.fit(features, 5, "fourier", small_graph())
    got = node_representations(model, features, small_graph(), seed=represent.seed)
    order = torch.randperm(23, generator=torch.Generator().manual_seed(represent.seed))
    (full, _), (last, own) = epoch_graphs(order, 10, complete=True)
    assert own == 3 and last.shape == (1, 10)
    with torch.no_grad():
        x = features[last]
        expected = model.encode(x, model.prepare(x))[0, :own]
        torch.testing.assert_close(got[order[20:]], expected)
        x = features[full]
        torch.testing.assert_close(got[full.reshape(-1)], model.encode(x, model.prepare(x)).reshape(-1, 5))
    with pytest.raises(GraphhashError, match=r"^graph\.nodes: .* 10 nodes, but there are only 9"):
        represent.fit(features[:9], 5, "fourier", small_graph())


def test_fourier_loss_counts_each_node_once(digits, frozen):
    """The borrowed nodes of the completed remainder graph are not in its loss: an epoch on 13 nodes (a graph
    of 10, and the remainder of 3 completed with 7 borrowed nodes) records the mean over the 13 own nodes."""
    represent = small_represent(steps=2, beta=0.0)  # weights frozen: the model returned is the one that stepped
    features = digits[:13]
    model, history = represent.fit(features, 5, "fourier", small_graph())
    order = torch.randperm(13, generator=torch.Generator().manual_seed(represent.seed))  # the first epoch's order
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
    represent = small_represent(steps=10, **FILTER_OPTIONS)  # two epochs of 5 graphs
    represent.fit(digits[:47], 4, "spline", small_graph())
    assert calls == [(4, 10, 64), (1, 7, 64)] * 2


def brute_force_neighbours(features: torch.Tensor, k: int) -> torch.Tensor:
    """Each node's k most cosine-similar other nodes, (N, k), by a dense similarity matrix."""
    unit = features / features.norm(dim=1, keepdim=True)
    sims = unit @ unit.T
    sims.fill_diagonal_(-2.0)
    return sims.topk(k, dim=1).indices


def test_knn_representations_encode_each_node_in_its_own_graph(digits, monkeypatch):
    """With graph.kind: knn a node's representation is row 0 of the encoder on [node, its neighbours],
    whatever chunk of graphs it is computed in."""
    monkeypatch.setattr(autoencoder, "KNN_CHUNK", 7)
    graph = small_graph(kind="knn", nodes=5)
    represent = small_represent(steps=20, graphs_per_step=4)  # 40 graphs, 4 a step: two epochs of 10 steps
    features = digits[:40]
    neighbours = brute_force_neighbours(features, 4)
    model, history = represent.fit(features, 6, "gcn", graph, neighbours)
    got = node_representations(model, features, graph, represent.seed, neighbours)
    enc = weights_of(model.encoder)
    for i in range(len(features)):
        nodes = features[torch.cat([torch.tensor([i]), neighbours[i]])].double().numpy()
        expected = dense_run(enc, nodes, dense_propagation(nodes, graph.rho, 0.8))[0]
        np.testing.assert_allclose(got[i].numpy(), expected, rtol=1e-4, atol=1e-4)
    assert len(history) == 2 and history[-1]["reconstruction"] < history[0]["reconstruction"]


def test_knn_epoch_loss_is_the_mean_over_every_graph_node(digits, frozen):
    """An epoch of kNN graphs counts each of the N graphs' M nodes (weights frozen)."""
    graph = small_graph(kind="knn", nodes=4)
    represent = small_represent(steps=4, beta=0.0, graphs_per_step=3)  # 11 graphs, 3 a step: 4 steps
    features = digits[:11]
    neighbours = brute_force_neighbours(features, 3)
    model, history = represent.fit(features, 5, "gcn", graph, neighbours)
    assert len(history) == 1 and len(frozen) == 4
    with torch.no_grad():
        x = features[torch.cat([torch.arange(11)[:, None], neighbours], dim=1)]
        _, x_hat = model(x, model.prepare(x))
    assert history[0]["reconstruction"] == pytest.approx(((x - x_hat) ** 2).sum(-1).mean().item(), rel=1e-5)


def test_knn_graph_needs_neighbours(digits):
    with pytest.raises(GraphhashError, match=r"^graph\.kind: knn needs"):
        small_represent().fit(digits[:20], 4, "gcn", small_graph(kind="knn"))


def test_narrowness_is_one_minus_the_normalised_spectral_entropy():
    """L_n against a dense eigendecomposition of NumPy's covariance: 1 - H(p) / log g; 0 for an even spread, near 1
    for rows on one line."""
    rng = np.random.default_rng(7)
    z = rng.standard_normal((300, 6)) @ np.diag([4.0, 2.0, 1.0, 0.5, 0.2, 0.1])
    values = np.linalg.eigvalsh(np.cov(z, rowvar=False))
    p = values / values.sum()
    expected = 1 + (p * np.log(p)).sum() / np.log(6)
    assert autoencoder.narrowness(torch.from_numpy(z)).item() == pytest.approx(expected, rel=1e-9)
    even = np.linalg.qr(rng.standard_normal((300, 6)))[0] * np.sqrt(299)  # orthonormal columns: covariance ~ I
    assert autoencoder.narrowness(torch.from_numpy(even - even.mean(0))).item() == pytest.approx(0.0, abs=1e-2)
    line = np.outer(rng.standard_normal(300), rng.standard_normal(6))
    assert autoencoder.narrowness(torch.from_numpy(line)).item() > 0.9


def test_the_spread_term_widens_the_representations_and_is_recorded_only_when_weighed(digits):
    """represent.spread > 0: the representations' variance is spread over more directions than without it (their
    covariance's spectrum measured with NumPy), the epoch records carry the narrowness, and the loss includes it;
    spread 0 records the paper's terms alone."""
    graphs = small_graph(kind="knn")
    unit = digits.numpy() / np.linalg.norm(digits.numpy(), axis=1, keepdims=True)
    neighbours = torch.from_numpy(np.argsort(-(unit @ unit.T), axis=1, kind="stable")[:, 1:10])

    def entropy_and_history(spread: float) -> tuple[float, list[dict]]:
        learner = small_represent(spread=spread, steps=60, graphs_per_step=8)
        model, history = learner.fit(digits, BITS, "gcn", graphs, neighbours)
        z = node_representations(model, digits, graphs, 0, neighbours).double().numpy()
        values = np.clip(np.linalg.eigvalsh(np.cov(z, rowvar=False)), 1e-12, None)
        p = values / values.sum()
        return float(-(p * np.log(p)).sum()), history

    plain, plain_history = entropy_and_history(0.0)
    spread, spread_history = entropy_and_history(100.0)  # these raw pixels reconstruct with errors in the hundreds
    assert spread > plain + 0.2
    assert "narrowness" not in plain_history[-1] and 0 <= spread_history[-1]["narrowness"] <= 1
    last = spread_history[-1]
    assert last["loss"] == pytest.approx(0.999 * last["reconstruction"] + 0.001 * last["weight_penalty"]
                                         + 100.0 * last["narrowness"])  # fmt: skip
