"""params.yaml schema (graphhash.params): every bad key reported, one line each, naming ``section.key``; the
committed file written from the schema; dvc.yaml tracking exactly the sections each stage script loads."""

from __future__ import annotations

import ast
import copy
import importlib
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from graphhash.errors import GraphhashError
from graphhash.graphs.filters import FILTERS
from graphhash.hashers import HASHERS
from graphhash.params import load_params, validate
from graphhash.params.all import SECTIONS, check, check_file, defaults, render
from graphhash.params.baselines import BaselinesParams
from graphhash.params.codes import CodesParams
from graphhash.params.extract import ExtractParams
from graphhash.params.hash import HashParams
from graphhash.params.prepare import PrepareParams
from graphhash.params.represent import RepresentParams

VALID = {
    "prepare": {
        "source": "folder",
        "path": "/data/images",
        "seed": 7,
        "split": "random",
        "labels": "labels.tsv",
        "query_size": 0.25,
        "train": "disjoint",
        "train_size": 3,
        "limit_per_class": 10,
        "validation_size": 0.2,
        "synthetic": {"items": 500, "dimension": 32, "classes": 5, "noise": 2.0, "seed": 1},
    },
    "extract": {
        "backbone": "vit_b_16",
        "weights": "none",
        "weights_path": "",
        "image_size": 224,
        "batch_size": 16,
        "num_workers": 0,
        "ranks": 2,
        "oversubscribe": True,
        "device": "cpu",
        "on_bad_image": "skip",
    },
    "codes": {"bits": [12, 48], "filters": ["spline", "gcn"]},
    "represent": {
        "hidden": 32,
        "latent": 0,
        "alpha": 0.5,
        "beta": 0.0,
        "spread": 0.5,
        "steps": 2,
        "lr": 0.01,
        "graphs_per_step": 1,
        "seed": 3,
        "gcn": {"propagation": "kipf", "p": 0.8},
        "cheby": {"order": 4},
        "lanczos": {"steps": 5, "basis": "poly", "knots": 2},
        "spline": {"basis": "poly", "knots": 3},
    },
}

BASELINES = [name for name, cls in HASHERS.items() if not cls.crossmodal]  # the single-modality hashers


def write_params(tmp_path: Path, params: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params), encoding="utf-8")
    return path


def with_changes(**changes) -> dict:
    """A copy of VALID with ``section__key=value`` entries set (``section__sub__key`` for a sub-section; value
    ``...`` deletes the key)."""
    params = copy.deepcopy(VALID)
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = params
        for part in parents:
            target = target[part]
        if value is ...:
            del target[key]
        else:
            target[key] = value
    return params


def error_lines(tmp_path: Path, params: dict, *sections: type) -> list[str]:
    path = write_params(tmp_path, params)
    with pytest.raises(GraphhashError) as info:
        load_params(*(sections or (PrepareParams, ExtractParams)), path=path)
    return str(info.value).splitlines()


def check_lines(raw: dict) -> list[str]:
    with pytest.raises(GraphhashError) as info:
        check(raw)
    return str(info.value).splitlines()


# ---------------------------------------------------------------- loading


def test_valid_file_loads_as_typed_sections(tmp_path):
    """A valid file passes, and every value comes back unchanged, in the order the sections are asked for."""
    path = write_params(tmp_path, VALID)
    extract, prepare, codes, represent = load_params(ExtractParams, PrepareParams, CodesParams, RepresentParams,
                                                     path=path)  # fmt: skip
    for section in (extract, prepare, codes, represent):
        assert section.model_dump() == VALID[section.section]
    assert extract.image_size == 224 and prepare.query_size == 0.25
    assert represent.gcn.propagation == "kipf" and represent.options("gcn") == {"propagation": "kipf", "p": 0.8}
    assert represent.options("fourier") == {}  # a filter without hyperparameters has no sub-section
    with pytest.raises(Exception, match="frozen"):
        extract.image_size = 32  # type: ignore[misc]


def test_only_requested_sections_are_validated_and_returned(tmp_path):
    """A stage that reads 'prepare' is not stopped by a bad 'extract' section, and gets no 'extract'."""
    loaded = load_params(PrepareParams, path=write_params(tmp_path, with_changes(extract__image_size="big")))
    assert len(loaded) == 1 and loaded[0].seed == 7


