"""Runs on a cluster the lab already has: a plain sbatch script (a Slurm job array, one task per seed and
sweep combination), submitted with the cluster's own tools; each task's status read from marker files it
writes to the shared output folder; its results filed into the run store as one group. Imports run/,
store/, image/ and the shared modules; verify may import it."""
