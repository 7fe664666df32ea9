"""params.yaml schema: load_params / validate report every bad key, one line each, naming it."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from graphhash.errors import GraphhashError
from graphhash.params import SCHEMA, load_params, validate, with_filter

VALID = {
    "prepare": {
        "source": "folder",
        "path": "/data/images",
        "seed": 7,
        "split": "random",
        "query_size": 0.25,
        "train": "disjoint",
        "train_size": 3,
        "limit_per_class": 10,
    },
    "extract": {
        "backbone": "vit_b_16",
        "weights": "none",
        "weights_path": "",
        "image_size": 224,
        "batch_size": 16,
        "num_workers": 0,
        "device": "cpu",
        "on_bad_image": "skip",
    },
    "represent": {
        "filters": ["gcn", "spline"],
        "graph": "knn",
        "gcn_propagation": "kipf",
        "cheby_order": 4,
        "lanczos_steps": 5,
        "spectral_basis": "poly",
        "spectral_knots": 3,
        "batch_nodes": 10,
        "rho": 0.4,
        "p": 0.8,
        "hidden": 64,
        "alpha": 0.999,
        "beta": 0.001,
        "epochs": 2,
        "lr": 0.001,
        "graphs_per_step": 1,
        "seed": 0,
    },
}


def write_params(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def with_changes(**changes) -> dict:
    """A copy of VALID with ``section__key=value`` entries set (value ``...`` deletes the key)."""
    params = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        section, key = dotted.split("__")
        if value is ...:
            del params[section][key]
        else:
            params[section][key] = value
    return params


def error_lines(tmp_path: Path, params: dict, *sections: str) -> list[str]:
    path = write_params(tmp_path, params)
    with pytest.raises(GraphhashError) as info:
        load_params(path, *(sections or ("prepare", "extract")))
    return str(info.value).splitlines()


def test_valid_file_loads_as_attributes(tmp_path):
    """A valid file passes, and every value comes back unchanged as params.<section>.<key>."""
    params = load_params(write_params(tmp_path, VALID), *VALID)
    for section, values in VALID.items():
        assert vars(getattr(params, section)) == values
    assert params.extract.image_size == 224
    assert params.prepare.query_size == 0.25


def test_only_requested_sections_are_validated_and_returned(tmp_path):
    """A stage that reads 'prepare' is not stopped by a bad 'extract' section, and gets no 'extract'."""
    params = load_params(write_params(tmp_path, with_changes(extract__image_size="big")), "prepare")
    assert params.prepare.seed == 7
    assert not hasattr(params, "extract")


def test_misspelled_key_names_it_with_a_hint(tmp_path):
    """A misspelled key gives a line naming section.key with a did-you-mean hint, and the real key is missing."""
    params = copy.deepcopy(VALID)
    params["extract"]["imgae_size"] = params["extract"].pop("image_size")
    lines = error_lines(tmp_path, params)
    unknown = [line for line in lines if "extract.imgae_size" in line]
    assert len(unknown) == 1
    assert "did you mean 'image_size'" in unknown[0]
    assert any("extract.image_size" in line and "missing" in line for line in lines)


def test_missing_key_is_named(tmp_path):
    """Dropping a key gives exactly one line, naming it as missing."""
    lines = error_lines(tmp_path, with_changes(prepare__seed=...))
    assert len(lines) == 1
    assert "prepare.seed" in lines[0] and "missing" in lines[0]


def test_missing_section_is_named(tmp_path):
    """A section that is absent is reported by name."""
    params = copy.deepcopy(VALID)
    del params["extract"]
    lines = error_lines(tmp_path, params)
    assert len(lines) == 1 and "'extract'" in lines[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("extract__image_size", "160"),  # a string for an int
        ("extract__batch_size", True),  # YAML true is a bool, not the int 1
        ("prepare__seed", 1.5),  # a float for an int
        ("prepare__query_size", False),  # a bool for a size
        ("prepare__path", 3),  # an int for a string
        ("extract__num_workers", 2.0),  # a float for a count
    ],
)
def test_wrong_type_is_named(tmp_path, key, value):
    """A value of the wrong type (bools never count as numbers) gives one line naming the key."""
    lines = error_lines(tmp_path, with_changes(**{key: value}))
    assert len(lines) == 1
    assert key.replace("__", ".") in lines[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("extract__image_size", 31),
        ("extract__image_size", 1025),
        ("extract__batch_size", 0),
        ("extract__num_workers", -1),
        ("prepare__seed", -1),
        ("prepare__limit_per_class", -5),
    ],
)
def test_out_of_range_is_named(tmp_path, key, value):
    """A number outside the key's range gives one line naming the key."""
    lines = error_lines(tmp_path, with_changes(**{key: value}))
    assert len(lines) == 1
    assert key.replace("__", ".") in lines[0]