def test_omitted_keys_take_their_defaults(tmp_path):
    params = with_changes(prepare__seed=..., represent__gcn=..., represent__cheby__order=...)
    prepare, represent = load_params(PrepareParams, RepresentParams, path=write_params(tmp_path, params))
    assert prepare.seed == PrepareParams.model_fields["seed"].default == 0
    assert represent.gcn.model_dump() == {"propagation": "nrdh", "p": 0.3}
    assert represent.cheby.order == 3
    assert represent.spline.knots == 3  # the keys given are kept


def test_misspelled_key_is_one_line_with_a_hint(tmp_path):
    """A misspelled key gives one line naming section.key with a did-you-mean hint (the real key, left out,
    takes its default)."""
    params = copy.deepcopy(VALID)
    params["extract"]["imgae_size"] = params["extract"].pop("image_size")
    lines = error_lines(tmp_path, params)
    assert lines == [f"{tmp_path / 'params.yaml'}: extract.imgae_size: unknown key (did you mean 'image_size'?)"]


def test_unknown_key_without_a_close_match_has_no_hint(tmp_path):
    lines = error_lines(tmp_path, with_changes(extract__zzz=1))
    assert len(lines) == 1 and "extract.zzz: unknown key" in lines[0] and "did you mean" not in lines[0]


def test_nested_unknown_key_names_its_full_path(tmp_path):
    lines = error_lines(tmp_path, with_changes(represent__gcn__pp=0.5), RepresentParams)
    assert len(lines) == 1
    assert "represent.gcn.pp: unknown key (did you mean 'p'?)" in lines[0]


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
    [("represent__steps", True), ("represent__hidden", False), ("represent__cheby__order", True)],
)
def test_a_bool_for_an_int_key_is_refused(tmp_path, key, value):
    lines = error_lines(tmp_path, with_changes(**{key: value}), RepresentParams)
    assert len(lines) == 1
    assert f"{key.replace('__', '.')}: Input should be a valid integer (got {value!r})" in lines[0]


@pytest.mark.parametrize("section", [RepresentParams, HashParams])
def test_a_learning_rate_in_scientific_notation_loads_as_a_float(tmp_path, section):
    """YAML reads ``1e-3`` (no dot) as a string; a float key takes it as the number it spells."""
    raw = yaml.safe_load(f"{section.section}:\n  lr: 1e-3\n  {'alpha' if section is RepresentParams else 'mu'}: 1\n")
    assert raw[section.section]["lr"] == "1e-3"  # what YAML gives
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    (loaded,) = load_params(section, path=path)
    assert loaded.lr == 0.001 and type(loaded.lr) is float
    assert type(loaded.model_dump()["alpha" if section is RepresentParams else "mu"]) is float  # an int is widened
    raw[section.section]["lr"] = "fast"  # a string that is no number is still refused
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(GraphhashError, match=rf"^{re.escape(str(path))}: {section.section}\.lr: .*number"):
        load_params(section, path=path)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("extract__image_size", 31),
        ("extract__image_size", 1025),
        ("extract__batch_size", 0),
        ("extract__num_workers", -1),
        ("prepare__seed", -1),
        ("prepare__limit_per_class", -5),
        ("prepare__validation_size", -1),
        ("prepare__validation_size", 1.0),
        ("prepare__validation_size", 0.0),
    ],
)
def test_out_of_range_is_named(tmp_path, key, value):
    """A number outside the key's range gives one line naming the key."""
    lines = error_lines(tmp_path, with_changes(**{key: value}))
    assert len(lines) == 1
    assert key.replace("__", ".") in lines[0]


@pytest.mark.parametrize("value", [0, 64, "auto"])
def test_num_workers_is_a_count_or_auto(tmp_path, value):
    (extract,) = load_params(ExtractParams, path=write_params(tmp_path, with_changes(extract__num_workers=value)))
    assert extract.num_workers == value


@pytest.mark.parametrize("value", [32, 1024])
def test_range_bounds_are_inclusive(tmp_path, value):
    """The ends of image_size's range [32, 1024] are accepted."""
    (extract,) = load_params(ExtractParams, path=write_params(tmp_path, with_changes(extract__image_size=value)))
    assert extract.image_size == value


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
        with_changes(extract__device="gpu", extract__batch_size="64", prepare__seed="x", prepare__limit_per_class=-1),
    )
    assert len(lines) == 4
    for key in ("extract.device", "extract.batch_size", "prepare.seed", "prepare.limit_per_class"):
        assert sum(key in line for line in lines) == 1, key


