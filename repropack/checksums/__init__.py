"""Checksums of files and trees: listing a tree (one stat per file), hashing it (large files on a small
thread pool), and the stat cache that spares unchanged files a read. The index format itself lives in
:mod:`repropack.runtime.layout`, shared with the image's runtime. May import errors, cache, files and
runtime.layout only.
"""
