"""A stateful stand-in for the Mailchimp Marketing API v3, for the demo, tests and benchmarks.

Run it with ``python -m mailchimp_sim --port 8470``; drive it from tests with
:mod:`mailchimp_sim.testing`. ``docs/simulator.md`` describes the control API under
``/_sim/`` and every deliberate choice where Mailchimp's real behaviour is unknown.
"""

__all__ = ["__version__"]

__version__ = "1.0"
