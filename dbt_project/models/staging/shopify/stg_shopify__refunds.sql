-- One row per Shopify refund transaction, dated in the shop's time zone.
with refunds as (
    select o.order_id, refund
    from {{ ref('stg_shopify__orders') }} as o
    cross join {{ cfap.json_array_elements('o.refunds', 'refund') }}
),

transactions as (
    select
        r.order_id,
        {{ cfap.json_text('r.refund', '$.id') }} as refund_id,
        {{ cfap.parse_iso_timestamp(cfap.json_text('r.refund', '$.created_at')) }} as refunded_at,
        cast({{ cfap.json_text('t', '$.amount') }} as {{ cfap.type_double() }}) as amount
    from refunds as r
    cross join {{ cfap.json_array_elements(cfap.json_text_raw('r.refund', '$.transactions'), 't') }}
)

select
    order_id,
    refund_id,
    refunded_at,
    {{ cfap.local_date('refunded_at', "'" ~ var('shop_timezone') ~ "'") }} as refund_date,
    sum(amount) as refund_amount
from transactions
group by order_id, refund_id, refunded_at
