"""The sync engine: everything that moves data between anaba and Mailchimp."""
