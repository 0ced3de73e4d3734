"""Eval suites, one module each; importing a module registers its suite with ``selflearn.eval.harness``."""
