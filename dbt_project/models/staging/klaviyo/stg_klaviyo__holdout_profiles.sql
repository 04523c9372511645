-- Profiles held out of each campaign (its randomized control group).
select distinct
    campaign_id,
    segment_id as holdout_segment_id,
    profile_id,
    email
from {{ source('raw', 'klaviyo_holdout_profiles') }}
