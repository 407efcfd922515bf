"""The failure every forwarding sink raises when a batch was not accepted."""

from __future__ import annotations


class SendError(Exception):
    """The receiver did not accept the batch; the forwarder sends it again after a pause
    (``retry_after_s`` when the receiver asked for one). ``config_problem``: the receiver
    refused us (a bad token, a rejected certificate), which an operator must fix."""

    def __init__(self, message: str, *, retry_after_s: float | None = None,
                 config_problem: bool = False) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.config_problem = config_problem
