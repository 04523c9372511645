-- First-party events, typed: a visitor's marketing touches and how their journey ended.
select
    insert_id,
    anonymous_id as journey_id,
    event,
    channel,
    {{ cfap.parse_iso_timestamp('event_time') }} as event_at,
    cast(value as {{ cfap.type_double() }}) as value
from {{ source('raw', 'first_party_touchpoints') }}
