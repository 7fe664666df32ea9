"""Stage 2 of NRDH: the hash-function network (Eqs. 9-19, Table 2), its loss, codes and checkpoints."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.files.models import save_model
from graphhash.nrdh.encoder import HASH_MODELS, load_hash_network
from graphhash.nrdh.hashnet import HashLearner, HashNet, Targets, rotated_targets

BITS = 16
EXECUTED: list[str] = []  # filled only if unpickling a checkpoint runs code


def _record_execution(message: str) -> None:
    EXECUTED.append(message)


class _Payload:
    """Unpickling this object calls ``_record_execution``: a stand-in for a malicious checkpoint."""

    def __reduce__(self):
        return (_record_execution, ("payload ran",))


# 200 digits in batches of 50: an epoch is 4 Adam steps.
EPOCH = 4


def learner(**overrides) -> HashLearner:
    """Stage 2's learner, shrunk so that a training run takes well under a second: 5 epochs of the digits;
    the paper's loss (Eq. 18: no similarity or pull term) unless overridden."""
    values = {"mu": 0.8, "omega": 0.2, "similarity": 0.0, "gamma": 0.0, "steps": 5 * EPOCH, "batch_size": 50,
              "lr": 1e-3, "negative_slope": 0.2, "seed": 0, "input": "features", "input_p": 0.3,
              "target": "representation"}  # fmt: skip
    return HashLearner(**(values | overrides))


