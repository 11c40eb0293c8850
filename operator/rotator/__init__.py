"""rotator: rotates Entra ID client secrets through Key Vault into Databricks."""

__version__ = "0.1.0"
