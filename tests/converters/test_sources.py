"""The converter registry: names, errors, and the releases' target configs."""
import pytest

from tests.converters.helpers import ROOT
from visionmix.converters import SOURCES, UnknownSourceError, convert, unwrap


def test_the_five_sources():
    assert list(SOURCES) == ["dit", "sit", "dico", "uvit", "drwkv"]


@pytest.mark.parametrize("call", [convert, unwrap])
def test_an_unknown_source_lists_the_known_ones(call):
    with pytest.raises(UnknownSourceError, match="unknown checkpoint source 'dict'; known sources: dit, sit, dico, "
                                                 "uvit, drwkv"):
        call("dict", {})


@pytest.mark.parametrize("release", [r for s in SOURCES.values() for r in s.releases], ids=lambda r: r.model)
def test_every_release_names_an_existing_config_and_a_url(release):
    assert (ROOT / release.config).is_file()
    assert release.url.startswith("https://")


def test_the_zoo_table_and_the_releases_agree():
    # the same release is named in two places: the zoo row users pull and the converter's own release list
    from visionmix import hub

    rows = {(row["converter"], row["weights"], row["config"]) for row in map(hub.model_info, hub.list_models())
            if row.get("converter")}
    releases = {(name, r.url, r.config) for name, source in SOURCES.items() for r in source.releases}
    assert rows == releases
