"""HTTP connectors for the marketing platforms. No Dagster imports: usable from a notebook."""
