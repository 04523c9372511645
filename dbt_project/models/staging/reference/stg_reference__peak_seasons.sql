-- Retail peak seasons, one row per season and year.
select season_name, cast(start_date as date) as start_date, cast(end_date as date) as end_date
from {{ ref('peak_seasons') }}
