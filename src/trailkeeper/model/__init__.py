"""The typed audit event and its two JSON shapes."""
