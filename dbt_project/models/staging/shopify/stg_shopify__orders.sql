-- Shopify orders: the latest version of each, money typed, dated in the shop's time zone.
with latest as (
    select *
    from {{ source('raw', 'shopify_orders') }}
    where true
    qualify row_number() over (partition by order_id order by updated_at desc) = 1
)

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
    refunds
from latest
where cast(test as {{ dbt.type_string() }}) in ('false', 'False')
