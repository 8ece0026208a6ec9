"""The framework-free name lists against the registries that implement
them: the CLIs offer and validate names without Keras, so config.py's lists
must name exactly what the networks, losses and precision policies provide,
and training/__init__.py's export formats what the exporter writes."""

import pytest

import config as config_lib
import training
from dnnlib.util import UserError
from msg_stylegan import discriminator, networks
from training import export, loss, precision

# (config field, config.py's list, the framework registry)
REGISTRIES = [
    ("architecture", config_lib.ARCHITECTURES, networks.FAMILIES),
    ("combine", config_lib.COMBINES, discriminator.COMBINES),
    ("loss", config_lib.LOSSES, loss.LOSSES),
    ("mixed_precision", config_lib.PRECISIONS, precision.POLICIES),
]
# generate.py's --export formats, listed in training/__init__.py.
EXPORTS = ("export", training.EXPORT_FORMATS, export.FILENAMES)
IDS = [field for field, _, _ in REGISTRIES]


@pytest.mark.parametrize(
    "field,names,registry", REGISTRIES + [EXPORTS], ids=IDS + ["export"]
)
def test_list_and_registry_agree(field, names, registry):
    assert len(set(names)) == len(names), names
    assert sorted(names) == sorted(registry)


def test_listing_functions_read_the_registries():
    assert networks.architecture_names() == sorted(config_lib.ARCHITECTURES)
    assert discriminator.combine_names() == sorted(config_lib.COMBINES)
    assert loss.loss_names() == sorted(config_lib.LOSSES)


def test_an_unlisted_name_cannot_register():
    with pytest.raises(ValueError, match="'sum' is not listed in config"):
        discriminator.register_combine("sum")
    with pytest.raises(ValueError, match="'sum' is not listed in config"):
        loss.register_loss("sum")
    assert "sum" not in discriminator.COMBINES and "sum" not in loss.LOSSES


@pytest.mark.parametrize("field,names,registry", REGISTRIES, ids=IDS)
def test_override_names_the_valid_choices(field, names, registry):
    cfg = config_lib.get_config("msg-stylegan-demo")
    for name in names:
        assert getattr(config_lib.override(cfg, **{field: name}), field) == name
    want = f"unknown {field} 'nope'; valid: {', '.join(names)}"
    with pytest.raises(UserError) as e:
        config_lib.override(cfg, **{field: "nope"})
    assert str(e.value) == want


def test_every_named_config_uses_listed_names():
    for cfg in config_lib.CONFIGS.values():
        assert config_lib.validate(cfg) is cfg


def test_mbstd_placement_is_validated():
    cfg = config_lib.get_config("msg-stylegan-demo")
    for where in config_lib.MBSTD_PLACEMENTS:
        assert config_lib.override(cfg, mbstd=where).mbstd == where
    with pytest.raises(UserError, match="unknown mbstd 'first'"):
        config_lib.override(cfg, mbstd="first")
    bmsg = config_lib.override(cfg, architecture="msg-progan-bmsg")
    with pytest.raises(UserError, match="does not apply to msg-progan-bmsg"):
        config_lib.override(bmsg, mbstd="every")
