"""The HTTP API: Atlassian-compatible, Bitbucket views, native, and operations endpoints."""
