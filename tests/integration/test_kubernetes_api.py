"""repropack's Kubernetes edge through the official client against a fake API server (tests/integration/fake_kube.py):
the Job it creates, each index's state as the Job controller and the kubelet would report it, logs, deletion,
and the ways a kubeconfig or a cluster fails (each a clear error, never a traceback)."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from kubernetes import client as kube_client

from repropack.cluster.kube_api import KubeApi, KubeTask, connect
from repropack.cluster.kubernetes import KubeOptions, job_name, render_job, task_output
from repropack.errors import BadInput, EnvironmentProblem
from tests.integration import fake_kube as fakes
from tests.integration.fake_kube import FakeKube, write_kubeconfig

fake_kube = fakes.fake_kube  # the fixture: a fake API server, running

IMAGE = "registry.example.org/lab/tiny@sha256:" + "b" * 64
NAME = job_name("tiny-1a2b3c4d")
SUMMARY = '{"exit_code":3,"metrics":{"loss":0.5},"seed":2,"status":"failed"}'


def rendered(tasks: int = 5, namespace: str = "default") -> dict[str, object]:
    return render_job(
        name=NAME,
        image=IMAGE,
        tasks=[["--seed", str(seed), "--output", task_output(seed, True)] for seed in range(tasks)],
        group="tiny-1a2b3c4d",
        experiment="tiny",
        options=KubeOptions(namespace=namespace, volume="results", retries=1),
    )


@pytest.fixture
def api(fake_kube: FakeKube, tmp_path: Path) -> KubeApi:
    return connect(write_kubeconfig(tmp_path / "kubeconfig", fake_kube.url))


def test_the_server_receives_exactly_the_rendered_job(api: KubeApi, fake_kube: FakeKube) -> None:
    api.create_job(rendered())
    assert fake_kube.created == [json.loads(json.dumps(rendered()))]
    assert api.server == fake_kube.url


def test_each_index_has_its_state(api: KubeApi, fake_kube: FakeKube) -> None:
    api.create_job(rendered(tasks=6))
    fake_kube.set_pod("default", NAME, 0, "Succeeded", exit_code=0, message='{"exit_code":0}', log="epoch 1\n")
    fake_kube.set_pod("default", NAME, 1, "Running")
    fake_kube.set_pod("default", NAME, 2, "Failed", exit_code=3, message=SUMMARY)
    fake_kube.set_pod(
        "default", NAME, 3, "Failed", reason="Evicted", disrupted=True
    )  # lost to its node, not replaced yet
    fake_kube.set_pod("default", NAME, 4, "Failed", reason="Evicted", disrupted=True)
    fake_kube.set_pod("default", NAME, 4, "Running", attempt=1)  # tried again after the loss
    fake_kube.set_pod("default", NAME, 5, "Pending")
    fake_kube.set_job_status("default", NAME, completed="0", failed="2")
    assert api.task_states("default", NAME, 7) == [
        KubeTask(0, "succeeded", 0, '{"exit_code":0}', f"{NAME}-0-0"),
        KubeTask(1, "running", None, None, f"{NAME}-1-0"),
        KubeTask(2, "failed", 3, SUMMARY, f"{NAME}-2-0"),
        KubeTask(3, "queued", None, None, f"{NAME}-3-0"),  # lost to its node: the Job controller replaces it
        KubeTask(4, "running", None, None, f"{NAME}-4-1"),
        KubeTask(5, "queued", None, None, f"{NAME}-5-0"),
        KubeTask(6, "queued", None, None, None),  # no pod yet
    ]
    assert api.log("default", f"{NAME}-0-0") == "epoch 1\n"
    assert api.log("default", "no-such-pod") == ""


def test_killed_retried_and_timed_out_indexes(api: KubeApi, fake_kube: FakeKube) -> None:
    api.create_job(rendered(tasks=3))
    fake_kube.set_pod("default", NAME, 0, "Failed", exit_code=137)
    fake_kube.set_pod("default", NAME, 1, "Failed", exit_code=1)  # ended, the controller is about to try again
    fake_kube.set_pod("default", NAME, 2, "Running")
    fake_kube.set_job_status("default", NAME, failed="0")
    assert [(task.state, task.exit_code) for task in api.task_states("default", NAME, 3)] == [
        ("killed", 137),
        ("running", None),
        ("running", None),
    ]
    fake_kube.set_job_status("default", NAME, failed="0", failed_reason="DeadlineExceeded")
    assert [task.state for task in api.task_states("default", NAME, 3)] == ["killed", "killed", "killed"]


def test_a_deleted_job_leaves_its_unended_indexes_lost(api: KubeApi, fake_kube: FakeKube) -> None:
    api.create_job(rendered(tasks=3))
    fake_kube.set_pod("default", NAME, 0, "Succeeded", exit_code=0)
    fake_kube.set_pod("default", NAME, 1, "Running")
    api.delete_job("default", NAME)
    assert ("default", NAME) not in fake_kube.jobs
    assert [task.state for task in api.task_states("default", NAME, 3)] == ["succeeded", "lost", "lost"]
    api.delete_job("default", NAME)  # already gone is fine
    assert "DELETE /apis/batch/v1/namespaces/default/jobs/" + NAME in fake_kube.requests


def test_a_second_job_of_the_same_name_is_bad_input(api: KubeApi, fake_kube: FakeKube) -> None:
    api.create_job(rendered())
    with pytest.raises(BadInput, match=f"A job named {NAME} already exists in namespace default"):
        api.create_job(rendered())
    assert len(fake_kube.created) == 1


def test_a_cluster_too_old_for_per_index_retries_gets_no_job(api: KubeApi, fake_kube: FakeKube) -> None:
    fake_kube.unknown_fields.add("backoffLimitPerIndex")
    with pytest.raises(EnvironmentProblem, match="ignores a Job's backoffLimitPerIndex, so the job was deleted"):
        api.create_job(rendered())
    assert fake_kube.jobs == {} and len(fake_kube.created) == 1


def test_a_missing_or_forbidden_namespace(api: KubeApi, fake_kube: FakeKube) -> None:
    with pytest.raises(BadInput, match=r'in namespace nowhere on .*namespaces "nowhere" not found'):
        api.create_job(rendered(namespace="nowhere"))
    fake_kube.namespaces.add("locked")
    fake_kube.forbidden.add("locked")
    with pytest.raises(EnvironmentProblem, match=r"does not allow this user to create the job .* in namespace locked"):
        api.create_job(rendered(namespace="locked"))
    with pytest.raises(EnvironmentProblem, match="does not allow this user to read the job"):
        api.task_states("locked", NAME, 1)


def test_wrong_credentials_are_an_environment_problem(fake_kube: FakeKube, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", fake_kube.url)
    path.write_text(path.read_text().replace("fake-token", "stale-token"))
    with pytest.raises(EnvironmentProblem, match="did not accept the kubeconfig's credentials"):
        connect(path).task_states("default", NAME, 1)


def test_the_fakes_objects_are_what_the_client_deserialises(api: KubeApi, fake_kube: FakeKube) -> None:
    api.create_job(rendered(tasks=2))
    fake_kube.set_pod("default", NAME, 1, "Failed", exit_code=2, message="bye")
    configuration = kube_client.Configuration()
    configuration.host = fake_kube.url
    configuration.api_key = {"BearerToken": "fake-token"}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    typed = kube_client.ApiClient(configuration)
    job = kube_client.BatchV1Api(typed).read_namespaced_job(NAME, "default")
    assert job.spec.completion_mode == "Indexed" and job.spec.backoff_limit_per_index == 1
    [pod] = kube_client.CoreV1Api(typed).list_namespaced_pod("default", label_selector=f"job-name={NAME}").items
    assert pod.status.container_statuses[0].state.terminated.message == "bye"


@pytest.mark.parametrize("kind", ["missing", "directory", "garbage", "not-a-kubeconfig"])
def test_an_unusable_kubeconfig_is_named(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "kubeconfig"
    if kind == "directory":
        path.mkdir()
    elif kind == "garbage":
        path.write_bytes(b"\x00\xff: [unclosed\n  - {")
    elif kind == "not-a-kubeconfig":
        path.write_text("just some text\n")
    with pytest.raises(EnvironmentProblem, match=f"The kubeconfig {path} ") as caught:
        connect(path)
    assert caught.value.exit_code == 3 and caught.value.hint


def test_the_kubeconfig_comes_from_KUBECONFIG(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "elsewhere"))
    with pytest.raises(EnvironmentProblem, match=f"The kubeconfig {tmp_path / 'elsewhere'} does not exist"):
        connect()
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(EnvironmentProblem, match=f"The kubeconfig {tmp_path / '.kube' / 'config'} does not exist"):
        connect()


def test_an_unknown_context_is_named(fake_kube: FakeKube, tmp_path: Path) -> None:
    path = write_kubeconfig(tmp_path / "kubeconfig", fake_kube.url)
    with pytest.raises(EnvironmentProblem, match=f"The kubeconfig {path} cannot be used with the context 'prod'"):
        connect(path, context="prod")


def test_a_server_that_is_down_is_an_environment_problem(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    api = connect(write_kubeconfig(tmp_path / "kubeconfig", url))
    for call in (lambda: api.create_job(rendered()), lambda: api.task_states("default", NAME, 1)):
        with pytest.raises(EnvironmentProblem, match=f"The Kubernetes API server {url} cannot be reached"):
            call()
