{{ config(**cfap.keyed_incremental_config(unique_key=['order_id'])) }}
-- Shopify orders (the latest version of each) with their refunds netted and their region,
-- in the reporting currency.
-- Incremental: Shopify lands an order again on every update, so a run reads only the
-- versions updated in its window, keeps each order's newest, and replaces the stored row
-- only with a version at least as new (re-running an earlier day cannot bring back an
-- older version). An order's test flag is set when it is created, so test orders never
-- enter.
with versions as (
    select * from {{ ref('stg_shopify__order_versions') }}
    where {{ cfap.partition_window_filter('updated_date') }}
    and {{ cfap.landed_partition_filter('partition_date', days_before=1, days_after=1) }}
),

latest as (
    select *
    from versions
    where true
    qualify row_number() over (partition by order_id order by updated_at desc) = 1
),

orders as (
    select latest.*
    from latest
    {% if cfap.is_incremental_run() %}
    left join {{ this }} as stored on stored.order_id = latest.order_id
    where not latest.is_test
        and (stored.order_id is null or latest.updated_at >= stored.updated_at)
    {% else %}
    where not latest.is_test
    {% endif %}
),

refunds as (
    select order_id, sum(refund_amount) as refunds
    from ({{ cfap.shopify_refunds('orders') }}) as r
    group by order_id
)

select
    o.order_id,
    o.customer_id,
    o.email,
    o.order_date,
    o.created_at,
    o.updated_at,
    o.updated_date,
    o.is_cancelled,
    coalesce(g.geo_id, 'unknown') as geo_id,
    o.currency as source_currency,
    {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as fx_rate,
    o.subtotal_price * {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as gross_revenue,
    o.total_discounts * {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as discounts,
    coalesce(r.refunds, 0) * {{ cfap.fx_rate_expression('o.currency', 'fx.rate') }} as refunds
from orders as o
left join refunds as r on r.order_id = o.order_id
left join {{ ref('stg_reference__geo_regions') }} as g
    on g.country_code = o.country_code and g.province_code = o.province_code
left join {{ ref('stg_reference__fx_rates') }} as fx
    on fx.rate_date = o.order_date and fx.from_currency = o.currency
