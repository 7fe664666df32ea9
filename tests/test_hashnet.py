"""Stage 2 of NRDH: the hash-function network (Eqs. 9-19, Table 2), its loss, codes and checkpoints."""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from graphhash.errors import GraphhashError
from graphhash.hashnet import (
    HashNet,
    HashNetConfig,
    encode,
    hash_loss,
    load_hashnet,
    rotated_targets,
    save_hashnet,
    train_hashnet,
)

BITS = 16
EXECUTED: list[str] = []  # filled only if unpickling a checkpoint runs code


def _record_execution(message: str) -> None:
    EXECUTED.append(message)


class _Payload:
    """Unpickling this object calls ``_record_execution``: a stand-in for a malicious checkpoint."""

    def __reduce__(self):
        return (_record_execution, ("payload ran",))


def hash_params(**overrides) -> SimpleNamespace:
    """The ``hash`` params, shrunk so that a training run takes well under a second."""
    values = {"mu": 0.8, "omega": 0.2, "epochs": 5, "batch_size": 50, "lr": 1e-3, "negative_slope": 0.2, "seed": 0,
              "input": "features", "input_p": 0.3, "target": "representation"}  # fmt: skip
    return SimpleNamespace(**(values | overrides))


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
def targets(digits) -> torch.Tensor:
    """Random node representations of the right shape (N, g)."""
    return torch.randn(len(digits), BITS, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def trained(digits, targets):
    return train_hashnet(digits, targets, hash_params())


def test_architecture_follows_table_2():
    """Linear in->256, LeakyReLU, BN, Linear 256->64, LeakyReLU, BN, Linear 64->g, BN; fc has no tanh."""
    model = HashNet(HashNetConfig(in_dim=2048, bits=32, negative_slope=0.3))
    kinds = [type(m) for m in model.layers]
    assert kinds == [nn.Linear, nn.LeakyReLU, nn.BatchNorm1d] * 2 + [nn.Linear, nn.BatchNorm1d]
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(2048, 256), (256, 64), (64, 32)]
    assert [m.num_features for m in model.layers if isinstance(m, nn.BatchNorm1d)] == [256, 64, 32]
    assert [m.negative_slope for m in model.layers if isinstance(m, nn.LeakyReLU)] == [0.3, 0.3]
    assert HashNetConfig(in_dim=1, bits=1).hidden == (256, 64)


def test_hash_loss_terms_match_numpy():
    """MSE is the element mean; BCE is of (tanh(fc)+1)/2 against b = [tanh(fc) >= 0]; total = mu*mse + omega*bce."""
    rng = np.random.default_rng(0)
    fc_np, target_np = rng.normal(size=(5, 6)), rng.normal(size=(5, 6))
    mu, omega = 0.8, 0.2
    mse = np.mean((fc_np - target_np) ** 2)
    prob = (np.tanh(fc_np) + 1) / 2
    b = (np.tanh(fc_np) >= 0).astype(float)
    bce = -np.mean(b * np.log(prob) + (1 - b) * np.log(1 - prob))
    terms = hash_loss(torch.from_numpy(fc_np), torch.from_numpy(target_np), mu, omega)
    assert terms["mse"].item() == pytest.approx(mse, rel=1e-10)
    assert terms["bce"].item() == pytest.approx(bce, rel=1e-10)
    assert terms["loss"].item() == pytest.approx(mu * mse + omega * bce, rel=1e-10)


def test_hash_loss_gradient_treats_targets_as_constants():
    """d bce / d fc = 2 (sigmoid(2 fc) - b) / numel with b fixed, and b = 1 at fc = 0 (Eq. 19's rule)."""
    rng = np.random.default_rng(1)
    fc_np = rng.normal(size=(4, 3))
    fc_np[1, 2] = 0.0
    target_np = rng.normal(size=(4, 3))
    b = (fc_np >= 0).astype(float)
    assert b[1, 2] == 1.0
    sigmoid = 1 / (1 + np.exp(-2 * fc_np))
    bce_grad = 2 * (sigmoid - b) / fc_np.size
    mu, omega = 0.7, 0.3

    fc = torch.tensor(fc_np, requires_grad=True)
    hash_loss(fc, torch.from_numpy(target_np), mu, omega)["bce"].backward()
    np.testing.assert_allclose(fc.grad.numpy(), bce_grad, rtol=1e-10, atol=1e-12)

    fc = torch.tensor(fc_np, requires_grad=True)
    hash_loss(fc, torch.from_numpy(target_np), mu, omega)["loss"].backward()
    mse_grad = 2 * (fc_np - target_np) / fc_np.size
    np.testing.assert_allclose(fc.grad.numpy(), mu * mse_grad + omega * bce_grad, rtol=1e-10, atol=1e-12)


def test_encode_matches_manual_eval_forward():
    """encode gives bool (n, g) bits = tanh(fc(x)) >= 0 with BN on its running statistics, chunk size aside."""
    torch.manual_seed(0)
    model = HashNet(HashNetConfig(in_dim=12, bits=8, negative_slope=0.1))
    randomise_batch_norms(model, seed=1)
    x = np.random.default_rng(2).normal(size=(10, 12)) * 3
    fc = eval_forward(model, x, slope=0.1)
    assert np.abs(fc).min() > 1e-4  # no bit so close to 0 that float32 rounding could flip it
    in_training = copy.deepcopy(model).train()  # a copy: a training-mode pass updates the running statistics
    with torch.no_grad():  # premise: batch statistics would give other bits, so the test sees the BN mode
        assert not np.array_equal(np.tanh(in_training(torch.from_numpy(x).float()).numpy()) >= 0, fc >= 0)
    model.train()
    for batch_size in (4096, 3):
        codes = encode(model, x, batch_size=batch_size)
        assert codes.dtype == bool
        assert codes.shape == (10, 8)
        np.testing.assert_array_equal(codes, np.tanh(fc) >= 0)


