"""A line fitted to shipped points in two steps: prepare (standardize, written beside the code) and train
(gradient descent driven by command-line flags). Standard library only."""
