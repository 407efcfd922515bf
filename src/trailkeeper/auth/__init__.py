"""Who is calling and what they may see: principals, passwords, read scopes."""
