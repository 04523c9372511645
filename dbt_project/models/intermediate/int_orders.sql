-- Shopify orders with their refunds netted and their region, in the reporting currency.
with refunds as (
    select order_id, sum(refund_amount) as refunds
    from {{ ref('stg_shopify__refunds') }}
    group by order_id
)

select
    o.order_id,
    o.customer_id,
    o.email,
    o.order_date,
    o.created_at,
    o.updated_date,
    o.is_cancelled,
    coalesce(g.geo_id, 'unknown') as geo_id,
    o.currency as source_currency,
    {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as fx_rate,
    o.subtotal_price * {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as gross_revenue,
    o.total_discounts * {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as discounts,
    coalesce(r.refunds, 0) * {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as refunds
from {{ ref('stg_shopify__orders') }} as o
left join refunds as r on r.order_id = o.order_id
left join {{ ref('stg_reference__geo_regions') }} as g
    on g.country_code = o.country_code and g.province_code = o.province_code
left join {{ ref('stg_reference__fx_rates') }} as fx
    on fx.rate_date = o.order_date and fx.from_currency = o.currency
