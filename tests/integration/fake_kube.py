"""A fake Kubernetes API server: just the calls repropack's Kubernetes client makes, over plain HTTP on loopback.

It stores the Jobs it is sent and answers with proper API objects (kind, apiVersion, metadata) that the
official client deserialises; the test sets the pods and the Jobs' statuses with :meth:`FakeKube.set_pod` and
:meth:`FakeKube.set_job_status`, as the Job controller and the kubelet would. Requests without the kubeconfig's
token are refused (401), so a passing test has read the credentials too.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

TOKEN = "fake-token"
CREATED = datetime(2025, 1, 1, tzinfo=UTC)
JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+)/log)?$")


def _time(offset: int) -> str:
    return (CREATED + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeKube:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.namespaces = {"default"}
        self.forbidden: set[str] = set()  # namespaces where every request is refused (403)
        self.unknown_fields: set[str] = set()  # fields of a Job's spec dropped on create, as an older server does
        self.created: list[dict[str, Any]] = []  # every Job body received, as sent
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.logs: dict[tuple[str, str], str] = {}
        self.requests: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def set_job_status(
        self, namespace: str, job: str, completed: str = "", failed: str = "", failed_reason: str | None = None
    ) -> None:
        """Set the Job's completedIndexes and failedIndexes; ``failed_reason`` adds a Failed condition."""
        with self.lock:
            status: dict[str, Any] = {"completedIndexes": completed, "failedIndexes": failed}
            if failed_reason:
                status["conditions"] = [{"type": "Failed", "status": "True", "reason": failed_reason}]
            self.jobs[namespace, job]["status"] = status

    def set_pod(
        self,
        namespace: str,
        job: str,
        index: int,
        phase: str,
        exit_code: int | None = None,
        message: str | None = None,
        reason: str | None = None,
        attempt: int = 0,
        disrupted: bool = False,
        log: str = "",
    ) -> str:
        """Create or replace the pod of ``job``'s ``index`` for its ``attempt`` (a later attempt is newer);
        ``exit_code`` ends its container, ``disrupted`` adds a DisruptionTarget condition. Returns its name."""
        name = f"{job}-{index}-{attempt}"
        container: dict[str, Any] = {"name": "task", "image": "img", "imageID": "", "ready": False, "restartCount": 0}
        if exit_code is not None:
            ended = {"exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}
            container["state"] = {"terminated": {**ended, **({"message": message} if message else {})}}
        elif phase == "Running":
            container["state"] = {"running": {"startedAt": _time(attempt * 60 + 1)}}
        else:
            container["state"] = {"waiting": {"reason": "ContainerCreating"}}
        status: dict[str, Any] = {"phase": phase, "containerStatuses": [container]}
        if reason:
            status["reason"] = reason
        if disrupted:
            status["conditions"] = [{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI"}]
        labels = {
            "job-name": job,
            "batch.kubernetes.io/job-name": job,
            "batch.kubernetes.io/job-completion-index": str(index),
        }
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"pod/{namespace}/{name}")),
                "creationTimestamp": _time(attempt * 60),
                "labels": labels,
                "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": job,
                        "uid": _uid(namespace, job),
                        "controller": True,
                    }
                ],
            },
            "spec": {"containers": [{"name": "task", "image": "img"}], "restartPolicy": "Never"},
            "status": status,
        }
        with self.lock:
            self.pods[namespace, name] = pod
            self.logs[namespace, name] = log
        return name

    def answer(self, method: str, target: str, body: bytes, token: str | None) -> tuple[int, Any]:
        url = urlsplit(target)
        with self.lock:
            self.requests.append(f"{method} {url.path}")
            if token != f"Bearer {TOKEN}":
                return 401, _status(401, "Unauthorized", "Unauthorized")
            jobs, pods = JOBS.match(url.path), PODS.match(url.path)
            namespace = (jobs or pods).group(1) if (jobs or pods) else ""
            if namespace in self.forbidden:
                return 403, _status(403, "Forbidden", f'jobs is forbidden in the namespace "{namespace}"')
            if jobs and method == "POST" and jobs.group(2) is None:
                return self._create(namespace, json.loads(body))
            if jobs and jobs.group(2):
                return self._job(method, namespace, jobs.group(2))
            if pods and method == "GET" and pods.group(2):
                if (namespace, pods.group(2)) not in self.pods:
                    return 404, _status(404, "NotFound", f'pods "{pods.group(2)}" not found')
                return 200, self.logs[namespace, pods.group(2)]
            if pods and method == "GET":
                selector = parse_qs(url.query).get("labelSelector", [""])[0]
                key, _, value = selector.partition("=")
                items = [
                    pod
                    for (space, _name), pod in sorted(self.pods.items())
                    if space == namespace and pod["metadata"]["labels"].get(key) == value
                ]
                return 200, {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": "1"},
                    "items": items,
                }
        return 404, _status(404, "NotFound", f"the server could not find the requested resource ({method} {url.path})")

    def _create(self, namespace: str, job: dict[str, Any]) -> tuple[int, Any]:
        name = job["metadata"]["name"]
        if namespace not in self.namespaces:
            return 404, _status(404, "NotFound", f'namespaces "{namespace}" not found')
        if (namespace, name) in self.jobs:
            return 409, _status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
        self.created.append(copy.deepcopy(job))
        stored = copy.deepcopy(job)
        for field in self.unknown_fields:
            stored["spec"].pop(field, None)
        stored["metadata"].update(uid=_uid(namespace, name), creationTimestamp=_time(0), resourceVersion="1")
        stored["status"] = {}
        self.jobs[namespace, name] = stored
        return 201, stored

    def _job(self, method: str, namespace: str, name: str) -> tuple[int, Any]:
        if (namespace, name) not in self.jobs:
            return 404, _status(404, "NotFound", f'jobs.batch "{name}" not found')
        if method == "DELETE":
            del self.jobs[namespace, name]
            return 200, {**_status(200, "", ""), "status": "Success"}
        return 200, self.jobs[namespace, name]


def _uid(namespace: str, job: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"job/{namespace}/{job}"))


def _handler(fake: FakeKube) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            code, answer = fake.answer(self.command, self.path, body, self.headers.get("Authorization"))
            text = answer if isinstance(answer, str) else json.dumps(answer)
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if isinstance(answer, str) else "application/json")
            self.send_header("Content-Length", str(len(text.encode())))
            self.end_headers()
            self.wfile.write(text.encode())

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextlib.contextmanager
def running_fake_kube() -> Iterator[FakeKube]:
    fake = FakeKube()
    thread = threading.Thread(target=fake.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def fake_kube() -> Iterator[FakeKube]:
    with running_fake_kube() as fake:
        yield fake


def write_kubeconfig(path: Path, server_url: str, namespace: str = "default") -> Path:
    """A kubeconfig whose one context is the fake server, with its token."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "fake", "cluster": {"server": server_url}}],
        "users": [{"name": "fake", "user": {"token": TOKEN}}],
        "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake", "namespace": namespace}}],
        "current-context": "fake",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=True))
    return path
