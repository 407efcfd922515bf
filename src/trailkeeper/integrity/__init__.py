"""Tamper evidence for the audit log: an RFC 6962 / RFC 9162 Merkle tree over stored events."""
