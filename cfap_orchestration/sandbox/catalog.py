"""Static reference data for the sandbox brand: regions, accounts and products.

Region codes follow ISO 3166-2; the Google criterion ids are the real
`geoTargetConstants` for those regions, so the fake Google Ads API speaks the
same ids the real one does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Region:
    geo_id: str
    name: str
    country: str
    weight: float
    google_criterion_id: int


US_REGIONS: tuple[Region, ...] = (
    Region("US-CA", "California", "US", 0.18, 21137),
    Region("US-TX", "Texas", "US", 0.13, 21176),
    Region("US-NY", "New York", "US", 0.11, 21167),
    Region("US-FL", "Florida", "US", 0.10, 21142),
    Region("US-IL", "Illinois", "US", 0.07, 21147),
    Region("US-WA", "Washington", "US", 0.06, 21180),
    Region("US-PA", "Pennsylvania", "US", 0.06, 21171),
    Region("US-GA", "Georgia", "US", 0.05, 21143),
    Region("US-MA", "Massachusetts", "US", 0.05, 21152),
    Region("US-OH", "Ohio", "US", 0.05, 21168),
    Region("US-CO", "Colorado", "US", 0.04, 21138),
    Region("US-AZ", "Arizona", "US", 0.04, 21136),
    Region("US-NC", "North Carolina", "US", 0.05, 21161),
    Region("US-MI", "Michigan", "US", 0.05, 21153),
    Region("US-VA", "Virginia", "US", 0.04, 21178),
    Region("US-OR", "Oregon", "US", 0.03, 21170),
)

EU_REGIONS: tuple[Region, ...] = (
    Region("DE-BY", "Bavaria", "DE", 0.05, 20226),
    Region("DE-BE", "Berlin", "DE", 0.04, 20228),
    Region("FR-IDF", "Ile-de-France", "FR", 0.05, 9040),
    Region("NL-NH", "North Holland", "NL", 0.03, 20593),
)


@dataclass(frozen=True)
class AdAccount:
    platform: str
    account_id: str
    account_name: str
    currency: str
    timezone: str
    market: str  # "US" or "EU": which regions its campaigns target
    daily_budget: float  # account currency, at the default scale


AD_ACCOUNTS: tuple[AdAccount, ...] = (
    AdAccount("meta", "1017263540", "Northwind Goods US", "USD", "America/New_York", "US", 1400.0),
    AdAccount("meta", "1017263541", "Northwind Goods EU", "EUR", "Europe/Berlin", "EU", 320.0),
    AdAccount(
        "google_ads", "4817263544", "Northwind Search", "USD", "America/Los_Angeles", "US", 1000.0
    ),
)

META_CAMPAIGN_THEMES: tuple[str, ...] = (
    "Prospecting | {m}",
    "RETARGETING - {m}",
    " Summer Sale_{m} ",
    "Holiday Gifting | {m}",
    "Lookalike Buyers {m}",
    "Creative Test {m}",
)
GOOGLE_CAMPAIGN_THEMES: tuple[str, ...] = (
    "Brand | Exact",
    "NonBrand - Generic",
    "Shopping | All Products",
    "NonBrand - Competitors",
    "PMax | Bestsellers",
    "DSA | Catalog",
)


@dataclass(frozen=True)
class Product:
    product_id: int
    variant_id: int
    title: str
    price: float


PRODUCTS: tuple[Product, ...] = (
    Product(8011, 44011, "Merino Crew Sock", 18.0),
    Product(8012, 44012, "Trail Runner Sock 3-Pack", 34.0),
    Product(8013, 44013, "Wool Beanie", 38.0),
    Product(8014, 44014, "Everyday Tee", 42.0),
    Product(8015, 44015, "Lightweight Hoodie", 78.0),
    Product(8016, 44016, "Packable Jacket", 148.0),
    Product(8017, 44017, "Canvas Tote", 28.0),
    Product(8018, 44018, "Leather Belt", 64.0),
)
