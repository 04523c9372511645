-- Regions and how each platform names them.
select
    geo_id,
    region_name,
    country_code,
    province_code,
    cast(google_criterion_id as {{ dbt.type_bigint() }}) as google_criterion_id,
    market
from {{ ref('geo_regions') }}
