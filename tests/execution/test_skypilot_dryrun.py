"""SkyPilot itself checks the task gravityml makes for a cloud site: its dry run, never a launch.

SkyPilot 0.14 lives in its own venv (``make .venv-sky/.installed``; it pins click<8.2 and an older
uvicorn), so the task travels to it as YAML and ``.venv-sky/bin/python`` runs SkyPilot's
``Task.from_yaml`` and its dry run (``sky.execution.launch(task, dryrun=True)``, what its API server
runs for ``sky launch --dryrun``): the optimizer picks the instance from SkyPilot's catalog, the AWS
cloud renders its cluster config, and nothing is provisioned.

No cloud is reachable here, so:

- AWS is moto's server on 127.0.0.1 (the one allowed fake: a cloud provider's API), with dummy
  credentials in a temporary HOME; SkyPilot asks it for the image's root device, nothing else.
- SkyPilot's catalog (which it downloads from GitHub) is written into that HOME: the rows of the
  example catalog's offers at the site the tests launch on, with AWS's published vCPU, memory and GPU figures and the example's
  prices, and an image registered in moto for each region.
- As SkyPilot's own optimizer tests do, its enabled-cloud check is patched to say AWS is enabled
  (a ``sitecustomize`` in the child's PYTHONPATH); nothing else is patched.
- The wheel of itself that SkyPilot builds for the clusters it launches (a dry run builds it too, 10
  to 20 s here) is built once by ``make .venv-sky/.installed`` and copied into that HOME.
"""

from __future__ import annotations

import csv
import importlib.util
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SKY_PYTHON = ROOT / ".venv-sky" / "bin" / "python"
SITE = "aws-eu-central-1"
#: SkyPilot 0.14's catalog schema (sky.skylet.constants.CATALOG_SCHEMA_VERSION).
CATALOG_VERSION = "v8"
#: AWS's published figures for the example catalog's instance types: vCPUs, GiB, GPU, GPUs, GPU MiB.
SPECS = {
    "c6i.16xlarge": (64, 128, "", 0, 0),
    "g5.xlarge": (4, 16, "A10G", 1, 24576),
    "p4d.24xlarge": (96, 1152, "A100", 8, 40960),
    "p5.48xlarge": (192, 2048, "H100", 8, 81920),
}
#: The images SkyPilot's AWS cloud looks up by tag (sky/clouds/aws.py), for CPU and GPU instances.
IMAGE_TAGS = ("skypilot:custom-cpu-ubuntu", "skypilot:custom-gpu-ubuntu-cuda13")

JOB = {
    "name": "tiny-mlp", "task": "supervised",
    "data": {"source": "sklearn:wine", "target": "target"},
    "model": {"type": "torch", "entry_point": "mynets:build"},
    "train": {"epochs": 1, "batch_size": 32},
    "compute": {"accelerator": "cuda"},
    "placement": {"estimate": {"hours": 1, "hardware": "a10g", "devices": 1}},
}


@pytest.fixture(scope="module")
def aws() -> Iterator[str]:
    """moto's server on loopback, standing in for AWS's API."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def _ec2(endpoint: str, region: str) -> Any:
    import boto3

    return boto3.client("ec2", region_name=region, endpoint_url=endpoint,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Placing reads no tracking store: a workspace folder of its own is enough (no MLflow database)."""
    monkeypatch.setenv("GRAVITYML_HOME", str(tmp_path / "ws"))


