"""The one path from spec to executor, without a cluster: place(), executors, what a site's job carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

TINY_MLP = {
    "name": "tiny-mlp", "task": "supervised",
    "data": {"source": "cards", "target": "target", "split": {"test": 0.4, "seed": 2}},
    "model": {"type": "mlp", "params": {"hidden": [8]}},
    "train": {"epochs": 1, "batch_size": 32},
    "compute": {"accelerator": "cpu", "threads": 1},
}


def owned(name: str = "cpu-8") -> dict:
    return {"name": name, "accelerator": "cpu", "per_node": 8,
            "owned": {"purchase_usd": 20000, "lifetime_years": 4, "utilisation": 0.5, "power_kw": 0.4}}


def catalog(tmp_path: Path, *, vault_executor: str | None) -> Path:
    doc: dict[str, Any] = {
        "sites": {
            "vault": {"kind": "on_prem", "jurisdiction": "DE", "offers": [owned()],
                      **({"executor": vault_executor} if vault_executor else {})},
            "gpu-cloud": {"kind": "cloud", "provider": "aws", "region": "eu-west-1", "jurisdiction": "IE",
                          "executor": "http://127.0.0.1:9", "python": "/opt/site/bin/python",
                          "storage": {"endpoint_url": "http://127.0.0.1:9000", "access_key_env": "CLOUD_KEY"},
                          "offers": [{"name": "g5.xlarge", "accelerator": "a10g", "per_node": 1, "memory_gb": 16,
                                      "cloud": {"on_demand_hourly_usd": 1.2}}]},
        },
        "datasets": {"cards": {"uri": "sklearn:iris", "site": "vault", "tags": ["financial"]}},
        "policies": [{"name": "fin-stays", "tags": ["financial"], "may_copy": False}],
    }
    path = tmp_path / "gravityml.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def spec_file(tmp_path: Path, **changes: Any) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({**TINY_MLP, **changes}))
    return path


def test_precision_goes_through_the_gate_refused_where_policy_keeps_the_data(cli, workspace, tmp_path) -> None:
    # This machine is in no site of the catalog (the implicit 'local' site), and the data must stay in the vault.
    catalog(tmp_path, vault_executor=None)
    code, _, err = cli("precision", str(spec_file(tmp_path)), "-o", str(tmp_path / "p.png"))
    assert code == 2 and err.count("\n") == 1
    assert "placed on site 'vault', which this machine is not at" in err
    assert not (tmp_path / "p.png").exists()
    assert workspace.client.get_experiment_by_name("tiny-mlp") is None  # nothing ran, nothing was tracked


def test_precision_where_this_machine_is_the_site_is_tracked_with_its_placement(cli, workspace, tmp_path) -> None:
    catalog(tmp_path, vault_executor="local")
    code, out, err = cli("precision", str(spec_file(tmp_path)), "-o", str(tmp_path / "p.png"), "--tolerance", "5")
    assert code == 0, err
    exp = workspace.client.get_experiment_by_name("tiny-mlp")
    (run,) = workspace.client.search_runs([exp.experiment_id])
    assert run.data.tags["gravityml.site"] == "vault" and run.data.tags["gravityml.planned_site"] == "vault"
    assert run.data.tags["gravityml.executor"] == "local"
    assert run.data.tags["gravityml.recommended_precision"] in out
    assert not workspace.client.search_model_versions("name = 'tiny-mlp'")  # it advises; train registers


def test_the_local_executor_records_where_it_ran_apart_from_the_plan(workspace, tmp_path) -> None:
    from gravityml.execution import LocalExecutor, executor_for, place, run_job

    catalog(tmp_path, vault_executor="local")
    job = spec_file(tmp_path, model={"type": "logistic_regression"})
    placed = place(job)
    assert isinstance(executor_for(placed), LocalExecutor)
    result = run_job(job)
    assert result.lineage["site"] == "vault" and result.lineage["planned_site"] == "vault"
    assert result.lineage["executor"] == "local" and result.lineage["host"]
    assert "cluster" not in result.lineage and "ray_node_id" not in result.lineage


def test_a_site_job_carries_the_placed_spec_our_package_the_users_code_and_the_plans_resources(
    workspace, tmp_path, monkeypatch
) -> None:
    import gravityml
    from gravityml.execution import PlacedJob, executor_for, place
    from gravityml.execution._ray import RayExecutor, resources, runtime_env

    catalog(tmp_path, vault_executor="local")
    (tmp_path / "mynets.py").write_text("def build(inputs, outputs):\n    raise NotImplementedError\n")
    job = spec_file(tmp_path, data={"source": "sklearn:wine", "target": "target"},
                    compute={"accelerator": "cuda", "devices": 1},
                    model={"type": "torch", "entry_point": "mynets:build"})
    monkeypatch.setenv("CLOUD_KEY", "AKIA-from-the-environment")
    placed = place(job, site="gpu-cloud")
    executor = executor_for(placed)
    assert isinstance(executor, RayExecutor) and executor.address == "http://127.0.0.1:9"
    placed_job = placed.job()
    assert PlacedJob.from_json(placed_job.to_json()) == placed_job
    assert resources(placed_job) == {"entrypoint_num_cpus": 1.0, "entrypoint_num_gpus": 1.0,
                                     "entrypoint_memory": 16_000_000_000}
    env = runtime_env(placed_job, "gpu-cloud", placed.site, executor.address, "run-1", "job-1", resume=False)
    assert PlacedJob.from_json(env["env_vars"]["GRAVITYML_PLACED_JOB"]).spec["model"]["entry_point"] == "mynets:build"
    assert env["env_vars"]["GRAVITYML_VERSION"] == gravityml.__version__
    assert env["env_vars"]["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9000"
    assert env["env_vars"]["AWS_ACCESS_KEY_ID"] == "AKIA-from-the-environment"  # by name, from the env
    assert "AKIA" not in Path(tmp_path / "gravityml.yaml").read_text()
    assert env["py_modules"] == [str(Path(gravityml.__file__).parent), str(tmp_path / "mynets.py")]


def test_an_unreachable_cluster_is_one_line_and_nothing_is_recorded(cli, workspace, tmp_path) -> None:
    catalog(tmp_path, vault_executor="local")
    job = spec_file(tmp_path, data={"source": "sklearn:wine", "target": "target"}, compute={"accelerator": "auto"})
    document = yaml.safe_load((tmp_path / "gravityml.yaml").read_text())
    document["tracking_uri"] = "http://127.0.0.1:9"  # never reached: the cluster is checked first
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(document))
    code, _, err = cli("train", str(job), "--site", "gpu-cloud")
    assert code == 2 and err.count("\n") == 1
    assert "site 'gpu-cloud': cannot reach its Ray cluster at 'http://127.0.0.1:9'" in err


@pytest.mark.parametrize("market", ["on_demand", "spot"])
def test_the_skypilot_task_is_the_plans_offer(workspace, tmp_path, market) -> None:
    from gravityml.execution import place
    from gravityml.execution._skypilot import task_config

    doc = yaml.safe_load(catalog(tmp_path, vault_executor="local").read_text())
    cloud = doc["sites"]["gpu-cloud"]
    cloud.pop("executor")
    cloud["launcher"] = "skypilot"
    cloud["offers"][0]["cloud"]["spot_hourly_usd"] = 0.4
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(doc))
    job = spec_file(tmp_path, data={"source": "sklearn:wine", "target": "target"},
                    compute={"accelerator": "cuda"},
                    placement={"spot": market == "spot", "estimate": {"hours": 1, "hardware": "a10g", "devices": 1}})
    placed = place(job, site="gpu-cloud")
    assert placed.candidate.market == market
    task = task_config(placed.job(), "gpu-cloud", placed.site, run_id="run-9")
    assert task["resources"] == {"cloud": "aws", "region": "eu-west-1", "instance_type": "g5.xlarge",
                                 "use_spot": market == "spot", "accelerators": {"A10G": 1}}
    assert "pip install 'gravityml==" in task["setup"] and "ray[default]" in task["setup"]
    assert task["run"].endswith("python -m gravityml.execution._remote")
    assert task["envs"]["GRAVITYML_RUN_ID"] == "run-9" and task["envs"]["GRAVITYML_SITE"] == "gpu-cloud"


class _JobServer:
    """A stand-in for a Ray job server's client: answers from a script of statuses, or raises."""

    def __init__(self, answers: list[object]) -> None:
        self.answers, self.logs = answers, ""

    def get_job_status(self, job_id: str) -> str:
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        self.logs += f"{answer}\n"
        return str(answer)

    def get_job_logs(self, job_id: str) -> str:
        return self.logs


