"""Governance (issue 5): what is recorded (coverage, denylist, redaction), how long it is kept
(retention) and the shared run-time configuration behind both."""
