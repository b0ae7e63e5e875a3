"""Compliance: signed audit reports (in-toto/DSSE, Ed25519), a hash-chained audit log, webhooks, HTML report."""
