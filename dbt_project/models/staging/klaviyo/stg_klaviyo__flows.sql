-- Klaviyo flows: the latest version of each.
select
    flow_id,
    name as flow_name,
    status,
    trigger_type,
    {{ cfap.parse_iso_timestamp('created') }} as created_at,
    {{ cfap.parse_iso_timestamp('updated') }} as updated_at
from {{ source('raw', 'klaviyo_flows') }}
where true
qualify row_number() over (partition by flow_id order by updated desc) = 1