def test_following_a_job_waits_out_a_short_gap_and_calls_a_silent_server_lost() -> None:
    from gravityml.execution._ray import ClusterLost, follow

    seen: list[str] = []
    gap = _JobServer(["RUNNING", ConnectionError("refused"), "RUNNING", "SUCCEEDED"])
    assert follow(gap, "j", seen.append, poll_s=0.01, lost_after_s=5.0)[0] == "SUCCEEDED"
    assert "".join(seen) == "RUNNING\nRUNNING\nSUCCEEDED\n"  # each line once, in order
    gone = _JobServer(["RUNNING", ConnectionError("Connection refused")])
    with pytest.raises(ClusterLost) as lost:
        follow(gone, "j", lambda _: None, poll_s=0.01, lost_after_s=0.2)
    assert lost.value.cause == "Connection refused" and lost.value.logs == "RUNNING\n"


def test_a_move_carries_the_home_stores_keys_by_the_names_its_catalog_gives(workspace, tmp_path, monkeypatch) -> None:
    from gravityml.errors import ExecutorError
    from gravityml.execution import place
    from gravityml.execution._ray import source_keys

    doc = yaml.safe_load(catalog(tmp_path, vault_executor="local").read_text())
    doc["sites"]["vault"]["storage"] = {"endpoint_url": "http://127.0.0.1:9001", "access_key_env": "VAULT_KEY",
                                        "secret_key_env": "VAULT_SECRET"}
    doc["datasets"]["cards"].update(tags=[], size_gb=0.001)
    doc["policies"] = []
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(doc))
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump({**TINY_MLP, "compute": {"accelerator": "cuda", "devices": 1}}))
    monkeypatch.setenv("VAULT_KEY", "vault-key-value")
    job = place(spec, site="gpu-cloud").job()
    assert job.moves_from == "vault" and "vault-key-value" not in job.to_json()  # names travel, not keys
    assert job.source_key_env == {"AWS_ACCESS_KEY_ID": "VAULT_KEY", "AWS_SECRET_ACCESS_KEY": "VAULT_SECRET"}
    with pytest.raises(ExecutorError, match=r"\$VAULT_KEY is not set"):
        source_keys(job, {"VAULT_SECRET": "s"})
    assert source_keys(job, {"VAULT_KEY": "k", "VAULT_SECRET": "s", "CLOUD_KEY": "c"}) == {
        "GRAVITYML_SOURCE_AWS_ACCESS_KEY_ID": "k", "GRAVITYML_SOURCE_AWS_SECRET_ACCESS_KEY": "s"}
