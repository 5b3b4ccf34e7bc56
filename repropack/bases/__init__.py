"""Base images: the catalog (names, digests, the torch -> CUDA table) and how a catalog base is made
locally from Debian's packages (debootstrap, no network image pull). May import errors, canonical,
files, cache and engine; nothing from the pipeline stages above it.
"""
