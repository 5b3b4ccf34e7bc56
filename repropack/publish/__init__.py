"""Publishing: push an image to a registry and pin the result by the pushed digest. May import image,
spec, engine and the shared top-level modules.
"""
