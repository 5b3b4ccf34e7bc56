"""The image: the frozen experiment rendered as a Dockerfile (Jinja2), the deterministic build context,
the build pipeline (spec -> freeze -> manifest -> Dockerfile -> context -> engine), and the manifest a
built image carries. May import everything below it: spec, checksums, freeze, manifest, engine.
"""
