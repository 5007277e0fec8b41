"""anaba's contact base: the only code that writes contacts, tags and consent.

Every write goes through a function here which commits, then announces the change through
`portal.crm.events` so the sync side can replicate it (R10).
"""
