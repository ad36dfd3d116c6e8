import pytest

from dstlib.config import FIELD_NAMES, HELP, METHOD_OPTIONS, RunSpec


@pytest.mark.parametrize("field,value,fragment", [
    ("method", "magic", "dense, static, set"),
    ("sparsity", 1.0, "[0, 1)"),
    ("epochs", 0, ">= 1"),
    ("epochs", 2.5, "integer"),
    ("optimizer", "adam", "sgd, adamw"),
    ("dataset", "mnist", "fashion_mnist, cifar10"),
    ("lr", "0.1", "number"),
    ("nesterov", "yes", "true or false"),
    ("augmentation", "flip", "none, crop_flip, rrc_flip"),
    ("widths", [10, 0], "positive"),
])
def test_bad_values_give_one_line_naming_field_value_and_choices(field, value, fragment):
    with pytest.raises(ValueError) as e:
        RunSpec(**{"method": "set", field: value})  # a sparse method reads every shared option
    msg = str(e.value)
    shown = repr(tuple(value)) if isinstance(value, list) else repr(value)
    assert "\n" not in msg and msg.startswith(f"{field}={shown} is invalid") and fragment in msg


def test_cross_field_checks():
    with pytest.raises(ValueError, match="warmup_epochs"):
        RunSpec(epochs=2, warmup_epochs=2)
    with pytest.raises(ValueError, match="snapshots"):
        RunSpec(epochs=2, snapshots=(3,))
    with pytest.raises(ValueError, match="initial_density"):
        RunSpec(method="granet_r", sparsity=0.5, initial_density=0.3)


def test_unknown_field_lists_valid_fields():
    with pytest.raises(ValueError, match="unknown spec field 'learning_rate'; valid fields: model"):
        RunSpec.from_dict({"learning_rate": 0.1})


def test_papermill_and_yaml_values_are_coerced():
    spec = RunSpec(lr=1, widths=[64, 32], snapshots=[1], sparsity=0)
    assert spec.lr == 1.0 and isinstance(spec.lr, float)
    assert spec.widths == (64, 32) and spec.snapshots == (1,)
    assert RunSpec.from_dict(spec.to_dict()) == spec


def test_hash_ignores_snapshots_and_options_the_method_does_not_use():
    base = RunSpec(epochs=4)
    assert base.hash() == RunSpec(epochs=4, snapshots=(1, 2)).hash()
    assert base.hash() == RunSpec(epochs=4, prune_rate=0.3, update_interval=7).hash()  # dense ignores them
    sparse = RunSpec(epochs=4, method="set")
    assert sparse.hash() != sparse.replace(prune_rate=0.3).hash()
    assert sparse.hash() != sparse.replace(seed=1).hash()
    assert "soft_bound" not in sparse.canonical() and "soft_bound" in sparse.replace(method="mest_r").canonical()


def test_hash_is_pinned():
    # A change here orphans every stored run: change it on purpose (bump SPEC_VERSION), not by accident.
    assert RunSpec().hash() == "31100fffffb94acd121c6b131124c5366560695822772b965970f8c94a31ddc4"
    assert RunSpec(method="rigl").hash() == "d77766132f6591f210734d1ea993919dd248156d3ec173f2290064729eb13f46"


def test_every_field_has_help_and_method_options_are_fields():
    assert set(HELP) == set(FIELD_NAMES)
    assert all(set(opts) <= set(FIELD_NAMES) for opts in METHOD_OPTIONS.values())
    assert RunSpec(method="rigl").sparsity_options()["seed"] == 0
    assert RunSpec().sparsity_options() == {"seed": 0}


def test_monitor_size_is_not_part_of_the_identity():
    assert RunSpec(epochs=4, monitor_size=100).hash() == RunSpec(epochs=4).hash()
    with pytest.raises(ValueError, match="monitor_size=0 is invalid"):
        RunSpec(monitor_size=0)
