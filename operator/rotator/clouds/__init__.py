"""Thin, typed adapters over the cloud SDKs (Graph, Key Vault, Databricks, identity)."""