@pytest.mark.parametrize("value", [0, 1.5, -0.2, 1.0, 0.0])
def test_bad_query_size_is_rejected_in_one_line(tmp_path, value):
    """A size is a count >= 1 or a fraction strictly inside (0, 1); anything else is one line naming it."""
    lines = error_lines(tmp_path, with_changes(prepare__query_size=value), PrepareParams)
    assert len(lines) == 1 and "prepare.query_size" in lines[0]


@pytest.mark.parametrize("value", [0.25, 5, 1])
def test_good_query_size_is_accepted(tmp_path, value):
    """Counts >= 1 and fractions in (0, 1) are valid sizes."""
    (prepare,) = load_params(PrepareParams, path=write_params(tmp_path, with_changes(prepare__query_size=value)))
    assert prepare.query_size == value and type(prepare.query_size) is type(value)


@pytest.mark.parametrize("value", [0, 2.0])
def test_bad_train_size_is_rejected(tmp_path, value):
    """train_size follows the same size rule as query_size."""
    lines = error_lines(tmp_path, with_changes(prepare__train_size=value), PrepareParams)
    assert lines and all("prepare.train_size" in line for line in lines)


@pytest.mark.parametrize("source", ["folder", "cifar10", "npy"])
def test_empty_path_rejected_for_sources_that_read_one(tmp_path, source):
    """Sources that read files need prepare.path; an empty one gives one line naming it."""
    lines = error_lines(tmp_path, with_changes(prepare__source=source, prepare__path=""), PrepareParams)
    assert len(lines) == 1 and "prepare.path" in lines[0]


@pytest.mark.parametrize("source", ["digits", "synthetic"])
def test_empty_path_accepted_for_digits_and_synthetic(tmp_path, source):
    """The bundled digits and the generated mixture need no path."""
    path = write_params(tmp_path, with_changes(prepare__source=source, prepare__path=""))
    (prepare,) = load_params(PrepareParams, path=path)
    assert prepare.source == source


