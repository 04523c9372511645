-- One row per Shopify refund transaction, dated in the shop's time zone.
{{ cfap.shopify_refunds(ref('stg_shopify__orders')) }}
