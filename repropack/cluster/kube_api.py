"""The edge to a Kubernetes cluster: create, read and delete one Job, read its pods' states and logs.

It wraps the official ``kubernetes`` client, an optional extra (``pip install 'repropack[kubernetes]'``),
imported only here and only when a cluster is used, so mypy's result and the CLI's start-up are the same
without it. Objects are read as the API's own JSON (plain dicts, as the Job is written), and every way the
kubeconfig or the cluster can fail becomes one clear error naming the file or the server.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml

from repropack.cluster.kubernetes import CONTAINER, parse_indexes
from repropack.errors import BadInput, EnvironmentProblem, ReproError

TIMEOUT = (10, 60)  # seconds to connect, to read one answer
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
LOST_REASONS = {"Evicted", "NodeLost", "DeletionByPodGC"}
KILLED_CODES = {137, 143}  # SIGKILL, SIGTERM: the task was stopped, not failed on its own
INSTALL = "Install the extra: pip install 'repropack[kubernetes]'."


@dataclass(frozen=True)
class KubeTask:
    index: int
    state: str  # queued | running | succeeded | failed | killed | lost
    exit_code: int | None
    message: str | None  # the termination message the task wrote (see parse_termination_message)
    pod: str | None


def _kubernetes() -> Any:
    try:
        return importlib.import_module("kubernetes")
    except ImportError:
        raise EnvironmentProblem(
            "The Kubernetes client is not installed, so nothing can be sent to a Kubernetes cluster.", hint=INSTALL
        ) from None


def _kubeconfig_files(kubeconfig: Path | None) -> list[Path]:
    if kubeconfig is not None:
        return [kubeconfig]
    named = [Path(part) for part in os.environ.get("KUBECONFIG", "").split(os.pathsep) if part]
    return named or [Path.home() / ".kube" / "config"]


def _check_kubeconfig(path: Path) -> None:
    hint = "Pass --kubeconfig FILE, set KUBECONFIG, or copy the cluster's kubeconfig to ~/.kube/config."
    if not path.exists():
        raise EnvironmentProblem(f"The kubeconfig {path} does not exist.", hint=hint)
    if path.is_dir():
        raise EnvironmentProblem(f"The kubeconfig {path} is a directory, not a file.", hint=hint)
    try:
        config = yaml.safe_load(path.read_bytes())
    except OSError as exc:
        raise EnvironmentProblem(f"The kubeconfig {path} cannot be read: {exc.strerror}.", hint=hint) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise EnvironmentProblem(f"The kubeconfig {path} is not valid YAML{where}.", hint=hint) from None
    if not isinstance(config, dict) or not isinstance(config.get("clusters"), list):
        raise EnvironmentProblem(f"The kubeconfig {path} is not a kubeconfig: it names no clusters.", hint=hint)


def connect(kubeconfig: Path | None = None, context: str | None = None) -> KubeApi:
    """A client for the cluster of ``context`` (else the current one) in ``kubeconfig``, else $KUBECONFIG,
    else ~/.kube/config. Nothing is sent to the cluster yet."""
    kube = _kubernetes()
    files = _kubeconfig_files(kubeconfig)
    for path in files:
        _check_kubeconfig(path)
    named = ", ".join(str(path) for path in files)
    try:
        client = kube.config.new_client_from_config(
            config_file=os.pathsep.join(str(path) for path in files), context=context, persist_config=False
        )
    except (kube.config.ConfigException, OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        said = str(exc).strip().rstrip(".")
        raise EnvironmentProblem(
            f"The kubeconfig {named} cannot be used{f' with the context {context!r}' if context else ''}: {said}.",
            hint="Check it with: kubectl config view --minify",
        ) from None
    return KubeApi(client, kube)


class KubeApi:
    """One cluster, through one configured client (see :func:`connect`)."""

    def __init__(self, client: Any, kube: Any) -> None:
        self._client = client
        self._kube = kube
        self.server = str(client.configuration.host)

    def create_job(self, job: dict[str, Any]) -> None:
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        batch = self._kube.client.BatchV1Api(self._client)
        created = self._call(
            f"create the job {name}",
            namespace,
            lambda: batch.create_namespaced_job(namespace, job, _preload_content=False, _request_timeout=TIMEOUT),
            conflict=BadInput(
                f"A job named {name} already exists in namespace {namespace} on {self.server}.",
                hint=f"Submit under another group name, or delete it first: kubectl delete job {name} -n {namespace}",
            ),
        )
        if "backoffLimitPerIndex" not in (created.get("spec") or {}):  # an older cluster drops what it lacks
            self.delete_job(namespace, name)
            raise EnvironmentProblem(
                f"The cluster at {self.server} ignores a Job's backoffLimitPerIndex, so the job was deleted again.",
                hint="Kubernetes 1.29 or later runs it (the JobBackoffLimitPerIndex feature).",
            )

    def task_states(self, namespace: str, name: str, tasks: int) -> list[KubeTask]:
        """Each index's state, from the Job's status and the newest pod of each index."""
        batch = self._kube.client.BatchV1Api(self._client)
        core = self._kube.client.CoreV1Api(self._client)
        job = self._call(
            f"read the job {name}",
            namespace,
            lambda: batch.read_namespaced_job(name, namespace, _preload_content=False, _request_timeout=TIMEOUT),
            missing=None,
        )
        pods = self._call(
            f"list the pods of the job {name}",
            namespace,
            lambda: core.list_namespaced_pod(
                namespace, label_selector=f"job-name={name}", _preload_content=False, _request_timeout=TIMEOUT
            ),
            missing={},
        )
        return task_states_from(job, pods.get("items") or [], tasks)

    def log(self, namespace: str, pod: str) -> str:
        """The task container's log; "" when the pod is gone or has not started."""
        core = self._kube.client.CoreV1Api(self._client)
        response = self._call(
            f"read the log of the pod {pod}",
            namespace,
            lambda: core.read_namespaced_pod_log(
                pod, namespace, container=CONTAINER, _preload_content=False, _request_timeout=TIMEOUT
            ),
            missing=None,
            raw=True,
            absent=(400, 404),
        )
        return response.decode("utf-8", errors="replace") if response else ""

    def delete_job(self, namespace: str, name: str) -> None:
        """Delete the Job and, in the background, its pods; a Job already gone is fine."""
        batch = self._kube.client.BatchV1Api(self._client)
        self._call(
            f"delete the job {name}",
            namespace,
            lambda: batch.delete_namespaced_job(
                name, namespace, propagation_policy="Background", _preload_content=False, _request_timeout=TIMEOUT
            ),
            missing=None,
        )

    def _call(
        self,
        action: str,
        namespace: str,
        request: Callable[[], Any],
        *,
        missing: Any = ...,
        conflict: ReproError | None = None,
        raw: bool = False,
        absent: tuple[int, ...] = (404,),
    ) -> Any:
        """Send one request and read its JSON (``raw``: its bytes); ``missing`` is the answer to a 404 (or
        another of ``absent``) where that is fine. Every other failure is raised as one clear error."""
        try:
            data = request().data
        except self._kube.client.exceptions.ApiException as exc:
            if exc.status in absent and missing is not ...:
                return missing
            if exc.status == 409 and conflict is not None:
                raise conflict from None
            raise self._refused(exc, action, namespace) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise EnvironmentProblem(
                f"The Kubernetes API server {self.server} cannot be reached to {action}: {_reason(exc)}.",
                hint="Check that the cluster is up and that the kubeconfig names it (kubectl cluster-info).",
            ) from None
        if raw:
            return bytes(data)
        try:
            answer = json.loads(data)
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise EnvironmentProblem(f"The Kubernetes API server {self.server} gave no JSON object to {action}.")
        return answer

    def _refused(self, exc: Any, action: str, namespace: str) -> ReproError:
        try:
            said = json.loads(exc.body or "{}").get("message") or exc.reason
        except (ValueError, AttributeError):
            said = exc.reason
        where = f"in namespace {namespace} on {self.server}"
        if exc.status == 401:
            return EnvironmentProblem(
                f"The cluster at {self.server} did not accept the kubeconfig's credentials to {action}: {said}.",
                hint="Log in to the cluster again, then retry.",
            )
        if exc.status == 403:
            return EnvironmentProblem(
                f"The cluster does not allow this user to {action} {where}: {said}.",
                hint="Ask the cluster's admins for a role that may manage Jobs and read pods there, or pick "
                "another namespace with --namespace.",
            )
        if exc.status == 404:
            return BadInput(
                f"Cannot {action} {where}: {said}.",
                hint=f"Check the namespace (kubectl get namespace {namespace}) or pick another with --namespace.",
            )
        return EnvironmentProblem(f"The cluster refused to {action} {where} ({exc.status} {exc.reason}): {said}.")


