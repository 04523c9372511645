{#- One row per Shopify refund of `orders` (a relation or CTE with order_id and the order's
    `refunds` JSON): its transactions summed, dated in the shop's time zone. -#}
{% macro shopify_refunds(orders) -%}
with refund_rows as (
    select o.order_id, refund
    from {{ orders }} as o
    cross join {{ cfap.json_array_elements('o.refunds', 'refund') }}
),

transactions as (
    select
        r.order_id,
        {{ cfap.json_text('r.refund', '$.id') }} as refund_id,
        {{ cfap.parse_iso_timestamp(cfap.json_text('r.refund', '$.created_at')) }} as refunded_at,
        cast({{ cfap.json_text('t', '$.amount') }} as {{ cfap.type_double() }}) as amount
    from refund_rows as r
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
{%- endmacro %}
