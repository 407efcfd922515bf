"""Recording events: the in-process service, the writer thread and HTTP body parsing."""