def test_encode_zero_output_gives_bit_one():
    """fc exactly 0 (last BN scaled to zero) gives tanh 0 and bit 1 everywhere (Eq. 19 at zero)."""
    torch.manual_seed(0)
    model = HashNet(HashNetConfig(in_dim=5, bits=9))
    with torch.no_grad():
        model.layers[7].weight.zero_()
        model.layers[7].bias.zero_()
    codes = encode(model, np.random.default_rng(0).normal(size=(6, 5)))
    np.testing.assert_array_equal(codes, np.ones((6, 9), dtype=bool))


def test_encode_empty_input():
    """No items give an empty (0, g) bool array."""
    codes = encode(HashNet(HashNetConfig(in_dim=5, bits=9)), np.zeros((0, 5), dtype=np.float32))
    assert codes.shape == (0, 9) and codes.dtype == bool


def test_training_lowers_loss_and_records_each_epoch(trained):
    """Training on digit features lowers the loss; one record per epoch with loss = mu*mse + omega*bce."""
    _, history = trained
    params = hash_params()
    assert [record["epoch"] for record in history] == list(range(1, params.epochs + 1))
    for record in history:
        assert set(record) == {"epoch", "loss", "mse", "bce"}
        assert record["loss"] == pytest.approx(params.mu * record["mse"] + params.omega * record["bce"], rel=1e-5)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["mse"] < history[0]["mse"]


def test_training_needs_two_items():
    """Batch normalisation cannot train on a single item: a GraphhashError says so."""
    with pytest.raises(GraphhashError, match="at least 2"):
        train_hashnet(torch.ones(1, 4), torch.ones(1, 2), hash_params())


def test_training_is_seeded(digits, targets, trained):
    """The same seed gives identical codes; another seed gives different codes."""
    model, _ = trained
    again, _ = train_hashnet(digits, targets, hash_params())
    other, _ = train_hashnet(digits, targets, hash_params(seed=1, epochs=1))
    codes = encode(model, digits)
    np.testing.assert_array_equal(codes, encode(again, digits))
    assert not np.array_equal(codes, encode(other, digits))


def test_save_load_round_trip(tmp_path):
    """A saved and reloaded HashNet has the same config, state and eval-mode outputs; the .json holds the config."""
    torch.manual_seed(0)
    model = HashNet(HashNetConfig(in_dim=7, bits=5, negative_slope=0.1))
    randomise_batch_norms(model, seed=3)
    stem = tmp_path / "models" / "nrdh-5"
    save_hashnet(model, stem, extra={"backbone": "resnet"})
    meta = json.loads(stem.with_suffix(".json").read_text(encoding="utf-8"))
    assert {key: meta[key] for key in ("in_dim", "bits", "hidden", "negative_slope", "backbone")} == {
        "in_dim": 7, "bits": 5, "hidden": [256, 64], "negative_slope": 0.1, "backbone": "resnet"}  # fmt: skip
    loaded = load_hashnet(stem)
    assert not loaded.training
    assert loaded.config == model.config
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name])
    x = torch.from_numpy(np.random.default_rng(4).normal(size=(6, 7)).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert sorted(p.name for p in stem.parent.iterdir()) == ["nrdh-5.json", "nrdh-5.pt"]  # no temporary files


def write_malicious_checkpoint(stem) -> None:
    """A valid .json beside a .pt whose unpickling would run ``_record_execution``."""
    save_hashnet(HashNet(HashNetConfig(in_dim=3, bits=2)), stem)
    torch.save({"x": _Payload()}, stem.with_suffix(".pt"))


def test_load_does_not_run_pickled_code(tmp_path):
    """Loading a checkpoint holding a pickled object refuses it without running its code."""
    stem = tmp_path / "evil"
    write_malicious_checkpoint(stem)
    EXECUTED.clear()
    with pytest.raises(Exception):  # noqa: B017 - the type is checked by the test below
        load_hashnet(stem)
    assert EXECUTED == []


def test_load_pickled_object_is_graphhash_error(tmp_path):
    """Loading a checkpoint holding a pickled object raises a GraphhashError naming the file."""
    stem = tmp_path / "evil"
    write_malicious_checkpoint(stem)
    with pytest.raises(GraphhashError, match="evil"):
        load_hashnet(stem)


def test_load_missing_files(tmp_path):
    """A missing .json or a missing .pt gives a GraphhashError naming the path."""
    stem = tmp_path / "absent"
    with pytest.raises(GraphhashError) as info:
        load_hashnet(stem)
    assert str(stem) in str(info.value)
    save_hashnet(HashNet(HashNetConfig(in_dim=3, bits=2)), stem)
    stem.with_suffix(".pt").unlink()
    with pytest.raises(GraphhashError) as info:
        load_hashnet(stem)
    assert str(stem) in str(info.value)


def test_rotated_targets_keep_every_distance_and_centre_the_bits(targets):
    """An orthogonal change of basis after centring: pairwise distances unchanged, every dimension mean 0."""
    skewed = (targets @ torch.randn(BITS, BITS, generator=torch.Generator().manual_seed(2)) + 3.0).numpy()
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
