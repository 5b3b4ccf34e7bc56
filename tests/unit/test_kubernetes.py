"""The Kubernetes Job repropack writes: valid against the API's own schema (kubernetes-validate, strict), locked
down (non-root, no privilege escalation, no capabilities, read-only root), one Indexed Job whose every index
runs; the limits' bad input; the parsers of the Job's index lists and of a task's termination message.
tests/integration/test_kubernetes_api.py sends it to a fake API server through the real client."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from repropack.cluster.kube_api import task_states_from
from repropack.cluster.kubernetes import (
    KubeOptions,
    job_name,
    parse_indexes,
    parse_termination_message,
    render_job,
    task_output,
    write_manifests,
)
from repropack.errors import BadInput

IMAGE = "registry.example.org:5000/lab/tiny@sha256:" + "a" * 64
K8S = "1.31.0"


def job(options: KubeOptions | None = None, tasks: int = 3, image: str = IMAGE, group: str = "tiny-1a2b3c4d") -> Any:
    volume = bool(options and options.volume)
    return render_job(
        name=job_name(group),
        image=image,
        tasks=[["--seed", str(seed), "--output", task_output(seed, volume)] for seed in range(tasks)],
        group=group,
        experiment="tiny",
        options=options or KubeOptions(),
    )


def pod_spec(manifest: dict[str, Any]) -> Any:
    return manifest["spec"]["template"]["spec"]


FULL = KubeOptions(namespace="lab", gpus=2, memory="8G", time="1-02:03", retries=2, volume="results-pvc", concurrency=2)


@pytest.mark.parametrize("options", [KubeOptions(), FULL], ids=["plain", "volume-gpus-memory-time-retries"])
def test_the_job_is_valid_for_the_api(options: KubeOptions) -> None:
    manifest = job(options)
    kubernetes_validate.validate(manifest, K8S, strict=True)
    assert json.loads(json.dumps(manifest)) == manifest  # plain JSON data, as it is sent


def test_the_schema_check_can_fail() -> None:
    manifest = job()
    pod_spec(manifest)["containers"][0]["securityContext"]["runAsNonRot"] = True  # a misspelt field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, K8S, strict=True)
    wrong = job()
    wrong["spec"]["completions"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, K8S, strict=True)


def test_one_indexed_job_whose_every_index_runs() -> None:
    manifest = job(FULL)
    spec = manifest["spec"]
    assert manifest["metadata"]["name"] == "repropack-tiny-1a2b3c4d"
    assert manifest["metadata"]["namespace"] == "lab"
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"], spec["maxFailedIndexes"]) == (3, 2, 3)
    assert spec["backoffLimitPerIndex"] == 2
    assert spec["activeDeadlineSeconds"] == 86400 + 2 * 3600 + 3 * 60
    assert spec["podFailurePolicy"]["rules"][0]["action"] == "Ignore"
    assert spec["ttlSecondsAfterFinished"] == 7 * 24 * 3600
    assert job(KubeOptions(concurrency=8))["spec"]["parallelism"] == 3
    labels = {"app.kubernetes.io/managed-by": "repropack", "repropack.dev/group": "tiny-1a2b3c4d"}
    assert manifest["metadata"]["labels"] == spec["template"]["metadata"]["labels"] == labels
    assert manifest["metadata"]["annotations"] == {
        "repropack.dev/group": "tiny-1a2b3c4d",
        "repropack.dev/experiment": "tiny",
    }


def test_the_pod_is_locked_down() -> None:
    spec = pod_spec(job(FULL))
    assert spec["restartPolicy"] == "Never"
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == pod["runAsGroup"] == pod["fsGroup"] == 65532
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    [container] = spec["containers"]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in spec["volumes"]


def test_the_container_runs_its_index_of_the_tasks() -> None:
    [container] = pod_spec(job(FULL))["containers"]
    assert container["name"] == "task" and container["image"] == IMAGE
    assert container["imagePullPolicy"] == "IfNotPresent" and container["args"] == ["indexed"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert json.loads(env["REPRO_TASKS"]) == [["--seed", str(n), "--output", f"/results/task-{n}"] for n in range(3)]
    assert " " not in env["REPRO_TASKS"]
    assert env["REPRO_TERMINATION_LOG"] == container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "File"
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "8Gi"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": "2"},
    }


def test_outputs_go_to_the_volume_or_stay_in_the_pod() -> None:
    with_volume = pod_spec(job(FULL))
    assert {"name": "results", "persistentVolumeClaim": {"claimName": "results-pvc"}} in with_volume["volumes"]
    assert {"name": "results", "mountPath": "/results"} in with_volume["containers"][0]["volumeMounts"]
    plain = pod_spec(job())
    assert {"name": "output", "emptyDir": {}} in plain["volumes"]
    assert {"name": "output", "mountPath": "/output"} in plain["containers"][0]["volumeMounts"]
    assert "limits" not in plain["containers"][0]["resources"]
    assert (task_output(4, True), task_output(4, False)) == ("/results/task-4", "/output")


@pytest.mark.parametrize(
    ("memory", "quantity"), [("8G", "8Gi"), ("512m", "512Mi"), ("512", "512Mi"), ("2Ti", "2Ti"), ("64K", "64Ki")]
)
def test_memory_is_a_kubernetes_quantity(memory: str, quantity: str) -> None:
    assert KubeOptions(memory=memory).quantity() == quantity


@pytest.mark.parametrize(
    ("time", "seconds"), [("90", 5400), ("10:30", 630), ("2:00:00", 7200), ("1-00", 86400), ("1-0:00:05", 86405)]
)
def test_time_is_the_jobs_deadline(time: str, seconds: int) -> None:
    assert KubeOptions(time=time).deadline() == seconds


def test_job_names_are_valid_and_stable() -> None:
    assert job_name("tiny-1a2b3c4d") == "repropack-tiny-1a2b3c4d"
    odd = job_name("My_Sweep.v2")
    assert odd == job_name("My_Sweep.v2") != job_name("my-sweep-v2")  # a lossy name keeps a hash of the group
    assert odd.startswith("repropack-my-sweep-v2-")
    long = job_name("x" * 200)
    assert len(long) == 63 and long == job_name("x" * 200) != job_name("x" * 199)
    for name in (odd, long, job_name("---"), job_name("ÄÖ")):
        kubernetes_validate.validate(job(group="g") | {"metadata": {"name": name}}, K8S, strict=True)
        assert len(name) <= 63 and name == name.lower() and name[0].isalnum() and name[-1].isalnum()


@pytest.mark.parametrize(
    "image",
    [
        "registry.example.org/lab/tiny:v1",  # a tag can move
        "lab/tiny",
        "sha256:" + "a" * 64,  # a local image id
        "registry.example.org/lab/tiny@sha256:" + "a" * 63,
        "registry.example.org/Lab/tiny@sha256:" + "a" * 64,
    ],
)
def test_an_image_not_pinned_by_digest_is_bad_input(image: str) -> None:
    with pytest.raises(BadInput, match=r"(?i)push it first: repropack publish") as caught:
        job(image=image)
    assert "REGISTRY/REPO@sha256:" in str(caught.value)


def test_digest_references_are_accepted() -> None:
    for image in ("localhost:5000/tiny@sha256:" + "0" * 64, "lab/tiny-model_v2@sha256:" + "f" * 64):
        assert pod_spec(job(image=image))["containers"][0]["image"] == image


@pytest.mark.parametrize(
    ("options", "says"),
    [
        ({"namespace": "Lab"}, "--namespace takes a Kubernetes name"),
        ({"namespace": "a_b"}, "--namespace takes a Kubernetes name"),
        ({"namespace": "x" * 64}, "--namespace takes a Kubernetes name"),
        ({"volume": "my volume"}, "--volume takes a Kubernetes name"),
        ({"memory": "lots"}, "--memory takes a size"),
        ({"memory": "0G"}, "--memory takes a size"),
        ({"time": "soon"}, "--time takes Slurm's form"),
        ({"time": "0"}, "--time takes Slurm's form"),
        ({"time": "1:2"}, "--time takes Slurm's form"),
        ({"retries": -1}, "--retries takes a whole number"),
        ({"gpus": -1}, "--gpus takes a whole number"),
        ({"concurrency": 0}, "--concurrency takes a whole number"),
    ],
)
def test_malformed_options_are_bad_input(options: dict[str, Any], says: str) -> None:
    with pytest.raises(BadInput, match=says):
        KubeOptions(**options)


def test_no_tasks_is_bad_input() -> None:
    with pytest.raises(BadInput, match="1 to 100000 tasks, not 0"):
        job(tasks=0)


def test_write_manifests_is_byte_stable(tmp_path: Path) -> None:
    first = write_manifests(tmp_path / "a", job(FULL))
    second = write_manifests(tmp_path / "b", copy.deepcopy(job(FULL)))
    assert first == tmp_path / "a" / "job.yaml"
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text()
    assert text.startswith("apiVersion: batch/v1\n") and "{" not in text.split("value:")[0]
    assert sorted(tmp_path.joinpath("a").iterdir()) == [first]  # no temporary file left beside it


@pytest.mark.parametrize(
    ("text", "indexes"),
    [("", set()), (None, set()), ("0-2,5", {0, 1, 2, 5}), ("7", {7}), ("1,3-4", {1, 3, 4}), ("x,2", {2})],
)
def test_parse_indexes(text: str | None, indexes: set[int]) -> None:
    assert parse_indexes(text) == indexes


GOOD = '{"exit_code":0,"metrics":{"accuracy":0.93,"loss":1,"done":true,"name":"x"},"seed":3,"status":"succeeded"}'


@pytest.mark.parametrize(
    ("text", "summary"),
    [
        (GOOD, {"exit_code": 0, "metrics": {"accuracy": 0.93, "loss": 1}, "seed": 3, "status": "succeeded"}),
        (GOOD[:50], {}),  # cut by the kubelet
        ("Traceback (most recent call last):", {}),
        ("[1, 2]", {}),
        ('"text"', {}),
        (None, {}),
        ("", {}),
        ('{"exit_code": true, "seed": "3", "metrics": [1], "status": 2}', {}),
        ('{"metrics": {"a": NaN, "b": Infinity, "c": 2.5}}', {"metrics": {"c": 2.5}}),
        (  # as the image's runtime writes it when a task stops early
            '{"complete":true,"error":"indexed: no task 9","exit_code":2,"metrics":{},"seed":null,"status":"failed"}',
            {"complete": True, "error": "indexed: no task 9", "exit_code": 2, "metrics": {}, "status": "failed"},
        ),
        ("[" * 100_000, {}),
    ],
)
def test_parse_termination_message(text: str | None, summary: dict[str, Any]) -> None:
    assert parse_termination_message(text) == summary


def test_states_without_pods() -> None:
    states = task_states_from({"status": {"completedIndexes": "1"}}, [], 3)
    assert [task.state for task in states] == ["queued", "succeeded", "queued"]
    assert [task.state for task in task_states_from(None, [], 2)] == ["lost", "lost"]
    killed = task_states_from({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}, [], 1)
    assert killed[0].state == "killed"
