-- Shopify order versions: Shopify sends an order again on every update and each version
-- lands in the partition of its update day (shop time), so an order can have several.
-- Money typed, dated in the shop's time zone; stg_shopify__orders keeps the latest.
select
    cast(order_id as {{ dbt.type_string() }}) as order_id,
    order_name,
    cast(customer_id as {{ dbt.type_string() }}) as customer_id,
    email,
    {{ cfap.parse_iso_timestamp('created_at') }} as created_at,
    {{ cfap.local_date(cfap.parse_iso_timestamp('created_at'), "'" ~ var('shop_timezone') ~ "'") }}
        as order_date,
    {{ cfap.parse_iso_timestamp('updated_at') }} as updated_at,
    {{ cfap.local_date(cfap.parse_iso_timestamp('updated_at'), "'" ~ var('shop_timezone') ~ "'") }}
        as updated_date,
    cancelled_at is not null as is_cancelled,
    financial_status,
    currency,
    presentment_currency,
    cast(subtotal_price as {{ cfap.type_double() }}) as subtotal_price,
    cast(total_discounts as {{ cfap.type_double() }}) as total_discounts,
    cast(total_price as {{ cfap.type_double() }}) as total_price,
    {{ cfap.json_text('shipping_address', '$.country_code') }} as country_code,
    {{ cfap.json_text('shipping_address', '$.province_code') }} as province_code,
    refunds,
    -- Only an explicit false is a live order (a missing flag counts as test).
    not coalesce(cast(test as {{ dbt.type_string() }}) in ('false', 'False'), false) as is_test,
    partition_date
from {{ source('raw', 'shopify_orders') }}
