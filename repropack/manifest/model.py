"""Reading a manifest on the host: its bytes checked for schema, self-digest and structure, as a typed Manifest.

The structure (every key, every JSON type, nested records too) is checked by the one parser the image's
runtime uses as well, :func:`repropack.runtime.records.parse_manifest_document`; here its complaint becomes
bad input, like every other reason a manifest cannot be read.
"""

from __future__ import annotations

import json

from repropack.errors import BadInput
from repropack.manifest.seal import SCHEMA, digest_of
from repropack.runtime.records import Manifest, ManifestError, parse_manifest_document

# Every top-level key a manifest of this version holds ('schema' is checked first, on its own).
REQUIRED_KEYS = tuple(sorted(set(Manifest.__required_keys__) - {"schema"}))


def parse_manifest(data: bytes, source: str, *, check_digest: bool = True) -> Manifest:
    """Read a manifest and check its schema, (unless told not to) its self-digest, and its structure."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadInput(f"{source} is not a repropack manifest: not JSON ({exc}).") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise BadInput(f"{source} is not a repropack manifest (schema {SCHEMA}).")
    if check_digest and document.get("sha256") != digest_of(document):
        raise BadInput(f"{source} has been modified: its content does not match its own sha256.")
    missing = sorted(set(REQUIRED_KEYS) - set(document))
    if missing:
        raise BadInput(
            f"{source} lacks {', '.join(missing)}: it was written by another version of repropack.",
            hint="Rebuild the image with this version.",
        )
    try:
        return parse_manifest_document(document, source)
    except ManifestError as exc:
        raise BadInput(
            f"{source} is not a well-formed repropack manifest: {exc.problem}.",
            hint="Rebuild the image with this version of repropack.",
        ) from None