def numpy_bi_half(h: np.ndarray) -> np.ndarray:
    """In every column, the floor(B / 2) largest values +1 and the rest -1, ties by position (a loop)."""
    codes = -np.ones_like(h)
    for bit in range(h.shape[1]):
        ranked = sorted(range(len(h)), key=lambda i: (-h[i, bit], i))
        codes[ranked[: len(h) // 2], bit] = 1.0
    return codes


def numpy_paired_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.array([x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b, strict=True)])


def save_hash_network(folder: Path, model: HashNet, **extra) -> None:
    """What the hash stage writes: the model folder with the configuration that rebuilds the network."""
    save_model(folder, model, HASH_MODELS["mlp"], {**model.config, **extra})


def randomise_batch_norms(model: HashNet, seed: int) -> None:
    """Give every BN layer non-trivial affine parameters and running statistics."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in (m for m in model.layers if isinstance(m, nn.BatchNorm1d)):
            n = bn.num_features
            bn.weight.copy_(torch.rand(n, generator=gen) + 0.5)
            bn.bias.copy_(torch.randn(n, generator=gen) * 0.5)
            bn.running_mean.copy_(torch.randn(n, generator=gen) * 2.0)
            bn.running_var.copy_(torch.rand(n, generator=gen) * 3.0 + 0.5)


def eval_forward(model: HashNet, x: np.ndarray, slope: float) -> np.ndarray:
    """fc(x) in inference mode, in float64 numpy: Linear, LeakyReLU, BN(running stats) twice, then Linear, BN."""

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().double().numpy()

    def linear(layer: nn.Linear, h: np.ndarray) -> np.ndarray:
        return h @ arr(layer.weight).T + arr(layer.bias)

    def leaky(h: np.ndarray) -> np.ndarray:
        return np.where(h > 0, h, slope * h)

    def bn(layer: nn.BatchNorm1d, h: np.ndarray) -> np.ndarray:
        scale = arr(layer.weight) / np.sqrt(arr(layer.running_var) + layer.eps)
        return (h - arr(layer.running_mean)) * scale + arr(layer.bias)

    m = model.layers
    h = bn(m[2], leaky(linear(m[0], x)))
    h = bn(m[5], leaky(linear(m[3], h)))
    return bn(m[7], linear(m[6], h))


# Tiny networks run on one thread: intra-op threads only add synchronisation at such sizes.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def targets(digits) -> Targets:
    """Random targets of the right shapes: t(x) (N, g) and representations (N, 2 g)."""
    generator = torch.Generator().manual_seed(5)
    return Targets(torch.randn(len(digits), BITS, generator=generator),
                   torch.randn(len(digits), 2 * BITS, generator=generator))  # fmt: skip


@pytest.fixture(scope="module")
def trained(digits, targets):
    return learner().fit(digits, targets)


def test_architecture_follows_table_2():
    """Linear in->256, LeakyReLU, BN, Linear 256->64, LeakyReLU, BN, Linear 64->g, BN; fc has no tanh."""
    model = HashNet(2048, 32, negative_slope=0.3, dropout=0.0)
    kinds = [type(m) for m in model.layers]
    assert kinds == [nn.Linear, nn.LeakyReLU, nn.BatchNorm1d] * 2 + [nn.Linear, nn.BatchNorm1d]
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 256), (256, 64), (64, 32)]
    assert [m.num_features for m in model.layers if isinstance(m, nn.BatchNorm1d)] == [256, 64, 32]
    assert [m.negative_slope for m in model.layers if isinstance(m, nn.LeakyReLU)] == [0.3, 0.3]
    assert HashNet(1, 1, negative_slope=0.2, dropout=0.0).hidden == (256, 64)


def test_hash_loss_terms_match_numpy():
    """MSE is the element mean; BCE is of (tanh(fc)+1)/2 against b = [tanh(fc) >= 0]; the similarity term
    matches the cosines of the bi-half codes of rows i and i + B/2 to the representations'; the pull is
    1/2 mean((fc - h)^2); total = mu*mse + omega*bce + similarity*L_s + gamma*L_p. An odd batch leaves its
    last row out of the pairs."""
    rng = np.random.default_rng(0)
    for rows in (6, 7):
        fc_np, target_np, reference_np = (
            rng.normal(size=(rows, 5)),
            rng.normal(size=(rows, 5)),
            rng.normal(size=(rows, 9)),
        )
        params = learner(mu=0.8, omega=0.2, similarity=1.5, gamma=4.0)
        mse = np.mean((fc_np - target_np) ** 2)
        prob = (np.tanh(fc_np) + 1) / 2
        b = (np.tanh(fc_np) >= 0).astype(float)
        bce = -np.mean(b * np.log(prob) + (1 - b) * np.log(1 - prob))
        h = numpy_bi_half(fc_np)
        np.testing.assert_array_equal(h.sum(axis=0), np.full(5, -1.0 if rows % 2 else 0.0))  # floor(B / 2) are +1
        half = rows // 2
        code_cosines = numpy_paired_cosines(h[:half], h[half : 2 * half])
        similarity = np.mean(
            (code_cosines - numpy_paired_cosines(reference_np[:half], reference_np[half : 2 * half])) ** 2
        )
        pull = 0.5 * np.mean((fc_np - h) ** 2)
        terms = params.loss(
            torch.from_numpy(fc_np), Targets(torch.from_numpy(target_np), torch.from_numpy(reference_np))
        )
        assert terms["mse"].item() == pytest.approx(mse, rel=1e-10)
        assert terms["bce"].item() == pytest.approx(bce, rel=1e-10)
        assert terms["similarity"].item() == pytest.approx(similarity, rel=1e-10)
        assert terms["pull"].item() == pytest.approx(pull, rel=1e-10)
        total = 0.8 * mse + 0.2 * bce + 1.5 * similarity + 4.0 * pull
        assert terms["loss"].item() == pytest.approx(total, rel=1e-10)


def test_hash_loss_gradient_treats_targets_as_constants():
    """d bce / d fc = 2 (sigmoid(2 fc) - b) / numel with b fixed, and b = 1 at fc = 0 (Eq. 19's rule); the
    pull's is (fc - h) / numel with the codes h fixed; the similarity term's reaches fc straight through the
    bi-half layer: its gradient with respect to the codes, as if they were fc."""
    rng = np.random.default_rng(1)
    fc_np = rng.normal(size=(4, 3))
    fc_np[1, 2] = 0.0
    target_np, reference_np = rng.normal(size=(4, 3)), rng.normal(size=(4, 6))
    targets = Targets(torch.from_numpy(target_np), torch.from_numpy(reference_np))
    b = (fc_np >= 0).astype(float)
    assert b[1, 2] == 1.0
    sigmoid = 1 / (1 + np.exp(-2 * fc_np))
    bce_grad = 2 * (sigmoid - b) / fc_np.size
    mu, omega = 0.7, 0.3
    params = learner(mu=mu, omega=omega)

    fc = torch.tensor(fc_np, requires_grad=True)
    params.loss(fc, targets)["bce"].backward()
    np.testing.assert_allclose(fc.grad.numpy(), bce_grad, rtol=1e-10, atol=1e-12)

    fc = torch.tensor(fc_np, requires_grad=True)
    params.loss(fc, targets)["loss"].backward()
    mse_grad = 2 * (fc_np - target_np) / fc_np.size
    np.testing.assert_allclose(fc.grad.numpy(), mu * mse_grad + omega * bce_grad, rtol=1e-10, atol=1e-12)

    h = numpy_bi_half(fc_np)
    fc = torch.tensor(fc_np, requires_grad=True)
    params.loss(fc, targets)["pull"].backward()
    np.testing.assert_allclose(fc.grad.numpy(), (fc_np - h) / fc_np.size, rtol=1e-10, atol=1e-12)

    codes = torch.tensor(h, requires_grad=True)  # the similarity term as a function of the codes themselves
    cosines = torch.nn.functional.cosine_similarity
    target = cosines(torch.from_numpy(reference_np[:2]), torch.from_numpy(reference_np[2:]))
    ((cosines(codes[:2], codes[2:]) - target) ** 2).mean().backward()
    fc = torch.tensor(fc_np, requires_grad=True)
    params.loss(fc, targets)["similarity"].backward()
    np.testing.assert_allclose(fc.grad.numpy(), codes.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_pull_balances_bits_the_targets_would_skew(digits):
    """Targets positive for most items in half of the bits make the paper's loss give codes with those bits
    mostly 1; the pull towards bi-half codes (gamma) brings every bit of the training codes nearer an even
    split of the items."""
    generator = torch.Generator().manual_seed(3)
    fit = torch.randn(len(digits), BITS, generator=generator)
    fit[:, : BITS // 2] += 1.5  # about 93% of the items above 0 in these bits
    targets = Targets(fit, fit)
    imbalance = {}
    for gamma in (0.0, 6.0):
        model, _ = learner(gamma=gamma, steps=40 * EPOCH, lr=0.01).fit(digits, targets)
        ones = model.codes(digits).mean(axis=0)
        imbalance[gamma] = np.abs(ones - 0.5)[: BITS // 2].mean()
    assert imbalance[0.0] > 0.3
    assert imbalance[6.0] < imbalance[0.0] / 2


def test_similarity_term_makes_the_codes_keep_the_representations_cosines(digits):
    """Trained on the similarity term alone, to representations that are one random point per digit class
    plus noise, the training codes' cosines over all pairs of items follow the representations' (Pearson
    correlation, numpy over every pair) more closely than an untrained network's."""
    generator = torch.Generator().manual_seed(4)
    labels = torch.from_numpy(load_digits().target[: len(digits)])
    reference = torch.randn(10, 12, generator=generator)[labels] + 0.3 * torch.randn(
        len(digits), 12, generator=generator
    )
    targets = Targets(torch.zeros(len(digits), BITS), reference)
    params = learner(mu=0.0, omega=0.0, similarity=1.0, steps=60 * EPOCH, lr=3e-3)

    def agreement(model: HashNet) -> float:
        codes = model.codes(digits) * 2.0 - 1.0
        unit = reference.double().numpy()
        unit /= np.linalg.norm(unit, axis=1, keepdims=True)
        upper = np.triu_indices(len(codes), 1)
        return np.corrcoef((codes @ codes.T / BITS)[upper], (unit @ unit.T)[upper])[0, 1]

    torch.manual_seed(params.seed)
    untrained = HashNet(digits.shape[1], BITS, negative_slope=params.negative_slope, dropout=0.0)
    trained, _ = params.fit(digits, targets)
    assert agreement(trained) > 0.6
    assert agreement(trained) > agreement(untrained) + 0.3


def test_encode_matches_manual_eval_forward():
    """encode gives bool (n, g) bits = tanh(fc(x)) >= 0 with BN on its running statistics, chunk size aside."""
    torch.manual_seed(0)
    model = HashNet(12, 8, negative_slope=0.1, dropout=0.0)
    randomise_batch_norms(model, seed=1)
    x = np.random.default_rng(2).normal(size=(10, 12)) * 3
    fc = eval_forward(model, x, slope=0.1)
    assert np.abs(fc).min() > 1e-4  # no bit so close to 0 that float32 rounding could flip it
    in_training = copy.deepcopy(model).train()  # a copy: a training-mode pass updates the running statistics
    with torch.no_grad():  # premise: batch statistics would give other bits, so the test sees the BN mode
        assert not np.array_equal(np.tanh(in_training(torch.from_numpy(x).float()).numpy()) >= 0, fc >= 0)
    model.train()
    for batch_size in (4096, 3):
        codes = model.codes(x, batch_size=batch_size)
        assert codes.dtype == bool
        assert codes.shape == (10, 8)
        np.testing.assert_array_equal(codes, np.tanh(fc) >= 0)


def test_encode_zero_output_gives_bit_one():
    """fc exactly 0 (last BN scaled to zero) gives tanh 0 and bit 1 everywhere (Eq. 19 at zero)."""
    torch.manual_seed(0)
    model = HashNet(5, 9, negative_slope=0.2, dropout=0.0)
    with torch.no_grad():
        model.layers[7].weight.zero_()
        model.layers[7].bias.zero_()
    codes = model.codes(np.random.default_rng(0).normal(size=(6, 5)))
    np.testing.assert_array_equal(codes, np.ones((6, 9), dtype=bool))


def test_encode_empty_input():
    """No items give an empty (0, g) bool array."""
    codes = HashNet(5, 9, negative_slope=0.2, dropout=0.0).codes(np.zeros((0, 5), dtype=np.float32))
    assert codes.shape == (0, 9) and codes.dtype == bool


def test_training_lowers_loss_and_records_each_epoch(trained):
    """Training on digit features lowers the loss; one record per epoch (5 epochs of 4 steps for 20 steps),
    with loss = mu * mse + omega * bce (the paper's loss: the similarity and pull terms recorded, weight 0)."""
    _, history = trained
    params = learner()
    assert [record["epoch"] for record in history] == [1, 2, 3, 4, 5]
    assert [record["step"] for record in history] == [4, 8, 12, 16, 20]
    for record in history:
        assert set(record) == {"epoch", "step", "loss", "mse", "bce", "similarity", "pull"}
        assert record["loss"] == pytest.approx(params.mu * record["mse"] + params.omega * record["bce"], rel=1e-5)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["mse"] < history[0]["mse"]


def test_training_needs_two_items():
    """Batch normalisation cannot train on a single item: a GraphhashError says so."""
    with pytest.raises(GraphhashError, match="at least 2"):
        learner().fit(torch.ones(1, 4), Targets(torch.ones(1, 2), torch.ones(1, 2)))


def test_training_is_seeded(digits, targets, trained):
    """The same params give identical weights and codes; another seed gives different codes."""
    model, history = trained
    again, history_again = learner().fit(digits, targets)
    other, _ = learner(seed=1, steps=EPOCH).fit(digits, targets)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name]), name
    assert history == history_again
    codes = model.codes(digits)
    np.testing.assert_array_equal(codes, again.codes(digits))
    assert not np.array_equal(codes, other.codes(digits))


