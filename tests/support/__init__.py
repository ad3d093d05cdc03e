"""What the tests (and the benchmarks) share: the `stave` runner, audio generators, running
nodes, federation peers, Kubo daemons, fault injection, browsers and a CAR reader.

Each concern has its own module; import from it directly (`from tests.support.cli import
stave`). Fixtures stay in tests/conftest.py, which builds them from these modules.
"""
