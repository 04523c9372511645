"""Fake Meta, Google Ads, Klaviyo and Shopify APIs serving the sandbox world in wire format."""
