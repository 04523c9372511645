{{ config(**cfap.daily_incremental_config(
    unique_key=['date_day', 'platform', 'geo_id'],
    cluster_by=['platform', 'geo_id'],
)) }}
-- Paid media per day, platform and region (the geo-experiment grain), in the reporting
-- currency. Regions a platform targets get an explicit zero on days it spent nothing there.
with activity as (
    -- Only the run's window is read: cost follows new data, not history.
    select * from {{ ref('int_ad_geo_daily') }}
    where {{ cfap.partition_window_filter('date_day') }}
    and {{ cfap.landed_partition_filter('partition_date') }}
),

platform_geos as (
    -- Every region each platform ever delivered in (kept up to date per run).
    select distinct platform, channel, geo_id from {{ ref('int_ad_geo_spans') }}
),

platform_span as (
    select platform, min(first_day) as first_day, max(last_day) as last_day
    from {{ ref('int_ad_geo_spans') }}
    group by 1
),

spine as (
    select g.platform, g.channel, g.geo_id, d.date_day
    from platform_geos as g
    inner join platform_span as p on p.platform = g.platform
    inner join {{ ref('int_date_spine') }} as d
        on d.date_day between p.first_day and p.last_day
    where {{ cfap.partition_window_filter('d.date_day') }}
)

select
    s.date_day,
    s.platform,
    s.channel,
    s.geo_id,
    coalesce(a.spend, 0) as spend,
    coalesce(a.impressions, 0) as impressions,
    coalesce(a.clicks, 0) as clicks,
    coalesce(a.conversions, 0) as conversions,
    coalesce(a.conversion_value, 0) as conversion_value,
    a.date_day is null as is_zero_filled
from spine as s
left join activity as a
    on a.date_day = s.date_day and a.platform = s.platform and a.geo_id = s.geo_id
