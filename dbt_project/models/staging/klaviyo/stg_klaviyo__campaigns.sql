-- Klaviyo email/SMS campaigns, one row each, with the message id and the holdout segment.
select
    campaign_id,
    name as campaign_name,
    channel,
    status,
    {{ cfap.parse_iso_timestamp('send_time') }} as sent_at,
    {{ cfap.local_date(cfap.parse_iso_timestamp('send_time'), "'" ~ var('shop_timezone') ~ "'") }}
        as send_date,
    {{ cfap.json_text('message_ids', '$[0]') }} as message_id,
    {{ cfap.json_text('included_audiences', '$[0]') }} as audience_list_id,
    {{ cfap.json_text('excluded_audiences', '$[0]') }} as holdout_segment_id
from {{ source('raw', 'klaviyo_campaigns') }}
