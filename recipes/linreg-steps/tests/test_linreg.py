"""The recipe's own tests, on a tiny slice: standard library only, so `commands.test` runs them inside the
image (python -m unittest) and pytest runs them here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

RECIPE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(RECIPE))  # `python -m unittest discover -s tests` starts in tests/

from linreg.prepare import prepare, read_points  # noqa: E402
from linreg.train import fit, mse  # noqa: E402

# In the image the data is the shipped dataset (REPRO_DATA_POINTS), not a file of the code.
POINTS = os.environ.get("REPRO_DATA_POINTS") or str(RECIPE / "data" / "points.csv")
SLICE = read_points(POINTS)[:12]


class PrepareTests(unittest.TestCase):
    def test_standardized_x_has_mean_zero_and_unit_spread(self) -> None:
        prepared, scaling = prepare(SLICE)
        xs = [x for x, _ in prepared]
        self.assertAlmostEqual(sum(xs) / len(xs), 0.0, places=9)
        self.assertAlmostEqual(sum(x * x for x in xs) / len(xs), 1.0, places=9)
        self.assertGreater(scaling["x_std"], 0)


class TrainTests(unittest.TestCase):
    def test_gradient_descent_fits_a_line(self) -> None:
        points = [(x, 2.0 * x + 1.0) for x in (-1.0, -0.5, 0.0, 0.5, 1.0)]
        slope, intercept = fit(points, lr=0.2, epochs=300, seed=0)
        self.assertAlmostEqual(slope, 2.0, places=4)
        self.assertAlmostEqual(intercept, 1.0, places=4)
        self.assertLess(mse(points, slope, intercept), 1e-8)

    def test_the_two_steps_run_end_to_end_on_the_slice(self) -> None:
        with tempfile.TemporaryDirectory() as folder:
            data = Path(folder) / "points.csv"
            data.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in SLICE))
            env = {**os.environ, "PYTHONPATH": str(RECIPE)}
            subprocess.run([sys.executable, "-m", "linreg.prepare", str(data)], cwd=folder, env=env, check=True)
            subprocess.run(
                [sys.executable, "-m", "linreg.train", "--data", "prepared/train.csv", "--lr", "0.1",
                 "--epochs", "50", "--output", folder],
                cwd=folder, env=env, check=True, capture_output=True,
            )  # fmt: skip
            metrics = json.loads((Path(folder) / "metrics.json").read_text())
            self.assertEqual(sorted(metrics), ["mse", "slope"])


if __name__ == "__main__":
    unittest.main()