@pytest.mark.parametrize("value", [0, 64, "auto"])
def test_num_workers_is_a_count_or_auto(tmp_path, value):
    params = load_params(write_params(tmp_path, with_changes(extract__num_workers=value)), "extract")
    assert params.extract.num_workers == value


@pytest.mark.parametrize("value", [32, 1024])
def test_range_bounds_are_inclusive(tmp_path, value):
    """The ends of image_size's range [32, 1024] are accepted."""
    params = load_params(write_params(tmp_path, with_changes(extract__image_size=value)), "extract")
    assert params.extract.image_size == value


@pytest.mark.parametrize(
    ("key", "value", "choices"),
    [
        ("extract__device", "gpu", ["auto", "cpu", "cuda"]),
        ("extract__backbone", "resnet50", ["efficientnet_lite0", "vit_b_16"]),
        ("prepare__train", "both", ["database", "disjoint"]),
        ("extract__num_workers", "many", ["auto"]),  # a count or the word auto
    ],
)
def test_value_not_among_choices_is_named(tmp_path, key, value, choices):
    """A value outside the allowed choices gives one line naming the key and listing the choices."""
    lines = error_lines(tmp_path, with_changes(**{key: value}))
    assert len(lines) == 1
    assert key.replace("__", ".") in lines[0]
    assert all(choice in lines[0] for choice in choices)


def test_several_bad_keys_give_one_line_each(tmp_path):
    """Four independent problems in two sections give four lines, each naming its key."""
    lines = error_lines(
        tmp_path,
        with_changes(extract__device="gpu", extract__batch_size="64", prepare__seed=..., prepare__limit_per_class=-1),
    )
    assert len(lines) == 4
    for key in ("extract.device", "extract.batch_size", "prepare.seed", "prepare.limit_per_class"):
        assert sum(key in line for line in lines) == 1, key


@pytest.mark.parametrize("value", [0, 1.5, -0.2, 1.0, 0.0])
def test_bad_query_size_is_rejected(tmp_path, value):
    """A size is a count >= 1 or a fraction strictly inside (0, 1); anything else names prepare.query_size."""
    lines = error_lines(tmp_path, with_changes(prepare__query_size=value), "prepare")
    assert lines and all("prepare.query_size" in line for line in lines)


def test_negative_size_is_reported_once(tmp_path):
    """Each bad key is reported on one line, as the module promises, also for a negative fraction."""
    lines = error_lines(tmp_path, with_changes(prepare__query_size=-0.2), "prepare")
    assert len(lines) == 1


@pytest.mark.parametrize("value", [0.25, 5, 1])
def test_good_query_size_is_accepted(tmp_path, value):
    """Counts >= 1 and fractions in (0, 1) are valid sizes."""
    params = load_params(write_params(tmp_path, with_changes(prepare__query_size=value)), "prepare")
    assert params.prepare.query_size == value


@pytest.mark.parametrize("value", [0, 2.0])
def test_bad_train_size_is_rejected(tmp_path, value):
    """train_size follows the same size rule as query_size."""
    lines = error_lines(tmp_path, with_changes(prepare__train_size=value), "prepare")
    assert lines and all("prepare.train_size" in line for line in lines)


@pytest.mark.parametrize("source", ["folder", "cifar10", "npy"])
def test_empty_path_rejected_for_sources_that_read_one(tmp_path, source):
    """Sources that read files need prepare.path; an empty one gives one line naming it."""
    lines = error_lines(tmp_path, with_changes(prepare__source=source, prepare__path=""), "prepare")
    assert len(lines) == 1 and "prepare.path" in lines[0]


def test_empty_path_accepted_for_digits(tmp_path):
    """The bundled digits need no path."""
    params = load_params(write_params(tmp_path, with_changes(prepare__source="digits", prepare__path="")), "prepare")
    assert params.prepare.source == "digits"


