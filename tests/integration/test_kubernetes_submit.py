"""repropack submit --to kubernetes end to end: the CLI creates an Indexed Job through the official client
on a fake API server, whose kubelet (tests/integration/docker_kubelet.py) runs each index on the real
Docker engine under the Job's own restricted security context (uid 65532, read-only root, no
capabilities); results come back through the termination message or a shared volume, into the store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Experiment, new_experiment, repropack
from tests.integration.docker_kubelet import docker_kubelet
from tests.integration.fake_kube import FakeKube, running_fake_kube, write_kubeconfig

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory, base_image: str, registry: str) -> Iterator[str]:
    """The experiment, built and pushed: its REGISTRY/REPO@sha256 reference."""
    experiment: Experiment = new_experiment(tmp_path_factory.mktemp("kube") / "kube", name="kubed")
    tag = str(experiment.build("kubed")["tag"])
    pushed = repropack("publish", tag, f"{registry}/lab/kubed:v1", "--json")
    assert pushed.code == 0, pushed.stderr
    yield str(pushed.json()["reference"])


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKube, dict[str, str]]]:
    with running_fake_kube() as fake:
        yield fake, {"KUBECONFIG": str(write_kubeconfig(tmp_path / "kubeconfig", fake.url))}


def test_seeds_run_as_one_indexed_job_and_report_through_the_termination_message(
    published: str, kube: tuple[FakeKube, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = kube
    submitted = repropack(
        "submit", published, "--to", "kubernetes", "--seeds", "0-1", "--sweep", "crash=false,true", "--group",
        "kube-seeds", "--output", str(tmp_path / "group"), "--json", env=env,
    )  # fmt: skip
    assert submitted.code == 0, submitted.stderr
    (job,) = fake.created
    assert job["spec"]["completionMode"] == "Indexed" and job["spec"]["completions"] == 4
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == published
    status = repropack("status", "kube-seeds", "--json", env=env)
    assert [t["state"] for t in status.json()["tasks"]] == ["queued"] * 4  # nothing ran yet
    with docker_kubelet(fake):
        waited = repropack("wait", "kube-seeds", "--timeout", "240", "--json", env=env)
    assert waited.code == 4, waited.stderr  # the crash=true tasks failed
    states = {(t["name"], t["state"], t["exit_code"]) for t in waited.json()["tasks"]}
    assert states == {
        ("train-crash=False-seed=0", "succeeded", 0),
        ("train-crash=False-seed=1", "succeeded", 0),
        ("train-crash=True-seed=0", "failed", 4),
        ("train-crash=True-seed=1", "failed", 4),
    }
    listed = json.loads(repropack("runs", "--group", "kube-seeds", "--json", env=env).stdout)
    good = sorted(
        (r["seed"], r["metrics"]["hashseed"], r["metrics"]["mean"], r["metrics"]["uid"], r["metrics"]["root_writable"])
        for r in listed
        if r["status"] == "succeeded"
    )
    # the seed reached the code; it ran as the Job's user 65532, on a root file system it could not write
    assert good == [(0, 0.0, 6.0, 65532.0, 0.0), (1, 1.0, 6.0, 65532.0, 0.0)]
    failed = next(r for r in listed if r["status"] == "failed")
    assert "about to fail" in repropack("logs", failed["id"], env=env).stdout  # the pod's log, kept


def test_a_shared_volume_brings_back_every_output_file(
    published: str, kube: tuple[FakeKube, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = kube
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # the claim, as the pods' user 65532 sees it
    submitted = repropack(
        "submit", published, "--to", "kubernetes", "--seeds", "3", "--volume", "results", "--group", "kube-vol",
        "--output", str(shared), "--json", env=env,
    )  # fmt: skip
    assert submitted.code == 0, submitted.stderr
    with docker_kubelet(fake, {"results": shared}):
        waited = repropack("wait", "kube-vol", "--timeout", "240", "--json", env=env)
    assert waited.code == 0, waited.stdout + waited.stderr
    assert json.loads((shared / "task-0" / "metrics.json").read_text())["hashseed"] == 3
    (record,) = json.loads(repropack("runs", "--group", "kube-vol", "--json", env=env).stdout)
    back = repropack("outputs", record["id"], "--output", str(tmp_path / "back"), env=env)
    assert back.code == 0, back.stderr
    run = json.loads((tmp_path / "back" / "run.json").read_text())
    assert run["user"] == {"uid": 65532, "gid": 65532}  # it ran as the Job's unprivileged user


def test_verify_on_kubernetes_needs_every_seed(
    published: str, kube: tuple[FakeKube, dict[str, str]], tmp_path: Path
) -> None:
    fake, env = kube
    with docker_kubelet(fake):
        verified = repropack(
            "verify", published, "--seeds", "0-1", "--on", "kubernetes", "--group", "kube-verify", "--output",
            str(tmp_path / "group"), "--json", env=env,
        )  # fmt: skip
    assert verified.code == 0, verified.stdout + verified.stderr
    report = verified.json()
    assert report["reproduced"] is True and report["metrics"]["mean"]["values"] == [6.0, 6.0]
    assert [t["state"] for t in report["tasks"]] == ["succeeded", "succeeded"]


def test_a_deleted_job_never_makes_verify_pass(
    published: str, kube: tuple[FakeKube, dict[str, str]], tmp_path: Path
) -> None:
    """The Job is deleted before any index ran (a cancel, a cluster cleaned up): its seeds are lost, and a
    verify whose seeds did not all report is not reproduced."""
    fake, env = kube
    import threading

    def delete_when_created() -> None:
        for _ in range(600):
            if fake.jobs:
                fake.jobs.clear()
                return
            threading.Event().wait(0.1)

    deleter = threading.Thread(target=delete_when_created, daemon=True)
    deleter.start()
    verified = repropack(
        "verify", published, "--seeds", "0-1", "--on", "kubernetes", "--group", "kube-gone", "--output",
        str(tmp_path / "group"), "--json", env=env,
    )  # fmt: skip
    deleter.join(timeout=5)
    assert verified.code == 1, verified.stdout + verified.stderr
    report = verified.json()
    assert report["reproduced"] is False
    assert [t["state"] for t in report["tasks"]] == ["lost", "lost"]


def test_dry_run_writes_a_valid_manifest_and_needs_no_cluster(published: str, tmp_path: Path) -> None:
    import kubernetes_validate

    env = {"KUBECONFIG": str(tmp_path / "no-such-kubeconfig")}
    done = repropack(
        "submit", published, "--to", "kubernetes", "--seeds", "0-2", "--gpus", "1", "--memory", "2G", "--dry-run",
        "--output", str(tmp_path / "dry"), "--json", env=env,
    )  # fmt: skip
    assert done.code == 0, done.stderr
    job = yaml.safe_load((tmp_path / "dry" / "job.yaml").read_text())
    kubernetes_validate.validate(job, "1.31.0", strict=True)
    limits = job["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits == {"memory": "2Gi", "nvidia.com/gpu": "1"}
    assert json.loads(repropack("runs", "--group", str(done.json()["group"]), "--json", env=env).stdout) == []


def test_bad_input_and_an_unreadable_kubeconfig_stop_before_anything_is_submitted(
    published: str, tmp_path: Path
) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("{not: [yaml")
    env = {"KUBECONFIG": str(bad)}
    args = ["submit", published, "--to", "kubernetes", "--group", "kube-bad", "--output", str(tmp_path / "g")]
    unreadable = repropack(*args, env=env)
    assert unreadable.code == 3 and "kubeconfig" in unreadable.stderr and "Traceback" not in unreadable.stderr
    assert json.loads(repropack("runs", "--group", "kube-bad", "--json", env=env).stdout) == []  # none begun
    misplaced = repropack(*args, "--partition", "gpu", env=env)
    assert misplaced.code == 2 and "--partition" in misplaced.stderr
    tag_only = repropack("submit", "repropack-test-kubed:" + str(os.getpid()), "--to", "kubernetes", env=env)
    assert tag_only.code == 2 and "by digest" in tag_only.stderr
