-- Shopify orders: the latest version of each, money typed, dated in the shop's time zone.
with latest as (
    select *
    from {{ ref('stg_shopify__order_versions') }}
    where true
    qualify row_number() over (partition by order_id order by updated_at desc) = 1
)

select
    order_id,
    order_name,
    customer_id,
    email,
    created_at,
    order_date,
    updated_at,
    updated_date,
    is_cancelled,
    financial_status,
    currency,
    presentment_currency,
    subtotal_price,
    total_discounts,
    total_price,
    country_code,
    province_code,
    refunds
from latest
where not is_test
