"""Example user models, kept outside the package: put `examples/` on PYTHONPATH to use them."""