@pytest.mark.parametrize("epochs", [1, 3])
def test_training_runs_whole_epochs_when_steps_divide(digits, targets, adam_steps, epochs):
    """steps = k epochs' worth (4 batches of 50 each): k records, the last at step = steps, that many Adam steps."""
    _, history = learner(steps=epochs * EPOCH).fit(digits, targets)
    assert [record["step"] for record in history] == [EPOCH * (e + 1) for e in range(epochs)]
    assert history[-1]["step"] == epochs * EPOCH == len(adam_steps)


@pytest.mark.parametrize(("batch_size", "steps", "record_steps"), [(50, 10, [4, 8, 10]), (50, 3, [3]),
                                                                   (64, 7, [3, 6, 7])])  # fmt: skip
def test_training_stops_mid_epoch_where_the_steps_run_out(digits, targets, adam_steps, batch_size, steps,
                                                          record_steps):  # fmt: skip
    """With steps not a multiple of an epoch's batches (200 items: 4 of 50, or 3 of 64 and more), the last epoch
    is partial and Adam steps exactly ``steps`` times in all."""
    _, history = learner(steps=steps, batch_size=batch_size).fit(digits, targets)
    assert len(adam_steps) == steps
    assert [record["step"] for record in history] == record_steps
    assert [record["epoch"] for record in history] == list(range(1, len(record_steps) + 1))


