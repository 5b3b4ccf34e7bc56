"""The paper manifest: what a researcher attaches to a paper, and how it renders (json, markdown, latex).

It names the published image by digest, carries the image's manifest, summarizes what was frozen, and
gives the exact command that verifies it. Same image => same bytes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from repropack.canonical import canonical_json
from repropack.errors import BadInput
from repropack.manifest.seal import digest_of
from repropack.runtime.records import Manifest

SCHEMA = "repropack.manifest.paper/v1"
FORMATS = ("json", "markdown", "latex")
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
DIGEST_REFERENCE = re.compile(r"[^@\s]+@sha256:[0-9a-f]{64}")


def build_paper(
    manifest: Manifest, image_id: str, reference: str | None, run: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The paper manifest; with ``run`` (an original run's run.json, of this very image), also that run's
    command, seed and artifact digests, which `verify` then compares exactly."""
    if run is not None and run.get("manifest_sha256") != manifest["sha256"]:
        raise BadInput(
            "The run.json given with --run is not a run of this image (its manifest_sha256 differs).",
            hint="Give the run.json that this image's run wrote into its output folder.",
        )
    target = reference or image_id
    paper = {
        "schema": SCHEMA,
        "image": {"reference": reference, "id": image_id},
        "experiment": manifest["experiment"]["name"],
        "summary": summarize(manifest),
        "verify": f"repropack verify {target}",
        "manifest": manifest,
    }
    if run is not None:
        given = run.get("artifacts")
        artifacts: dict[str, Any] = given if isinstance(given, dict) else {}
        paper["run"] = {
            "command": str(run.get("command")),
            "seed": run.get("seed"),
            "artifacts": {str(k): str(v) for k, v in sorted(artifacts.items())},
        }
    return paper


def summarize(manifest: Manifest) -> dict[str, Any]:
    config = manifest.get("config")
    return {
        "code": {key: manifest["code"][key] for key in ("commit", "folder", "source", "dirty")},
        "base": {key: manifest["base"][key] for key in ("name", "reference", "image_id")},
        "lockfile": {"sha256": manifest["dependencies"]["sha256"], "packages": manifest["dependencies"]["count"]},
        "config": {"file": config["file"], "sha256": config["sha256"]} if config else None,
        "datasets": {name: ds["sha256"] for name, ds in manifest["datasets"].items()},
        "datasets_sha256": manifest["datasets_sha256"],
        "commands": manifest["commands"],
        "expected": manifest["metrics"]["expected"],
        "manifest_sha256": manifest["sha256"],
    }


def parse_paper(data: bytes, source: str) -> dict[str, Any]:
    remake = "Write it again with 'repropack manifest IMAGE_OR_REF --output FILE', or pass the image reference instead."
    try:
        paper = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadInput(f"The paper manifest {source} is not UTF-8 text (byte {exc.start}).", hint=remake) from None
    except json.JSONDecodeError as exc:
        raise BadInput(
            f"The paper manifest {source} is not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}.",
            hint=remake,
        ) from None
    if not isinstance(paper, dict) or paper.get("schema") != SCHEMA or not isinstance(paper.get("manifest"), dict):
        raise BadInput(f"{source} is not a paper manifest (schema {SCHEMA}).", hint=remake)
    image = paper.get("image")
    if not isinstance(image, dict):
        raise BadInput(f"The paper manifest {source} names no image (image.reference or image.id).", hint=remake)
    _check_binding(image, source)
    return paper


def _check_binding(image: dict[str, Any], source: str) -> None:
    """The paper binds the image from outside: by its id, or by a registry digest (a tag binds nothing)."""
    image_id, reference = image.get("id"), image.get("reference")
    wrong = []
    if image_id not in (None, "") and not (isinstance(image_id, str) and IMAGE_ID.fullmatch(image_id)):
        wrong.append(f"image.id is {image_id!r}, not sha256:<64 hex digits>")
    if reference not in (None, "") and not (isinstance(reference, str) and DIGEST_REFERENCE.fullmatch(reference)):
        wrong.append(f"image.reference is {reference!r}, not pinned by digest (REGISTRY/REPO@sha256:<64 hex digits>)")
    make = (
        "Make a proper one from the image itself: repropack manifest IMAGE_OR_REF --output FILE "
        "(it records the image id, and the digest reference once the image is published)."
    )
    if wrong:
        raise BadInput(f"The paper manifest {source} does not bind its image: {'; '.join(wrong)}.", hint=make)
    if not image_id and not reference:
        raise BadInput(
            f"The paper manifest {source} does not bind its image: it has neither image.id (sha256:<64 hex digits>) "
            "nor an image.reference pinned by digest (REGISTRY/REPO@sha256:...), so nothing could show that the "
            "image verify checks is the one the paper cites.",
            hint=make,
        )


