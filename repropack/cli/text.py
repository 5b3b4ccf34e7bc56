"""Human-readable text for reports and manifests (the JSON forms are printed as they are)."""

from __future__ import annotations

from typing import Any

from repropack.runtime.records import Manifest


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def render_verify_report(report: dict[str, Any]) -> str:
    lines = [
        f"image     {report['reference'] or report['image']} ({report['image_id'][:19]})",
        f"manifest  {report['manifest_digest']}",
        "integrity",
    ]
    for name, check in report["integrity"].items():
        lines.append(f"  {'ok  ' if check['passed'] else 'FAIL'} {name}: {check['detail']}")
        lines += [f"         {problem}" for problem in check["problems"]]
    if report.get("command"):
        run = report.get("run") or {}
        seeds = ", ".join(str(r["seed"]) for r in report.get("runs", []))
        gpu = run.get("gpu") or {}
        device = ", ".join(gpu.get("devices") or []) or (run.get("host") or {}).get("cpu") or run.get("device")
        lines.append(
            f"run       {report['command']} with seed {seeds} on {device} "
            f"(python {run.get('python')}, torch {(run.get('torch') or {}).get('version', '-')})"
        )
    if report["metrics"]:
        several = len(report.get("runs", [])) > 1
        label = "mean" if several else "actual"
        lines.append(
            f"  {'metric':<20} {'expected':>12} {label:>12} {'difference':>12} {'tolerance':>12}"
            + (f" {'std':>10}" if several else "")
            + "  result"
        )
        for name, m in report["metrics"].items():
            lines.append(
                f"  {name:<20} {_number(m['expected']):>12} {_number(m['actual']):>12} "
                f"{_number(m['difference']):>12} {_number(m['tolerance']):>12}"
                + (f" {_number(m.get('std')):>10}" if several else "")
                + f"  {'ok' if m['passed'] else 'FAIL'}"
            )
    if report.get("artifacts"):
        lines.append("artifacts (exact, as the paper's original run made them)")
        for path, a in report["artifacts"].items():
            got = ", ".join(f"sha256:{d[:12]}" if d else "missing" for d in a["actual"]) or "not run"
            lines.append(f"  {'ok  ' if a['passed'] else 'FAIL'} {path}: sha256:{a['expected'][:12]} -> {got}")
    if report.get("seeds_had_no_effect"):
        lines.append(
            f"note      seeds had no effect: all {len(report.get('runs', []))} seeds gave exactly the same metrics"
        )
    lines.append("REPRODUCED" if report["reproduced"] else "NOT REPRODUCED")
    return "\n".join(lines)


def count(number: int, noun: str) -> str:
    """``1 file``, ``2 files``: the noun as the number wants it."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def render_manifest_summary(manifest: Manifest, image_id: str) -> str:
    code, deps, base = manifest["code"], manifest["dependencies"], manifest["base"]
    lines = [
        f"experiment  {manifest['experiment']['name']} (seed {manifest['experiment']['seed']}, "
        f"gpu {manifest['experiment']['gpu']})",
        f"image       {image_id}",
        f"manifest    sha256:{manifest['sha256']}",
        f"code        {code['commit']} ({code['folder']}, {count(len(code['files']), 'file')}"
        f"{', DIRTY' if code['dirty'] else ''})",
        f"base        {base['name'] or '-'} {base['reference']} ({base['image_id'] or 'unresolved'})",
        f"packages    {count(deps['count'], 'package')} from {deps['lockfile']} (sha256:{deps['sha256'][:16]}...)",
    ]
    config = manifest.get("config")
    if config:
        lines.append(f"config      {config['file']} (sha256:{config['sha256'][:16]}...)")
    for name, ds in manifest["datasets"].items():
        where = "embedded" if ds["embed"] else "mounted"
        lines.append(f"dataset     {name}: {count(ds['files'], 'file')}, {where}, sha256:{ds['sha256'][:16]}...")
    for name, given in manifest["commands"].items():
        command = " → ".join(given) if isinstance(given, list) else given  # steps, in order
        lines.append(f"command     {name}: {command}")
    for name, e in manifest["metrics"]["expected"].items():
        lines.append(f"expects     {name} = {e['value']} (abs_tol {e['abs_tol']}, rel_tol {e['rel_tol']})")
    return "\n".join(lines)
