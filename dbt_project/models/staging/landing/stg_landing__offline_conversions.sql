-- Offline conversions from the landing zone, typed: one row per conversion, with the file
-- it arrived in.
select
    conversion_id,
    cast(conversion_time as timestamp) as conversion_at,
    cast(conversion_date as date) as conversion_date,
    conversion_name,
    cast(value as {{ cfap.type_double() }}) as value,
    currency,
    order_id,
    click_id,
    platform,
    source_file,
    cast(loaded_at as timestamp) as loaded_at
from {{ source('raw', 'offline_conversions') }}
