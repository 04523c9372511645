-- Klaviyo events, typed: who received or clicked which message, and who ordered.
select
    event_id,
    metric_name,
    profile_id,
    {{ cfap.parse_iso_timestamp('datetime') }} as occurred_at,
    {{ cfap.local_date(cfap.parse_iso_timestamp('datetime'), "'" ~ var('shop_timezone') ~ "'") }}
        as event_date,
    cast(value as {{ cfap.type_double() }}) as value,
    coalesce(
        {{ cfap.json_text('event_properties', '$."$message"') }}, attributed_message_id
    ) as message_id,
    flow_id,
    {{ cfap.json_text('event_properties', '$."$event_id"') }} as order_id,
    case when metric_name = 'Placed Order' then attributed_message_id end as attributed_message_id,
    partition_date
from {{ source('raw', 'klaviyo_events') }}