@pytest.mark.parametrize("text", ["prepare: [unclosed\n  seed: 1\n", "prepare:\n\tseed: 1\n", "a: b: c\n"])
def test_invalid_yaml_gives_one_line_naming_the_file(tmp_path, text):
    """YAML that does not parse gives a single-line error naming the file."""
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GraphhashError) as info:
        load_params(path, "prepare")
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_unreadable_file_gives_one_line_naming_it(tmp_path):
    """A missing file (or a folder) gives a single-line error naming it."""
    for path in (tmp_path / "nope.yaml", tmp_path):
        with pytest.raises(GraphhashError) as info:
            load_params(path, "prepare")
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_non_mapping_file_is_rejected(tmp_path):
    """A YAML list instead of a mapping of sections is an error naming the file."""
    path = tmp_path / "list.yaml"
    path.write_text("- prepare\n- extract\n", encoding="utf-8")
    with pytest.raises(GraphhashError, match=r"list\.yaml"):
        load_params(path, "prepare")


def test_validate_names_the_origin():
    """validate() prefixes each line with the origin it is given."""
    with pytest.raises(GraphhashError) as info:
        validate(with_changes(prepare__seed="x"), ["prepare"], origin="exp.yaml")
    assert str(info.value).startswith("exp.yaml: prepare.seed")


def test_represent_filters_must_be_known_and_distinct():
    for bad in ([], ["gcn", "gcn"], ["gcn", "chebby"], "gcn"):
        with pytest.raises(GraphhashError, match=r"represent\.filters"):
            validate(with_changes(represent__filters=bad), ["represent"])
    validate(with_changes(represent__filters=["none", "fourier"]), ["represent"])


def test_cubic_b_splines_need_four_knots_polynomials_one():
    with pytest.raises(GraphhashError, match=r"represent\.spectral_knots: 3 is too few for cubic B-splines"):
        validate(with_changes(represent__spectral_basis="bspline", represent__spectral_knots=3), ["represent"])
    validate(with_changes(represent__spectral_basis="poly", represent__spectral_knots=1), ["represent"])


def test_with_filter_sets_the_stage_filter_and_refuses_an_unlisted_one():
    params = load_params(REPO / "params.yaml", "represent").represent
    assert with_filter(params, "cheby").filter == "cheby"
    with pytest.raises(GraphhashError, match=r"represent\.filters: 'none' is not listed"):
        with_filter(params, "none")


# Keys of other sections a stage also tracks: the matrix keys name evaluate's code files; hash builds its kNN
# graph inputs with represent's rho and batch_nodes; neighbours finds batch_nodes - 1 neighbours.
BORROWED = {
    "evaluate": ["represent.filters", "hash.bits"],
    "hash": ["represent.rho", "represent.batch_nodes"],
    "neighbours": ["represent.batch_nodes"],
}


@pytest.mark.parametrize("stage", ["prepare", "extract", "neighbours", "represent", "hash", "baselines", "evaluate"])
def test_dvc_yaml_params_match_the_schema(stage):
    """dvc.yaml tracks exactly the schema's keys for each stage, so a param change reruns that stage.

    The exceptions are the matrix keys: hash.bits and represent.filters make one represent and one hash stage
    per filter and code length (a stage's own filter and length are in its command); and the BORROWED keys.
    """
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
    tracked = dvc["stages"][stage]["params"]
    matrix_keys = {("hash", "bits"), ("represent", "filters")}
    assert len(tracked) == len(set(tracked))
    own = [f"{stage}.{key}" for key in SCHEMA.get(stage, {}) if (stage, key) not in matrix_keys]
    assert sorted(tracked) == sorted([*own, *BORROWED.get(stage, [])])
    if stage in ("represent", "hash"):
        assert dvc["stages"][stage]["matrix"] == {"filter": "${represent.filters}", "bits": "${hash.bits}"}
    elif "matrix" in dvc["stages"][stage]:
        assert dvc["stages"][stage]["matrix"] == {"bits": "${hash.bits}"}


def test_repository_params_yaml_is_valid():
    """The committed params.yaml passes validation for every section."""
    params = load_params(REPO / "params.yaml", *SCHEMA)
    assert set(vars(params)) == set(SCHEMA)
