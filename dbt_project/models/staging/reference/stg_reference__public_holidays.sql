-- Public holidays of the brand's markets (one row per day and country).
select
    cast(holiday_date as date) as holiday_date,
    country_code,
    holiday_name
from {{ source('raw', 'public_holidays') }}
