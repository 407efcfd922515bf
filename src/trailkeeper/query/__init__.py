"""Queries: one AST for every interface, compiled to parameterised SQL."""
