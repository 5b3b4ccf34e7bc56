"""A kubelet for the fake API server (tests/integration/fake_kube.py) that really runs each index of a
created Indexed Job on the Docker engine, as the pod spec says: its image by digest, its numeric user and
group, a read-only root file system with emptyDir volumes as tmpfs, every capability dropped, no privilege
escalation, its env and ``JOB_COMPLETION_INDEX``, a persistentVolumeClaim as a host folder, and the
termination message read from the file the container wrote at ``terminationMessagePath``. The exit code,
the message and the log are then reported through the fake server as a kubelet and the Job controller
would: the pod's terminated state, and the Job's completedIndexes / failedIndexes."""

from __future__ import annotations

import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.integration.fake_kube import FakeKube


def docker_args(pod: dict[str, Any], index: int, claims: dict[str, Path], message: Path) -> list[str]:
    """``docker run`` arguments for one index of the pod template (what a kubelet would set up)."""
    spec = pod["spec"]
    (container,) = spec["containers"]
    security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    args = ["docker", "run", "--rm", "--user", f"{security['runAsUser']}:{security['runAsGroup']}"]
    if security.get("readOnlyRootFilesystem"):
        args.append("--read-only")
    if "ALL" in security.get("capabilities", {}).get("drop", []):
        args += ["--cap-drop", "ALL"]
    if security.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            group = security.get("fsGroup", security["runAsGroup"])
            args += ["--tmpfs", f"{mount['mountPath']}:rw,uid={security['runAsUser']},gid={group},mode=0770"]
        else:
            claim = claims[volume["persistentVolumeClaim"]["claimName"]]
            args += ["-v", f"{claim}:{mount['mountPath']}"]
    for variable in container.get("env", []):
        args += ["-e", f"{variable['name']}={variable['value']}"]
    args += ["-e", f"JOB_COMPLETION_INDEX={index}", "-v", f"{message}:{container['terminationMessagePath']}"]
    return [*args, container["image"], *container.get("args", [])]


def run_job(fake: FakeKube, namespace: str, name: str, claims: dict[str, Path]) -> None:
    """Run every index of the Job (``parallelism`` is ignored: one after another) and report it."""
    job = fake.jobs[namespace, name]
    pod = job["spec"]["template"]
    completed, failed = [], []
    for index in range(job["spec"]["completions"]):
        fake.set_pod(namespace, name, index, "Running")
        with tempfile.TemporaryDirectory() as folder:
            message = Path(folder) / "termination-log"
            message.write_text("")
            message.chmod(0o666)
            done = subprocess.run(
                docker_args(pod, index, claims, message), capture_output=True, text=True, timeout=300, check=False
            )
            text = message.read_text()[:4096]
        phase = "Succeeded" if done.returncode == 0 else "Failed"
        fake.set_pod(
            namespace,
            name,
            index,
            phase,
            exit_code=done.returncode,
            message=text or None,
            log=done.stdout + done.stderr,
        )
        (completed if done.returncode == 0 else failed).append(str(index))
        fake.set_job_status(namespace, name, completed=",".join(completed), failed=",".join(failed))


@contextmanager
def docker_kubelet(fake: FakeKube, claims: dict[str, Path] | None = None) -> Iterator[list[str]]:
    """Run each Job the fake server receives, in a thread, while the block runs; yields the names run."""
    ran: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(0.2):
            for namespace, name in list(fake.jobs):
                if name not in ran:
                    ran.append(name)
                    run_job(fake, namespace, name, claims or {})

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield ran
    finally:
        stop.set()
        thread.join(timeout=300)