@pytest.mark.parametrize("text", ["prepare: [unclosed\n  seed: 1\n", "prepare:\n\tseed: 1\n", "a: b: c\n"])
def test_invalid_yaml_gives_one_line_naming_the_file(tmp_path, text):
    """YAML that does not parse gives a single-line error naming the file."""
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(GraphhashError) as info:
        load_params(PrepareParams, path=path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message


def test_unreadable_file_gives_one_line_naming_it(tmp_path):
    """A missing file (or a folder) gives a single-line error naming it."""
    for path in (tmp_path / "nope.yaml", tmp_path):
        with pytest.raises(GraphhashError) as info:
            load_params(PrepareParams, path=path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_non_mapping_file_is_rejected(tmp_path):
    """A YAML list instead of a mapping of sections is an error naming the file."""
    path = tmp_path / "list.yaml"
    path.write_text("- prepare\n- extract\n", encoding="utf-8")
    with pytest.raises(GraphhashError, match=r"list\.yaml"):
        load_params(PrepareParams, path=path)


def test_validate_names_the_origin():
    """validate() prefixes each line with the origin it is given."""
    with pytest.raises(GraphhashError) as info:
        validate(with_changes(prepare__seed="x"), (PrepareParams,), origin="exp.yaml")
    assert str(info.value).startswith("exp.yaml: prepare.seed")


def test_codes_filters_and_bits_must_be_known_and_distinct():
    for bad in ([], ["gcn", "gcn"], ["gcn", "chebby"], "gcn"):
        with pytest.raises(GraphhashError, match=r"codes\.filters"):
            validate(with_changes(codes__filters=bad), (CodesParams,))
    for bad in ([], [16, 16], [0], [True], ["16"]):
        with pytest.raises(GraphhashError, match=r"codes\.bits"):
            validate(with_changes(codes__bits=bad), (CodesParams,))
    (codes,) = validate(with_changes(codes__filters=["none", "fourier"]), (CodesParams,))
    assert codes.filters == ["none", "fourier"]


def test_baselines_methods_must_be_registered_and_itq_iterations_in_range():
    base = defaults()
    for bad in ({"methods": ["itqq"]}, {"methods": []}, {"itq": {"iterations": 0}}, {"itq": {"iterations": 1.0}}):
        with pytest.raises(GraphhashError, match=r"baselines\.(methods|itq\.iterations)"):
            validate({"baselines": {**base["baselines"], **bad}}, (BaselinesParams,))
    (params,) = validate({"baselines": {"methods": ["sh", "lsh"], "itq": {"iterations": 7}}}, (BaselinesParams,))
    assert params.methods == ["sh", "lsh"] and params.options("itq") == {"iterations": 7}
    assert params.options("lsh") == {}


@pytest.mark.parametrize("filter_name", ["spline", "lanczos"])
def test_cubic_b_splines_need_four_knots_polynomials_one(filter_name):
    bspline = with_changes(**{f"represent__{filter_name}__basis": "bspline", f"represent__{filter_name}__knots": 3})
    lines = check_lines({**defaults(), "represent": bspline["represent"]})
    assert lines == [f"params.yaml: represent.{filter_name}.knots: 3 is too few for cubic B-splines: must be >= 4"]
    poly = with_changes(**{f"represent__{filter_name}__basis": "poly", f"represent__{filter_name}__knots": 1})
    (represent,) = validate(poly, (RepresentParams,))
    assert represent.options(filter_name)["knots"] == 1


def test_unknown_and_missing_sections_of_the_whole_file():
    raw = defaults()
    raw["hsah"] = raw.pop("hash")
    lines = check_lines(raw)
    assert "params.yaml: hsah: unknown section (did you mean 'hash'?)" in lines
    assert "params.yaml: section 'hash' is missing or not a mapping" in lines
    assert len(lines) == 2


# ---------------------------------------------------------------- the committed file is the schema's defaults


def test_params_yaml_is_written_from_the_schema_defaults():
    assert (REPO / "params.yaml").read_bytes() == render(defaults()).encode("utf-8")


def test_every_section_defaults_validate_and_round_trip():
    assert [model.section for model in SECTIONS] == list(defaults())
    for model in SECTIONS:
        values = model().model_dump()
        assert model.model_validate(values).model_dump() == values
        assert model.model_validate({}) == model()  # every key has a default
    assert check(defaults()) == defaults()
    assert check_file(REPO / "params.yaml") == defaults()
    assert yaml.safe_load(render(defaults())) == defaults()  # render writes the values it is given


def test_render_writes_other_values_and_describes_every_key():
    values = check({**defaults(), **{name: VALID[name] for name in VALID}})
    text = render(values)
    assert yaml.safe_load(text) == values
    for model in SECTIONS:  # every key of the top level carries its description as a comment
        for key, field in model.model_fields.items():
            if field.description:
                assert re.search(rf"^  {key}: .*  # {re.escape(field.description)}$", text, re.M), (model, key)


def test_schema_choices_come_from_the_registries():
    assert CodesParams.model_fields["filters"].description.endswith(" | ".join(FILTERS))
    assert BaselinesParams.model_fields["methods"].description.startswith(" | ".join(BASELINES))
    (every,) = validate({"baselines": {"methods": list(BASELINES)}}, (BaselinesParams,))
    assert every.methods == list(BASELINES) and set(defaults()["baselines"]["methods"]) < set(BASELINES)
    # the peers preset turns on every registered hasher
    peers = yaml.safe_load((REPO / "presets" / "peers.yaml").read_text(encoding="utf-8"))
    assert peers["baselines"]["methods"] == list(BASELINES)
    assert {name for name in FILTERS if name in RepresentParams.model_fields} == {"gcn", "cheby", "lanczos", "spline"}


# ---------------------------------------------------------------- dvc.yaml against the stage scripts

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))
STAGES = DVC["stages"]


def stage_script(stage: str) -> Path:
    (script,) = re.findall(r"python (stages/\S+\.py)", STAGES[stage]["cmd"])
    return REPO / script


def loaded_sections(script: Path) -> list[str]:
    """The sections a stage script asks ``load_params`` for, in order: each class mapped to its ``.section``."""
    tree = ast.parse(script.read_text(encoding="utf-8"))
    modules = {alias.asname or alias.name: node.module for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) for alias in node.names}  # fmt: skip
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "load_params"
    ]
    assert len(calls) == 1, f"{script.name}: one load_params call expected"
    sections = []
    for arg in calls[0].args:
        assert isinstance(arg, ast.Name), f"{script.name}: load_params takes section classes by name"
        sections.append(getattr(importlib.import_module(modules[arg.id]), arg.id).section)
    return sections