def _reason(exc: BaseException) -> str:
    """The root of a connection failure ("Connection refused", "Name or service not known"), else the error."""
    waiting, seen = [exc], set()
    while waiting:
        error = waiting.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        links = (getattr(error, "reason", None), error.__cause__, error.__context__)
        waiting.extend(link for link in links if isinstance(link, BaseException))
    return str(exc).rstrip(".")


def _newest(pods: list[dict[str, Any]]) -> dict[str, Any]:
    """The newest of one index's pods: the latest created; at the same second, one still pending or running."""

    def age(pod: dict[str, Any]) -> tuple[str, bool, str]:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        active = status.get("phase") in ("Pending", "Running")
        return str(meta.get("creationTimestamp") or ""), active, str(meta.get("name") or "")

    return max(pods, key=age)


def _index(pod: dict[str, Any]) -> int | None:
    meta = pod.get("metadata") or {}
    for source in (meta.get("annotations"), meta.get("labels")):
        value = (source or {}).get(INDEX_KEY)
        if isinstance(value, str) and value.isdigit():
            return int(value)
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("name") == CONTAINER:
            return ((container.get("state") or {}).get("terminated")) or {}
    return {}


def _lost(pod: dict[str, Any]) -> bool:
    """Failed for its node's sake (evicted, node gone, garbage-collected, preempted), not its own."""
    status = pod.get("status") or {}
    disrupted = any(
        condition.get("type") == "DisruptionTarget" and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
    return status.get("phase") == "Failed" and (status.get("reason") in LOST_REASONS or disrupted)


def task_states_from(job: dict[str, Any] | None, pods: list[dict[str, Any]], tasks: int) -> list[KubeTask]:
    """Each index's state from the Job as read (None: it is gone) and the pods labelled with its name.

    Ended indexes come from the Job's ``completedIndexes`` and ``failedIndexes``; an index not ended is
    running or queued by its newest pod (queued again when that pod was lost to its node: the Job controller
    replaces it, uncounted), and killed once the
    Job itself has failed (its time limit). With the Job gone, an index whose pod succeeded has succeeded and
    every other is lost.
    """
    status = (job or {}).get("status") or {}
    uid = ((job or {}).get("metadata") or {}).get("uid")
    completed = parse_indexes(status.get("completedIndexes"))
    failed = parse_indexes(status.get("failedIndexes"))
    job_failed = any(
        condition.get("type") in ("Failed", "FailureTarget") and condition.get("status") == "True"
        for condition in status.get("conditions") or []
    )
    by_index: dict[int, list[dict[str, Any]]] = {}
    for found in pods:
        owners = {owner.get("uid") for owner in (found.get("metadata") or {}).get("ownerReferences") or []}
        index = _index(found)
        if index is not None and (uid is None or not owners or uid in owners):  # not a pod of an older same-name Job
            by_index.setdefault(index, []).append(found)
    states = []
    for index in range(tasks):
        pod = _newest(by_index[index]) if index in by_index else None
        phase = ((pod or {}).get("status") or {}).get("phase")
        ended = _terminated(pod) if pod else {}
        code = ended.get("exitCode") if isinstance(ended.get("exitCode"), int) else None
        if job is None:
            state = "succeeded" if phase == "Succeeded" else "lost"
        elif index in completed:
            state = "succeeded"
        elif index in failed:
            state = "killed" if code in KILLED_CODES else "failed"
        elif job_failed:
            state = "killed"
        elif pod is None or phase == "Pending":
            state = "queued"
        elif _lost(pod):
            state = "queued"  # the Job controller replaces a pod lost to its node (podFailurePolicy: Ignore)
        else:
            state = "running"  # running, or ended and about to be tried again or recorded
        if state in ("queued", "running", "lost"):
            code = None
        message = ended.get("message") if state not in ("queued", "running") else None
        name = (pod or {}).get("metadata", {}).get("name")
        states.append(KubeTask(index, state, code, message if isinstance(message, str) else None, name))
    return states
