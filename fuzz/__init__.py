"""Fuzz targets for Stave's parsers and verifiers, shared by the atheris harness and the tests.

Each target takes one input as bytes and checks the contract every input must meet: it ends in a
clean rejection (a one-line `StaveError`) or in a correct result, never in any other exception.
`python -m fuzz.run TARGET --runs N` drives a target with atheris (libFuzzer); the property
tests in `tests/test_fuzz.py` drive the same targets with hypothesis.
"""