@pytest.mark.parametrize("stage", list(STAGES))
def test_dvc_yaml_tracks_the_sections_the_stage_script_loads(stage):
    """A stage's ``params:`` are the whole sections its script loads, so any change to them reruns it and no
    other change does; except that a stage of the filter matrix tracks ``codes.bits`` alone (tracking its
    own matrix key, codes.filters, would rerun every filter's stages when one filter is added)."""
    expected = loaded_sections(stage_script(stage))
    if STAGES[stage].get("matrix") == {"filter": "${codes.filters}"}:
        expected = ["codes.bits" if section == "codes" else section for section in expected]
    assert STAGES[stage]["params"] == expected


def test_every_section_is_read_by_some_stage():
    tracked = {section.split(".")[0] for stage in STAGES.values() for section in stage["params"]}
    assert tracked == {model.section for model in SECTIONS}


def test_stage_scripts_read_params_only_through_load_params():
    for script in sorted((REPO / "stages").glob("*.py")):
        text = script.read_text(encoding="utf-8")
        assert "params.yaml" not in text and "read_params_file" not in text, script.name
        assert not re.search(r"[\"'](data|models|metrics)/", text), f"{script.name}: a path literal"


def test_matrix_stages_take_their_items_from_the_codes_section():
    matrices = {name: stage["matrix"] for name, stage in STAGES.items() if "matrix" in stage}
    assert matrices == {
        "represent": {"filter": "${codes.filters}"},
        "hash": {"filter": "${codes.filters}"},
        "baselines": {"bits": "${codes.bits}"},
        "index": {"filter": "${codes.filters}", "bits": "${codes.bits}"},
    }


def strings(node) -> list[str]:
    """Every string in a YAML tree, keys included."""
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in (*strings(key), *strings(value))]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return [node] if isinstance(node, str) else []


def test_no_filter_or_baseline_is_named_in_the_plots_or_the_matrix_stages():
    """Changing codes.filters or baselines.methods needs no edit of dvc.yaml: the plots and the matrix stages
    (their code deps aside) name no filter and no baseline."""
    names = set(FILTERS) | set(BASELINES)
    texts = strings(DVC["plots"])
    for stage in STAGES.values():
        if "matrix" in stage:
            texts += strings({key: value for key, value in stage.items() if key != "deps"})
            texts += [dep for dep in stage["deps"] if not dep.startswith(("src/", "stages/"))]
    assert texts
    for text in texts:
        words = set(re.findall(r"[a-z]+", text.lower()))
        assert not words & names, f"{text!r} names {sorted(words & names)}"


def stage_paths(stage: dict) -> list[str]:
    """The data paths of a stage: its non-code deps, outs, metrics and plots."""
    paths = [d for d in stage.get("deps", []) if not d.startswith(("src/", "stages/"))]
    for key in ("outs", "metrics", "plots"):
        paths += [next(iter(entry)) if isinstance(entry, dict) else entry for entry in stage.get(key, [])]
    return paths


def test_every_data_path_of_the_stages_is_named_once_under_vars_paths():
    """No data, models or metrics path literal in ``stages:``; each path is a ``${paths.*}`` (named once, in
    vars.paths) and is handed to the stage on its command line."""
    (variables,) = DVC["vars"]
    paths = variables["paths"]
    assert len(set(paths.values())) == len(paths)
    assert all(re.match(r"^(data|models|metrics)(/|$)", value) for value in paths.values())
    literal = re.compile(r"(^|[\s=:])(data|models|metrics)/")
    for name, stage in STAGES.items():
        for text in strings(stage):
            assert not literal.search(text), f"{name}: path literal in {text!r}"
            for used in re.findall(r"\$\{paths\.(\w+)\}", text):
                assert used in paths, f"{name}: ${{paths.{used}}} is not defined"
        for path in stage_paths(stage):
            assert path.startswith("${paths."), f"{name}: {path!r} is not from vars.paths"
            assert path in stage["cmd"].split() or f" {path} " in f" {stage['cmd']} ", f"{name}: {path} not in cmd"
    for plot in DVC["plots"]:
        assert next(iter(plot)).startswith("${paths.curves}/")
