{{ config(**cfap.keyed_incremental_config(
    unique_key=['platform', 'channel', 'geo_id'],
    cluster_by=['platform', 'geo_id'],
)) }}
-- Each region a platform ever delivered in, with its first and last day there: the
-- regions fct_marketing_geo_daily zero-fills and (over all of a platform's regions) the
-- platform's active span. Narrow columns only, so the spend aggregates and FX are pruned.
-- Incremental: a run folds in its window's appearances (first_day = least(old, new),
-- last_day = greatest(old, new)) and leaves the regions it did not see as they were.
with appearances as (
    select platform, channel, geo_id, date_day
    from {{ ref('int_ad_geo_daily') }}
    where {{ cfap.partition_window_filter('date_day') }}
    and {{ cfap.landed_partition_filter('partition_date') }}
),

spans as (
    select platform, channel, geo_id, min(date_day) as first_day, max(date_day) as last_day
    from appearances
    group by 1, 2, 3
)

{% if cfap.is_incremental_run() %}
select
    windowed.platform,
    windowed.channel,
    windowed.geo_id,
    least(windowed.first_day, coalesce(stored.first_day, windowed.first_day)) as first_day,
    greatest(windowed.last_day, coalesce(stored.last_day, windowed.last_day)) as last_day
from spans as windowed
left join {{ this }} as stored
    on stored.platform = windowed.platform
    and stored.channel = windowed.channel
    and stored.geo_id = windowed.geo_id
{% else %}
select * from spans
{% endif %}