def test_partial_epoch_records_the_mean_over_the_batches_it_stepped_on(digits, targets, monkeypatch):
    """Weights frozen (Adam steps do nothing) and batch norm's running statistics aside, the partial second
    epoch's mse is the mean over the items of its first batch, from the second shuffle of the seeded order."""
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *args, **kwargs: None)
    params = learner(steps=EPOCH + 1)
    model, history = params.fit(digits, targets)
    generator = torch.Generator().manual_seed(params.seed)
    torch.randperm(len(digits), generator=generator)  # the first epoch's order
    batch = torch.randperm(len(digits), generator=generator)[:50]
    model.train()
    with torch.no_grad():
        fc = model(digits[batch]).double().numpy()  # training mode: the batch's own statistics, as in training
    expected = np.mean((fc - targets.fit[batch].double().numpy()) ** 2)
    assert history[-1]["step"] == EPOCH + 1
    assert history[-1]["mse"] == pytest.approx(expected, rel=1e-5)


def test_non_finite_loss_stops_training_naming_the_stage_and_epoch(digits, targets, adam_steps):
    """A representation so large that its squared error overflows float32 makes the first epoch's loss
    non-finite: training stops there, with one line naming the hash stage and epoch 1."""
    huge = targets.fit.clone()
    huge[7, 3] = 1e30
    with pytest.raises(GraphhashError, match=r"^hash: .*\b(inf|nan)\b.* epoch 1\b") as info:
        learner(steps=10 * EPOCH).fit(digits, Targets(huge, targets.reference))
    assert "\n" not in str(info.value)
    assert len(adam_steps) == EPOCH  # one epoch, not the 40 steps asked for


