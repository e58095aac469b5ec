"""The catalog: validation with paths, where it is looked up, datasets by name, derived numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gravityml.data import CATALOG_ENV, find_catalog, load_catalog, local_catalog, parse_catalog, read_source
from gravityml.errors import CatalogError
from gravityml.placement import offer_table

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gravityml.yaml"


def minimal(**changes: object) -> dict:
    doc = {
        "sites": {"dc": {"kind": "on_prem", "jurisdiction": "DE",
                         "offers": [{"name": "n", "accelerator": "cpu", "per_node": 16,
                                     "owned": {"purchase_usd": 10000, "power_kw": 0.3}}]}},
    }
    doc.update(changes)
    return doc


def test_the_example_catalog_has_on_prem_and_three_cloud_regions_in_two_jurisdictions() -> None:
    catalog = load_catalog(EXAMPLE)
    cloud = {n: s for n, s in catalog.sites.items() if s.kind == "cloud"}
    assert len(cloud) == 3 and catalog.sites["dc-frankfurt"].kind == "on_prem"
    assert {"US"} < {s.jurisdiction for s in cloud.values()}
    assert {"DE", "IE"} & {s.jurisdiction for s in cloud.values()}
    assert Path(catalog.datasets["transactions"].uri).is_file()  # relative URIs are read beside the catalog
    assert "EXAMPLE" in EXAMPLE.read_text().upper()  # prices are marked as examples
    # this machine is in the Frankfurt data centre: that site is it, so no separate 'local' site is added
    assert catalog.here == "dc-frankfurt" and "local" not in catalog.sites
    assert [n for n, s in catalog.sites.items() if s.executor == "local"] == ["dc-frankfurt"]
    assert not any(s.runnable for s in cloud.values())  # no cluster attached: planned and priced only
    assert len(offer_table(catalog)) == 19  # 18 offer rows and the data lake's Spark executors


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sites": {"dc": {"kind": "on_prem", "jurisdiction": "DE", "offers": [], "colour": 1}}},
         r"sites\.dc\.colour: unknown key"),
        ({"datasets": {"d": {"uri": "x.csv", "site": "dcc"}}}, r"datasets\.d\.site: 'dcc' is not a site.*did you mean 'dc'"),
        ({"sites": {"dc": {"kind": "cloud", "jurisdiction": "DE", "offers": [
            {"name": "n", "accelerator": "cpu", "owned": {"purchase_usd": 1, "power_kw": 1}}]}}},
         r"offers\.0: offers of cloud sites are priced with 'cloud:' only"),
        ({"policies": [{"name": "p", "tags": ["pii"], "site_kinds": ["edge"]}]}, r"policies\.0\.site_kinds\.0: 'edge' is not allowed"),
        ({"budgets": {"e": {"usd": -1}}}, r"budgets\.e\.usd"),
    ],
)
def test_a_bad_catalog_is_refused_with_the_path_of_the_problem(change: dict, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        parse_catalog(minimal(**change), path="gravityml.yaml")


def test_an_unknown_accelerator_is_refused_with_its_path() -> None:
    doc = minimal()
    doc["sites"]["dc"]["offers"][0]["accelerator"] = "a1000"
    with pytest.raises(CatalogError, match=r"sites\.dc\.offers\.0\.accelerator: 'a1000' is not in the hardware table.*did you mean 'a100'"):
        offer_table(parse_catalog(doc))


def test_without_a_catalog_there_is_one_site_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    monkeypatch.setenv("GRAVITYML_HOME", str(tmp_path / "ws"))
    assert find_catalog(tmp_path) is None
    assert list(load_catalog(base_dir=tmp_path).sites) == ["local"] == list(local_catalog().sites)


def test_lookup_order_env_then_beside_the_job_then_cwd_then_workspace(tmp_path: Path, monkeypatch) -> None:
    job_dir, cwd, home, other = (tmp_path / d for d in ("jobs", "cwd", "ws", "other"))
    for folder in (job_dir, cwd, home, other):
        folder.mkdir()
        (folder / "gravityml.yaml").write_text(yaml.safe_dump(minimal()))
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("GRAVITYML_HOME", str(home))
    monkeypatch.setenv(CATALOG_ENV, str(other / "gravityml.yaml"))
    assert find_catalog(job_dir) == other / "gravityml.yaml"
    monkeypatch.delenv(CATALOG_ENV)
    assert find_catalog(job_dir) == job_dir / "gravityml.yaml"
    assert find_catalog(tmp_path) == cwd / "gravityml.yaml"
    (cwd / "gravityml.yaml").unlink()
    assert find_catalog(tmp_path) == home / "gravityml.yaml"
    monkeypatch.setenv(CATALOG_ENV, str(tmp_path / "missing.yaml"))
    with pytest.raises(CatalogError, match="GRAVITYML_CATALOG names .* not a file"):
        find_catalog(job_dir)


def test_a_data_source_naming_a_catalog_dataset_reads_its_uri(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(CATALOG_ENV, raising=False)
    (tmp_path / "rows.csv").write_text("a,b\n1,2\n3,4\n")
    doc = minimal(datasets={"rows": {"uri": "rows.csv", "site": "dc", "tags": ["pii"]}})
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(doc))
    table = read_source("rows", tmp_path)
    assert table.uri.endswith("rows.csv") and table.frame.shape == (2, 2)
    catalog = load_catalog(base_dir=tmp_path)
    assert catalog.datasets["rows"].size_gb is None
    from gravityml.data import dataset_size_gb

    assert dataset_size_gb(catalog.datasets["rows"]) == pytest.approx(len("a,b\n1,2\n3,4\n") / 1e9)
    assert list(catalog.sites) == ["local", "dc"]
    alone = load_catalog(base_dir=tmp_path).model_copy()
    assert parse_catalog({**doc, "include_local": False}).sites.keys() == {"dc"} and alone.sites["local"]
