"""Fixtures for the Mailchimp adapter's tests.

Redis (``redis_url``, ``redis_conn``) and the simulator (``sim``) come from the root conftest.
"""
