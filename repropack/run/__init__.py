"""Running an image on the local engine: the request (command, data mounts, overrides), the output folder
it writes into, read back without trusting any of it. May import image, manifest, engine and below.
"""
