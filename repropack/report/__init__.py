"""The run report: one self-contained, byte-stable HTML page over recorded runs (a verdict against the
manifest's expected metrics, a metrics table, inline SVG plots of each metric and its training curves, the
runs, what differs between them and how to re-run each), citable because the same runs give the same bytes.
"""