def test_save_load_round_trip(tmp_path):
    """A saved and reloaded HashNet has the same config, state and eval-mode outputs; the .json holds the config."""
    torch.manual_seed(0)
    model = HashNet(7, 5, negative_slope=0.1, dropout=0.0)
    randomise_batch_norms(model, seed=3)
    folder = tmp_path / "models" / "nrdh-gcn-5"
    save_hash_network(folder, model, backbone="resnet")
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert {key: meta[key] for key in ("in_dim", "bits", "hidden", "negative_slope", "backbone")} == {
        "in_dim": 7, "bits": 5, "hidden": [256, 64], "negative_slope": 0.1, "backbone": "resnet"}  # fmt: skip
    loaded, config = load_hash_network(folder)
    assert config["backbone"] == "resnet"
    assert not loaded.training
    assert loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(6, 7)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.pt"]  # no temporary files
    assert sorted(p.name for p in folder.parent.iterdir()) == ["nrdh-gcn-5"]


def write_malicious_checkpoint(folder: Path) -> None:
    """A valid model.json beside a model.pt whose unpickling would run ``_record_execution``."""
    save_hash_network(folder, HashNet(3, 2, negative_slope=0.2, dropout=0.0))
    torch.save({"x": _Payload()}, folder / "model.pt")


