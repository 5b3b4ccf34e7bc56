"""Make ``import linreg`` work when pytest runs from the repository root (inside the image the commands
run from the recipe folder, as ``python -m linreg.train``)."""

import sys
from pathlib import Path

RECIPE_DIR = str(Path(__file__).resolve().parent)

if RECIPE_DIR not in sys.path:
    sys.path.insert(0, RECIPE_DIR)