@pytest.fixture
def sky_env(aws: str, tmp_path: Path) -> dict[str, str]:
    """The child's environment: a HOME with dummy AWS credentials and SkyPilot's catalog, the one patch."""
    assert SKY_PYTHON.is_file(), "run `make .venv-sky/.installed` (SkyPilot 0.14 in its own venv)"
    example = yaml.safe_load((ROOT / "examples" / "gravityml.yaml").read_text())
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".aws" / "credentials").write_text("[default]\naws_access_key_id = testing\n"
                                               "aws_secret_access_key = testing\n")
    catalogs = home / ".sky" / "catalogs" / CATALOG_VERSION
    vms, images = [], []
    for site in (example["sites"][SITE],):  # the site the tests launch on (each region costs moto calls)
        region = site["region"]
        ec2 = _ec2(aws, region)
        zone = ec2.describe_availability_zones()["AvailabilityZones"][0]["ZoneId"]
        for tag in IMAGE_TAGS:
            image = ec2.register_image(Name=tag.partition(":")[2], RootDeviceName="/dev/sda1",
                                       BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 50}}])
            images.append({"Tag": tag, "Region": region, "OS": "ubuntu", "OSVersion": "22.04",
                           "ImageId": image["ImageId"], "CreationDate": "20250101"})
        for offer in site["offers"]:
            cpus, mem, gpu, count, gpu_mib = SPECS[offer["name"]]
            info = ({"Gpus": [{"Name": gpu, "Manufacturer": "NVIDIA", "Count": count,
                               "MemoryInfo": {"SizeInMiB": gpu_mib}}], "TotalGpuMemoryInMiB": count * gpu_mib}
                    if gpu else "")
            prices = offer["cloud"]
            vms.append({"InstanceType": offer["name"], "AcceleratorName": gpu, "AcceleratorCount": count or "",
                        "vCPUs": cpus, "MemoryGiB": mem, "GpuInfo": info or "",
                        "Price": prices["on_demand_hourly_usd"], "SpotPrice": prices.get("spot_hourly_usd", ""),
                        "Region": region, "AvailabilityZone": zone, "Arch": "x86_64", "LocalDiskType": "",
                        "NVMeSupported": False, "LocalDiskSize": "", "LocalDiskCount": "",
                        "MaximumEfaInterfaces": 0})
    _write_csv(catalogs / "aws" / "vms.csv", vms)
    _write_csv(catalogs / "aws" / "images.csv", images)
    _write_csv(catalogs / "aws" / "instance_quota_mapping.csv", [],
               ["InstanceType", "OnDemandInstanceCode", "SpotInstanceCode"])
    gpus = {(gpu, mib) for _, _, gpu, _, mib in SPECS.values() if gpu}
    _write_csv(catalogs / "common" / "accelerators.csv", [{"AcceleratorName": n, "Clouds": "AWS"} for n, _ in gpus])
    _write_csv(catalogs / "common" / "metadata.csv",
               [{"GPU": n, "MemoryGB": mib // 1024, "Manufacturer": "NVIDIA"} for n, mib in gpus])
    wheels = ROOT / ".venv-sky" / "home" / ".sky" / "wheels"  # SkyPilot's wheel of itself, built by make
    if wheels.is_dir():
        shutil.copytree(wheels, home / ".sky" / "wheels")
    patch = tmp_path / "sky-patch"
    patch.mkdir()
    (patch / "sitecustomize.py").write_text(
        "# As SkyPilot's optimizer tests do: AWS counts as enabled (its check would call AWS with real keys).\n"
        "import sky.check\nfrom sky import clouds\n"
        "sky.check.get_cached_enabled_clouds_or_refresh = lambda *args, **kwargs: [clouds.AWS()]\n")
    return {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
            "PYTHONPATH": str(patch), "AWS_ENDPOINT_URL": aws, "AWS_EC2_METADATA_DISABLED": "true",
            "SKYPILOT_DISABLE_USAGE_COLLECTION": "1"}


def _write_csv(path: Path, rows: list[dict[str, Any]], fields: list[str] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _placed(tmp_path: Path, *, spot: bool = False, **site_changes: Any) -> Any:
    """A GPU job placed on the example catalog's Frankfurt AWS region, given ``launcher: skypilot``."""
    from gravityml.execution import place

    doc = yaml.safe_load((ROOT / "examples" / "gravityml.yaml").read_text())
    doc["sites"][SITE].update({"launcher": "skypilot", **site_changes})
    (tmp_path / "gravityml.yaml").write_text(yaml.safe_dump(doc))
    (tmp_path / "mynets.py").write_text("def build(inputs, outputs):\n    raise NotImplementedError\n")
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump({**JOB, "placement": {**JOB["placement"], "spot": spot}}))
    return place(spec, site=SITE)


def test_skypilot_accepts_the_plans_task_on_demand_and_spot_and_refuses_an_unknown_region(tmp_path, sky_env, aws) -> None:
    from gravityml.errors import ExecutorError
    from gravityml.execution._skypilot import dry_run, task_config

    placed = _placed(tmp_path)
    assert (placed.candidate.site, placed.candidate.offer, placed.candidate.market) == (SITE, "g5.xlarge",
                                                                                          "on_demand")
    config = task_config(placed.job(), SITE, placed.site, run_id="run-1")
    seen = dry_run(config, SITE, python=str(SKY_PYTHON), env=sky_env)
    assert seen["sky_version"] == "0.14.1"
    assert (seen["cloud"], seen["region"], seen["instance_type"]) == ("AWS", "eu-central-1", "g5.xlarge")
    assert (seen["accelerators"], seen["use_spot"], seen["num_nodes"]) == ({"A10G": 1}, False, 1)
    assert (seen["setup"], seen["run"]) == (config["setup"], config["run"])
    assert seen["file_mounts"] == {"~/gravityml-code/mynets.py": str(tmp_path / "mynets.py")}
    assert {"GRAVITYML_PLACED_JOB", "GRAVITYML_RUN_ID", "GRAVITYML_SITE"} <= set(seen["envs"])
    # SkyPilot's AWS cloud rendered the cluster for the plan's offer, with the image it looked up in the
    # (fake) cloud, and launched nothing there.
    cluster = Path(sky_env["HOME"]) / ".sky" / "generated" / f"{config['name']}.yml.tmp"
    rendered = cluster.read_text()
    assert "InstanceType: g5.xlarge" in rendered and "region: eu-central-1" in rendered
    ec2 = _ec2(aws, "eu-central-1")
    gpu_image = ec2.describe_images(Filters=[{"Name": "name", "Values": ["custom-gpu-ubuntu-cuda13"]}])["Images"]
    assert f"ImageId: {gpu_image[0]['ImageId']}" in rendered
    assert ec2.describe_instances()["Reservations"] == []

    spot = _placed(tmp_path, spot=True)
    assert spot.candidate.market == "spot"
    seen = dry_run(task_config(spot.job(), SITE, spot.site), SITE, python=str(SKY_PYTHON), env=sky_env)
    assert (seen["instance_type"], seen["accelerators"], seen["use_spot"]) == ("g5.xlarge", {"A10G": 1}, True)

    wrong = _placed(tmp_path, region="eu-nowhere-1")
    bad = task_config(wrong.job(), SITE, wrong.site)
    cluster.unlink()
    with pytest.raises(ExecutorError) as refused:
        dry_run(bad, SITE, python=str(SKY_PYTHON), env=sky_env)
    text = str(refused.value)
    assert "\n" not in text
    assert f"site {SITE!r}: SkyPilot refuses the task, nothing was launched: ValueError: Invalid region " \
           "'eu-nowhere-1' List of supported aws regions:" in text
    assert refused.value.got["region"] == "eu-nowhere-1" and refused.value.allowed and refused.value.fix
    assert f"sites.{SITE}.provider / region" in refused.value.fix
    assert not cluster.exists() and ec2.describe_instances()["Reservations"] == []


def test_without_skypilot_the_site_is_refused_naming_the_extra_and_its_own_venv(tmp_path) -> None:
    from gravityml.errors import ExecutorError
    from gravityml.execution import executor_for
    from gravityml.execution._skypilot import dry_run, task_config

    assert importlib.util.find_spec("sky") is None  # the project's .venv has no SkyPilot
    placed = _placed(tmp_path)
    with pytest.raises(ExecutorError) as in_process:
        executor_for(placed)
    config = task_config(placed.job(), SITE, placed.site)
    with pytest.raises(ExecutorError) as other:
        dry_run(config, SITE, python=sys.executable)
    for err in (in_process.value, other.value):
        assert f"site {SITE!r} says launcher: skypilot, and SkyPilot cannot be imported" in str(err)
        assert err.got == f"{sys.executable}: no module named 'sky'" and err.allowed
        assert "pip install 'gravityml[skypilot]'" in err.fix and "venv of its own" in err.fix