def paper_manifest_digest(paper: dict[str, Any]) -> str:
    """The digest of the manifest as the paper holds it (recomputed: an edited copy shows)."""
    return digest_of(paper["manifest"])


def render(paper: dict[str, Any], fmt: str) -> bytes:
    if fmt == "json":
        return canonical_json(paper)
    rows = _rows(paper)
    if fmt == "markdown":
        return _markdown(paper, rows).encode()
    if fmt == "latex":
        return _latex(paper, rows).encode()
    raise BadInput(f"--format is one of {', '.join(FORMATS)}, not '{fmt}'.")


def _tolerance(spec: dict[str, Any]) -> str:
    parts = []
    if spec["abs_tol"]:
        parts.append(f"± {spec['abs_tol']:g}")
    if spec["rel_tol"]:
        parts.append(f"± {spec['rel_tol'] * 100:g}%")
    return " ".join(parts) or "exact"


Row = tuple[str, str, str]  # what, the value (set as code), a note in words ("" for none)


def _rows(paper: dict[str, Any]) -> list[Row]:
    s = paper["summary"]
    rows: list[Row] = [
        (
            "Image",
            paper["image"]["reference"] or paper["image"]["id"],
            "" if paper["image"]["reference"] else "(not published)",
        ),
        (
            "Code",
            f"commit {s['code']['commit']}" + (f" of {s['code']['source']}" if s["code"]["source"] else ""),
            "(with uncommitted changes)" if s["code"]["dirty"] else "",
        ),
        ("Base image", f"{s['base']['reference']} ({s['base']['image_id'] or 'unresolved'})", ""),
        ("Dependencies", f"lockfile sha256:{s['lockfile']['sha256']}", f"({s['lockfile']['packages']} packages)"),
    ]
    if s["config"]:
        rows.append(("Config", f"{s['config']['file']}, sha256:{s['config']['sha256']}", ""))
    rows += [(f"Dataset {name}", f"sha256:{digest}", "") for name, digest in s["datasets"].items()]
    rows += [
        (f"Command {name}", " then ".join(given) if isinstance(given, list) else given, "")
        for name, given in s["commands"].items()
    ]
    rows += [(f"Expected {name}", f"{spec['value']:g} {_tolerance(spec)}", "") for name, spec in s["expected"].items()]
    run = paper.get("run") or {}
    rows += [(f"Artifact {path}", f"sha256:{digest}", "") for path, digest in (run.get("artifacts") or {}).items()]
    rows.append(("Manifest", f"sha256:{s['manifest_sha256']}", ""))
    return rows


def _markdown(paper: dict[str, Any], rows: list[Row]) -> str:
    lines = [f"**Reproducibility: {paper['experiment']}**", "", "| | |", "| --- | --- |"]
    escaped = [(key, value.replace("|", "\\|"), note) for key, value, note in rows]
    lines += [f"| {key} | `{value}`{' ' + note if note else ''} |" for key, value, note in escaped]
    lines += ["", f"Verify: `{paper['verify']}`", ""]
    return "\n".join(lines)


LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def _latex(paper: dict[str, Any], rows: list[Row]) -> str:
    lines = [
        "% Reproducibility appendix generated by repropack. Needs no extra packages.",
        "\\begin{table}[h]",
        "\\centering\\small",
        "\\begin{tabular}{@{}lp{0.72\\linewidth}@{}}",
        "\\hline",
    ]
    lines += [
        f"{_tex(key)} & \\texttt{{{_tex(value)}}}{' ' + _tex(note) if note else ''} \\\\" for key, value, note in rows
    ]
    lines += [
        "\\hline",
        "\\end{tabular}",
        f"\\caption{{Reproducibility of {_tex(paper['experiment'])}. Verify with "
        f"\\texttt{{{_tex(paper['verify'])}}}.}}",
        "\\end{table}",
        "",
    ]
    return "\n".join(lines)
