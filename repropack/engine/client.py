"""The connected Docker engine: images (build, pull, tag, import, push, inspect, export) and runs (with
mounts, a sandbox, GPUs and an output cap). The only code that calls the Docker SDK."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import docker.types
import requests.exceptions

from repropack.engine.failures import engine_errors, transient
from repropack.engine.output_cap import OutputWatcher, folder_size
from repropack.engine.streams import ImageFiles, forward_stream
from repropack.engine.types import OPEN, Mount, OutputCap, PushProgress, RunResult, Sandbox
from repropack.errors import EnvironmentProblem


class Engine:
    """A connected Docker engine."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client

    @classmethod
    def connect(cls) -> Engine:
        with engine_errors("Connecting to Docker"):
            client = docker.from_env(timeout=600)
            client.ping()
        return cls(client)

    def version(self) -> str:
        """The engine's version, e.g. ``20.10.24``."""
        with engine_errors("Asking the Docker engine its version"):
            return str(self.client.api.version().get("Version", "unknown"))

    # -- images --------------------------------------------------------------------------------------
    def image_id(self, reference: str) -> str | None:
        """The id of a local image, or None when the engine does not have it."""
        with engine_errors(f"Looking up {reference}"):
            try:
                details = self.client.api.inspect_image(reference)  # type: ignore[no-untyped-call]
            except docker.errors.ImageNotFound:
                return None
        return str(details["Id"])

    def inspect(self, reference: str) -> dict[str, Any]:
        with engine_errors(f"Inspecting {reference}"):
            details: dict[str, Any] = self.client.api.inspect_image(reference)  # type: ignore[no-untyped-call]
            return details

    def layers(self, reference: str) -> list[str]:
        """The image's layer diff ids (content digests of the uncompressed layers), base first."""
        return [str(layer) for layer in (self.inspect(reference).get("RootFS") or {}).get("Layers") or []]

    def labels(self, reference: str) -> dict[str, str]:
        config = self.inspect(reference).get("Config") or {}
        return dict(config.get("Labels") or {})

    def build(self, context: IO[bytes], labels: dict[str, str], on_line: Callable[[str], None]) -> str:
        """Build from a ready-made context tarball; returns the image id. Nothing is tagged here."""
        image_id: str | None = None
        tail: list[str] = []
        with engine_errors("Building the image"):
            stream = self.client.api.build(
                fileobj=context,
                custom_context=True,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                labels=labels,
            )
            for chunk in stream:
                if "error" in chunk:
                    detail = " ".join(line.strip() for line in tail[-5:] if line.strip())
                    shown = f" (last output: {detail})" if detail else ""
                    raise EnvironmentProblem(
                        f"A build step failed: {chunk['error'].strip()}{shown}",
                        hint="Fix the cause above and build again; nothing was tagged.",
                    )
                text = chunk.get("stream")
                if text:
                    for line in text.splitlines():
                        tail = [*tail, line][-20:]
                        on_line(line)
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
        if image_id is None:
            raise EnvironmentProblem("The Docker engine finished the build without reporting an image id.")
        return image_id

    def pull(self, reference: str) -> str:
        """Pull ``reference`` (a registry reference, ideally pinned by digest); returns the image id."""
        with engine_errors(f"Pulling {reference}"):
            self.client.api.pull(reference)
        image_id = self.image_id(reference)
        if image_id is None:
            raise EnvironmentProblem(f"Pulling {reference} did not produce an image.")
        return image_id

    def tag(self, image_id: str, reference: str) -> None:
        repository, _, tag = reference.rpartition(":") if ":" in reference.split("/")[-1] else (reference, "", "")
        with engine_errors(f"Tagging {reference}"):
            self.client.api.tag(image_id, repository, tag or "latest")

    def import_rootfs(self, tarball: Path, reference: str, changes: list[str]) -> str:
        repository, _, tag = reference.rpartition(":")
        with engine_errors(f"Importing {reference}"):
            self.client.api.import_image_from_file(str(tarball), repository=repository, tag=tag, changes=changes)
        image_id = self.image_id(reference)
        if image_id is None:
            raise EnvironmentProblem(f"Importing {reference} did not produce an image.")
        return image_id

    def remove_image(self, reference: str) -> None:
        with engine_errors(f"Removing {reference}"), contextlib.suppress(docker.errors.ImageNotFound):
            self.client.api.remove_image(reference, force=True)

    def read_file(self, image: str, path: str) -> bytes:
        """One file's bytes from an image, without running it (see :meth:`files`)."""
        with self.files(image) as files:
            for _name, _member, content in files.walk(path):
                if content is None:
                    break
                return content.read()
        raise EnvironmentProblem(f"{path} in {image} is missing or not a regular file.")

    @contextlib.contextmanager
    def export(self, image: str) -> Iterator[IO[bytes]]:
        """The image as ``docker save`` writes it (a tar of its layer tars and configuration), streamed;
        the stream seeks forward only (see :class:`ForwardStream`)."""
        with engine_errors(f"Exporting {image}"):
            yield forward_stream(self.client.api.get_image(image, chunk_size=1 << 20))

    @contextlib.contextmanager
    def export_filesystem(self, image: str) -> Iterator[IO[bytes]]:
        """The filesystem a container of ``image`` starts with, as one tar (``docker export`` of a created,
        never started container: the image's layers merged, with the few files the engine puts over every
        container, such as an empty ``/etc/hosts``); the stream seeks forward only."""
        with self._created(image) as container, engine_errors(f"Exporting the files of {image}"):
            yield forward_stream(self.client.api.export(container, chunk_size=1 << 20))

    @contextlib.contextmanager
    def files(self, image: str) -> Iterator[ImageFiles]:
        """Read an image's files from outside (a created, never started container): nothing in the
        image runs, so nothing in it can lie about its own content."""
        with self._created(image) as container:
            yield ImageFiles(self.client.api, container, image)

    @contextlib.contextmanager
    def _created(self, image: str) -> Iterator[str]:
        """The id of a container of ``image`` that is created, never started, and removed afterwards."""
        with engine_errors(f"Reading files of {image}"):
            container = self.client.api.create_container(image, command=["true"], entrypoint=[])
        try:
            yield str(container["Id"])
        finally:
            with engine_errors(f"Cleaning up after reading {image}"), contextlib.suppress(docker.errors.NotFound):
                self.client.api.remove_container(container["Id"], force=True)

    # -- registries ----------------------------------------------------------------------------------
    def push(self, reference: str, on_progress: Callable[[PushProgress], None], attempts: int = 3) -> str:
        """Push a tagged image; returns the manifest digest the registry reported.

        Transient failures are retried (layers already pushed are not sent again); a digest is only
        returned once the registry confirmed the whole push.
        """
        repository, _, tag = reference.rpartition(":")
        last_error = ""
        for attempt in range(1, attempts + 1):
            digest: str | None = None
            with engine_errors(f"Pushing {reference}"):
                for event in self.client.api.push(repository, tag=tag, stream=True, decode=True):
                    if "error" in event:
                        last_error = str(event["error"]).strip()
                        break
                    aux = event.get("aux")
                    if isinstance(aux, dict) and "Digest" in aux:
                        digest = str(aux["Digest"])
                    detail = event.get("progressDetail") or {}
                    on_progress(
                        PushProgress(
                            str(event.get("id", "")),
                            str(event.get("status", "")),
                            detail.get("current"),
                            detail.get("total"),
                        )
                    )
            if digest is not None and not last_error:
                return digest
            if not transient(last_error) or attempt == attempts:
                break
            time.sleep(2**attempt)
            last_error = ""
        raise EnvironmentProblem(
            f"Pushing {reference} failed: {last_error or 'the registry did not confirm the push'}.",
            hint="Check that the registry is reachable and accepts pushes (credentials: docker login).",
        )

    def registry_digest(self, reference: str) -> str | None:
        """The manifest digest a registry serves for ``reference`` (asks the registry, not the local store)."""
        with engine_errors(f"Asking the registry about {reference}"):
            try:
                found = self.client.api.inspect_distribution(reference)  # type: ignore[no-untyped-call]
            except docker.errors.NotFound:
                return None
        return str((found.get("Descriptor") or {}).get("digest") or "") or None

    def repo_digests(self, image: str) -> list[str]:
        return sorted(str(d) for d in self.inspect(image).get("RepoDigests") or [])

    # -- containers ----------------------------------------------------------------------------------
    def run(
        self,
        image: str,
        args: list[str],
        *,
        mounts: list[Mount],
        environment: dict[str, str],
        user: str | None,
        gpus: bool,
        on_line: Callable[[str], None],
        sandbox: Sandbox = OPEN,
        output_cap: OutputCap | None = None,
    ) -> RunResult:
        """Run ``image`` with ``args`` to completion, streaming its output; the container is removed after.

        With ``output_cap``, no file the container writes may outgrow the cap (``fsize`` limit), and the
        container is killed once the folder holds more (see :mod:`repropack.engine.output_cap`)."""
        device_requests = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpus else None
        binds: dict[str, Mapping[str, str]] = {
            m.source: {"bind": m.target, "mode": "ro" if m.read_only else "rw"} for m in mounts
        }
        with engine_errors(f"Running {image}"):
            host_config = self.client.api.create_host_config(
                binds=binds,
                device_requests=device_requests,
                network_mode="bridge" if sandbox.network else "none",
                cap_drop=["ALL"] if sandbox.drop_capabilities else None,
                security_opt=["no-new-privileges"] if sandbox.drop_capabilities else None,
                read_only=sandbox.read_only_root,
                tmpfs={"/tmp": "rw,nosuid,nodev,size=4g"} if sandbox.read_only_root else None,
                mem_limit=sandbox.memory,
                pids_limit=sandbox.pids,
                ulimits=[docker.types.Ulimit(name="fsize", soft=output_cap.max_bytes, hard=output_cap.max_bytes)]
                if output_cap
                else None,
            )
            try:
                container = self.client.api.create_container(
                    image,
                    command=args,
                    environment=environment,
                    user=user or "",
                    host_config=host_config,
                )
            except docker.errors.ImageNotFound:
                raise EnvironmentProblem(
                    f"The image {image} is not on this Docker engine.",
                    hint="Build it with 'repropack build', or pull it.",
                ) from None
            cid = container["Id"]
            tail: list[str] = []
            watcher = self._output_watcher(cid, output_cap)
            try:
                try:
                    self.client.api.start(cid)
                except docker.errors.APIError as exc:
                    if gpus and "gpu" in str(exc).lower():
                        raise EnvironmentProblem(
                            f"The Docker engine cannot give containers a GPU (--gpus all): {exc.explanation or exc}.",
                            hint="Install the NVIDIA Container Toolkit, or run without --gpus.",
                        ) from None
                    raise
                if watcher:
                    watcher.start()
                pending = ""
                for chunk in self.client.api.logs(cid, stream=True, follow=True):
                    pending += chunk.decode(errors="replace")
                    *lines, pending = pending.split("\n")
                    for line in lines:
                        tail = [*tail, line][-20:]
                        on_line(line)
                if pending:
                    tail = [*tail, pending][-20:]
                    on_line(pending)
                status = self.client.api.wait(cid)
                state = self.client.api.inspect_container(cid)["State"]
            finally:
                if watcher:
                    watcher.close()
                with contextlib.suppress(docker.errors.APIError):
                    self.client.api.remove_container(cid, force=True)
        return RunResult(
            exit_code=int(status.get("StatusCode", 1)),
            output_tail=tail,
            oom_killed=bool(state.get("OOMKilled")),
            output_exceeded=watcher is not None and watcher.check(),  # once more, now that nothing writes
        )

    def _output_watcher(self, cid: str, output_cap: OutputCap | None) -> OutputWatcher | None:
        if output_cap is None:
            return None

        def stop() -> None:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                self.client.api.kill(cid)

        folder = output_cap.folder
        before = folder_size(folder)  # `run` may reuse a folder: the cap is on what this run adds
        return OutputWatcher(lambda: folder_size(folder) - before, output_cap.max_bytes, stop)
