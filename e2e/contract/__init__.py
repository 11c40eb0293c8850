"""Contract tests: the real cloud SDKs over real sockets against the sandbox emulators.

Each module drives one SDK exactly as the operator's adapters do (msgraph-sdk, azure-identity,
azure-keyvault-secrets, databricks-sdk) and pins the requests it sends, the shapes it parses
and the exception types and attributes it raises; docs/emulators.md records the mapping.
"""