def test_load_does_not_run_pickled_code(tmp_path):
    """Loading a checkpoint holding a pickled object refuses it without running its code."""
    folder = tmp_path / "evil"
    write_malicious_checkpoint(folder)
    EXECUTED.clear()
    with pytest.raises(Exception):  # noqa: B017 - the type is checked by the test below
        load_hash_network(folder)
    assert EXECUTED == []


def test_load_pickled_object_is_graphhash_error(tmp_path):
    """Loading a checkpoint holding a pickled object raises a GraphhashError naming the file."""
    folder = tmp_path / "evil"
    write_malicious_checkpoint(folder)
    with pytest.raises(GraphhashError, match="evil"):
        load_hash_network(folder)


def test_load_missing_files(tmp_path):
    """A missing folder, or a folder missing its model.pt, gives a GraphhashError naming the path."""
    folder = tmp_path / "absent"
    with pytest.raises(GraphhashError) as info:
        load_hash_network(folder)
    assert str(folder) in str(info.value)
    save_hash_network(folder, HashNet(3, 2, negative_slope=0.2, dropout=0.0))
    (folder / "model.pt").unlink()
    with pytest.raises(GraphhashError) as info:
        load_hash_network(folder)
    assert str(folder / "model.pt") in str(info.value)


def test_load_refuses_another_kind_of_model(tmp_path):
    """A model folder of another kind (the autoencoder's, say) is refused, naming the hash stage."""
    folder = tmp_path / "gcnae"
    save_model(folder, HashNet(3, 2, negative_slope=0.2, dropout=0.0), "nrdh-graph-autoencoder", {})
    with pytest.raises(GraphhashError, match=r"gcnae: not a nrdh-hashnet or nrdh-hashcnn model .*rerun the hash stage"):
        load_hash_network(folder)


def test_rotated_targets_keep_every_distance_and_centre_the_bits(targets):
    """An orthogonal change of basis after centring: pairwise distances unchanged, every dimension mean 0."""
    skewed = (targets.fit @ torch.randn(BITS, BITS, generator=torch.Generator().manual_seed(2)) + 3.0).numpy()
    rotated = rotated_targets(skewed, seed=0)
    assert rotated.shape == skewed.shape and rotated.dtype == np.float32
    np.testing.assert_allclose(rotated.mean(axis=0), 0.0, atol=1e-4)
    distances = np.linalg.norm(skewed[:, None] - skewed[None], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(rotated[:, None] - rotated[None], axis=-1), distances, rtol=1e-4,
                               atol=1e-3)  # fmt: skip
    # the quantisation error ||sign(V R) - V R||^2 is no larger than for PCA directions alone (R = I)
    centred = skewed - skewed.mean(axis=0)
    pca = centred @ np.linalg.eigh(np.cov(centred, rowvar=False))[1]
    assert ((np.sign(rotated) - rotated) ** 2).sum() <= ((np.sign(pca) - pca) ** 2).sum()
    np.testing.assert_array_equal(rotated, rotated_targets(skewed, seed=0))


def test_rotated_targets_of_a_wider_representation_span_its_principal_directions():
    """``represent.latent`` wider than the code: the targets are the centred representations projected on their
    ``bits`` leading principal directions (a dense eigendecomposition of the covariance), then rotated, so
    their Gram matrix is that of the projection."""
    rng = np.random.default_rng(3)
    wide = rng.standard_normal((300, 24)) @ np.diag(np.linspace(3.0, 0.1, 24)) + 1.5
    rotated = rotated_targets(wide.astype(np.float32), seed=0, bits=8)
    assert rotated.shape == (300, 8) and rotated.dtype == np.float32
    centred = wide - wide.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    projected = centred @ vectors[:, -8:]  # the 8 leading directions
    np.testing.assert_allclose(rotated @ rotated.T, projected @ projected.T, rtol=1e-3, atol=1e-3)
