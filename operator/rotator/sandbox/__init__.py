"""Emulators of Entra, Graph, Key Vault and Databricks for `make demo` and e2e."""
