"""The manifest: the frozen facts of one experiment as canonical, sealed JSON (:mod:`.seal`), its typed
records and one parser (:mod:`.model`), and the paper manifest a researcher attaches to a paper
(:mod:`.paper`). May import freeze, checksums, runtime.layout and the shared top-level modules.
"""
