"""Settings shared by the test fixtures (importable from any test module)."""

# A small brand and a fixed "now", so runs are fast and reproducible.
SANDBOX_ENV = {
    "CFAP_ENV": "local",
    "CFAP_SANDBOX_CUSTOMERS": "2000",
    "CFAP_SANDBOX_AS_OF": "2025-06-01T00:00:00+00:00",
    "CFAP_START_DATE": "2024-01-01",
}
