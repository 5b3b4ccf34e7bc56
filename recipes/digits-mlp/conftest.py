"""Make ``import digits_mlp`` work when pytest runs from the repository root.

The recipe is not an installed package: inside the image its commands run from the recipe
folder (``python -m digits_mlp.train``). Under pytest the working directory is the repository
root instead, so this file puts the recipe folder first on ``sys.path``.
"""

import sys
from pathlib import Path

RECIPE_DIR = str(Path(__file__).resolve().parent)

if RECIPE_DIR not in sys.path:
    sys.path.insert(0, RECIPE_DIR)
