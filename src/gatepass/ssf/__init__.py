"""Shared Signals Framework (OpenID SSF 1.0): Security Event Tokens in and out."""
